#pragma once
// DataLoader: worker threads build whole batches (decode, augment, stack) ahead of the
// consumer into a bounded queue of ready batches. Batch b of an epoch always holds the
// sampler's positions [b*B, (b+1)*B), each sample seeded by (seed, epoch, position), and
// batches are handed out in order, so the stream of batches is identical for any
// number of workers. An exception in a worker (a corrupt file, say) is rethrown by
// next() at the batch where it happened; the destructor stops and joins the workers.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/data/dataset.h"
#include "engine/data/sampler.h"

namespace pneuma::data {

struct Batch {
  int64_t epoch = 0, index = 0;  // index: batch number within the epoch
  std::vector<Tensor> views;     // float32 [B, C, H, W] per view
  Tensor labels;                 // int64 [B]
  Tensor domains;                // int64 [B]
  std::vector<int64_t> indices;  // dataset indices of the samples
  bool pinned = false;           // views, labels and domains are in pinned host memory
  const Tensor& images() const { return views.at(0); }
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

struct LoaderOptions {
  int64_t batch_size = 32;
  int workers = 2;        // 0: batches are built on the calling thread
  int64_t prefetch = 0;   // batches claimed or ready ahead of the consumer; 0: 2 x workers
  bool drop_last = false;
  uint64_t seed = 0;
  // Workers write batches into pinned host memory for data::to_device's asynchronous upload
  // (engine/data/device_batch.h); needs a CUDA device.
  bool pin_memory = false;
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, std::shared_ptr<const Sampler> sampler,
             LoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  const LoaderOptions& options() const { return options_; }
  // Starts (or restarts) epoch `epoch`; a previous epoch in flight is stopped first.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch in order; nullopt once the epoch is done.
  std::optional<Batch> next();

  // Builds batch `index` of `epoch` on the calling thread (what each worker runs).
  Batch build(int64_t epoch, int64_t index, const std::vector<int64_t>& order) const;

 private:
  struct Epoch;
  void stop();

  std::shared_ptr<const Dataset> dataset_;
  std::shared_ptr<const Sampler> sampler_;
  LoaderOptions options_;
  std::unique_ptr<Epoch> epoch_;
};

}  // namespace pneuma::data
