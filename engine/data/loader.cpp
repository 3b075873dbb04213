#include "engine/data/loader.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "engine/core/error.h"
#include "engine/data/device_batch.h"
#include "engine/data/rng.h"

namespace pneuma::data {

struct DataLoader::Epoch {
  int64_t number = 0, batches = 0, prefetch = 1;
  std::vector<int64_t> order;

  std::mutex mutex;
  std::condition_variable work_cv, ready_cv;
  int64_t next_claim = 0, next_deliver = 0;
  bool stopping = false;
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  std::map<int64_t, Slot> ready;
  std::vector<std::thread> workers;
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, std::shared_ptr<const Sampler> sampler,
                       LoaderOptions options)
    : dataset_(std::move(dataset)), sampler_(std::move(sampler)), options_(options) {
  PNEUMA_CHECK(dataset_ != nullptr && sampler_ != nullptr, "DataLoader: dataset and sampler are required");
  PNEUMA_CHECK(options_.batch_size > 0, "DataLoader: batch_size must be > 0, got ", options_.batch_size);
  PNEUMA_CHECK(options_.workers >= 0 && options_.workers <= 256, "DataLoader: workers must be in [0, 256], got ",
               options_.workers);
  PNEUMA_CHECK(options_.prefetch >= 0, "DataLoader: prefetch must be >= 0, got ", options_.prefetch);
  PNEUMA_CHECK(!options_.pin_memory || pinned_memory_available(),
               "DataLoader: pin_memory needs a CUDA device (none here); leave it off on the CPU");
}

DataLoader::~DataLoader() { stop(); }

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = sampler_->epoch_length(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

Batch DataLoader::build(int64_t epoch, int64_t index, const std::vector<int64_t>& order) const {
  const int64_t begin = index * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, static_cast<int64_t>(order.size()));
  PNEUMA_CHECK(begin < end, "DataLoader: batch ", index, " is past the end of epoch ", epoch);
  Batch batch;
  batch.epoch = epoch;
  batch.index = index;
  batch.pinned = options_.pin_memory;
  const auto batch_tensor = [&](const Shape& shape, DType dtype) {
    return batch.pinned ? pinned_empty(shape, dtype) : Tensor::empty(shape, dtype);
  };
  std::vector<int64_t> labels, domains;
  for (int64_t pos = begin; pos < end; ++pos) {
    const int64_t i = order[pos];
    PNEUMA_CHECK(i >= 0 && i < dataset_->size(), "DataLoader: sampler gave index ", i, " for a dataset of ",
                 dataset_->size());
    const Example ex = dataset_->get(i, sample_seed(options_.seed, epoch, pos));
    const int64_t slot = pos - begin;
    if (slot == 0) {
      for (const Tensor& v : ex.views) {
        Shape shape = v.shape();
        shape.insert(shape.begin(), end - begin);
        batch.views.push_back(batch_tensor(shape, v.dtype()));
      }
    }
    PNEUMA_CHECK(ex.views.size() == batch.views.size(), "DataLoader: sample ", i, " has ", ex.views.size(),
                 " views, the batch ", batch.views.size());
    for (size_t v = 0; v < ex.views.size(); ++v) {
      const Tensor dst = batch.views[v].select(0, slot);
      PNEUMA_CHECK(ex.views[v].shape() == dst.shape() && ex.views[v].dtype() == dst.dtype(), "DataLoader: sample ", i,
                   " view ", v, " is ", ex.views[v].str(), " but the batch's first sample gave ", dst.str(),
                   " (use a pipeline with a fixed output size)");
      const Tensor src = ex.views[v].contiguous();
      std::memcpy(dst.raw_data(), src.raw_data(), static_cast<size_t>(src.numel()) * dtype_size(src.dtype()));
    }
    batch.indices.push_back(i);
    labels.push_back(ex.label);
    domains.push_back(ex.domain);
  }
  const int64_t n = end - begin;
  batch.labels = batch_tensor({n}, DType::Int64);
  batch.domains = batch_tensor({n}, DType::Int64);
  std::copy(labels.begin(), labels.end(), batch.labels.data<int64_t>());
  std::copy(domains.begin(), domains.end(), batch.domains.data<int64_t>());
  return batch;
}

void DataLoader::stop() {
  if (!epoch_) return;
  {
    std::lock_guard<std::mutex> lock(epoch_->mutex);
    epoch_->stopping = true;
  }
  epoch_->work_cv.notify_all();
  for (auto& t : epoch_->workers) t.join();
  epoch_.reset();
}

void DataLoader::start_epoch(int64_t epoch) {
  stop();
  auto e = std::make_unique<Epoch>();
  e->number = epoch;
  e->order = sampler_->indices(epoch);
  PNEUMA_CHECK(static_cast<int64_t>(e->order.size()) == sampler_->epoch_length(), "DataLoader: sampler gave ",
               e->order.size(), " indices for an epoch length of ", sampler_->epoch_length());
  e->batches = batches_per_epoch();
  e->prefetch = options_.prefetch > 0 ? options_.prefetch : std::max(2 * options_.workers, 1);
  epoch_ = std::move(e);
  Epoch* state = epoch_.get();
  for (int w = 0; w < options_.workers; ++w) {
    state->workers.emplace_back([this, state] {
      for (;;) {
        int64_t b;
        {
          std::unique_lock<std::mutex> lock(state->mutex);
          state->work_cv.wait(lock, [&] {
            return state->stopping || state->next_claim >= state->batches ||
                   state->next_claim < state->next_deliver + state->prefetch;
          });
          if (state->stopping || state->next_claim >= state->batches) return;
          b = state->next_claim++;
        }
        Epoch::Slot slot;
        try {
          slot.batch = build(state->number, b, state->order);
        } catch (...) {
          slot.error = std::current_exception();
        }
        {
          std::lock_guard<std::mutex> lock(state->mutex);
          state->ready.emplace(b, std::move(slot));
        }
        state->ready_cv.notify_all();
      }
    });
  }
}

std::optional<Batch> DataLoader::next() {
  PNEUMA_CHECK(epoch_ != nullptr, "DataLoader::next: call start_epoch first");
  Epoch& e = *epoch_;
  if (e.next_deliver >= e.batches) return std::nullopt;
  if (options_.workers == 0) return build(e.number, e.next_deliver++, e.order);
  Epoch::Slot slot;
  {
    std::unique_lock<std::mutex> lock(e.mutex);
    e.ready_cv.wait(lock, [&] { return e.ready.count(e.next_deliver) > 0; });
    auto it = e.ready.find(e.next_deliver);
    slot = std::move(it->second);
    e.ready.erase(it);
    ++e.next_deliver;
  }
  e.work_cv.notify_all();
  if (slot.error) {
    stop();
    std::rethrow_exception(slot.error);
  }
  return std::move(slot.batch);
}

}  // namespace pneuma::data
