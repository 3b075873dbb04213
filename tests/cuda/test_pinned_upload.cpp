// The loader's pinned batches and their asynchronous upload.
#include <doctest/doctest.h>

#include "engine/data/device_batch.h"
#include "engine/data/loader.h"
#include "engine/data/sampler.h"
#include "tests/support/cuda.h"

using namespace pneuma;
using namespace pneuma::data;

namespace {

class IndexDataset : public Dataset {
 public:
  int64_t size() const override { return 10; }
  Example get(int64_t index, uint64_t) const override {
    Example ex;
    ex.views.push_back(Tensor::full({2, 3, 3}, static_cast<double>(index)));
    ex.label = index % 2;
    ex.domain = index % 3;
    return ex;
  }
};

LoaderOptions pinned_options() {
  LoaderOptions o;
  o.batch_size = 4;
  o.workers = 2;
  o.pin_memory = true;
  return o;
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("loader: pin_memory without a CUDA device is one clear error") {
    if (pinned_memory_available()) return;  // covered by the cuda case below
    auto dataset = std::make_shared<IndexDataset>();
    auto sampler = std::make_shared<SequentialSampler>(dataset->size());
    CHECK_THROWS_WITH_AS(DataLoader(dataset, sampler, pinned_options()), doctest::Contains("pin_memory needs a CUDA device"),
                         Error);
    CHECK_THROWS_WITH_AS(pinned_empty({2}, DType::Float32), doctest::Contains("pinned memory needs a CUDA device"), Error);
  }

  TEST_CASE("to_device on the CPU returns the batch itself") {
    auto dataset = std::make_shared<IndexDataset>();
    DataLoader loader(dataset, std::make_shared<SequentialSampler>(dataset->size()), LoaderOptions{});
    const Batch b = loader.build(0, 0, std::vector<int64_t>{0, 1, 2});
    const Batch same = to_device(b, Device::cpu());
    CHECK(same.images().raw_data() == b.images().raw_data());
    CHECK(!b.pinned);
  }
}

TEST_SUITE("cuda") {
  TEST_CASE("parity pinned loader upload") {
    PNEUMA_REQUIRE_GPU();
    auto dataset = std::make_shared<IndexDataset>();
    auto sampler = std::make_shared<SequentialSampler>(dataset->size());
    DataLoader pinned(dataset, sampler, pinned_options());
    LoaderOptions plain_options = pinned_options();
    plain_options.pin_memory = false;
    DataLoader plain(dataset, sampler, plain_options);
    for (int64_t epoch = 0; epoch < 3; ++epoch) {  // later epochs reuse cached pinned blocks
      pinned.start_epoch(epoch);
      plain.start_epoch(epoch);
      while (auto b = pinned.next()) {
        const auto reference = plain.next();
        REQUIRE(reference.has_value());
        CHECK(b->pinned);
        const Batch on_gpu = to_device(*b, Device::cuda());
        CHECK(on_gpu.images().device() == Device::cuda());
        CHECK(on_gpu.images().to(Device::cpu()).to_vector() == reference->images().to_vector());
        CHECK(on_gpu.labels.to(Device::cpu()).to_indices() == reference->labels.to_indices());
        CHECK(on_gpu.domains.to(Device::cpu()).to_indices() == reference->domains.to_indices());
      }
    }
  }
}
