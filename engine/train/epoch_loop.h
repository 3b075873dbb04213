#pragma once
// What the training tools' epoch loops share (pneuma-train, -train-3branch, -simclr,
// -train-unet, -train-mlp): the optimizer step behind the NaN/inf guard, the running mean
// the progress bar shows, the loader options of a training set, the walk over the epochs
// of a run with --stop-after and early stopping, and the checkpoints after an epoch.
#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/core/tensor.h"
#include "engine/data/loader.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"
#include "engine/optim/optimizer.h"
#include "engine/train/early_stopping.h"
#include "engine/train/scheduler.h"

namespace pneuma::train {

// One step on a scalar loss: require_finite_loss(loss, step, keep_note), zero_grad,
// backward, the gradient norm clipped to clip_grad (0: no clipping), optimizer step.
void optimization_step(const Tensor& loss, optim::Optimizer& optimizer, double clip_grad, int64_t step,
                       const std::string& keep_note);

// What a run writing its checkpoints to `out` after every epoch still has when a
// non-finite loss stops it in epoch `epoch` (0-based): the previous epoch's checkpoint.
std::string kept_checkpoint_note(int64_t epoch, const std::string& out);

// The progress bar's label of epoch `epoch` (0-based): "epoch 3/10".
std::string epoch_label(int64_t epoch, int64_t epochs);

// "0.1235": four decimals, as the progress bars show losses and metrics.
std::string fixed4(double value);

// A mean weighted by sample counts (the epoch's training loss from per-batch means).
class RunningMean {
 public:
  void add(double value, int64_t weight = 1) {
    sum_ += value * static_cast<double>(weight);
    weight_ += weight;
  }
  double mean() const { return weight_ > 0 ? sum_ / static_cast<double>(weight_) : 0; }
  int64_t count() const { return weight_; }

 private:
  double sum_ = 0;
  int64_t weight_ = 0;
};

// Seconds since construction (an epoch's "seconds" in metrics.jsonl).
class Stopwatch {
 public:
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// A training loader's options: a last batch of one sample is dropped when the epoch has
// more than one (BatchNorm's batch statistics of one sample are degenerate); batches bound
// for a CUDA device are pinned (data::to_device uploads them asynchronously).
data::LoaderOptions training_loader_options(int64_t batch, int workers, uint64_t seed, int64_t epoch_length,
                                            Device device = Device::cpu());
// An evaluation loader's: every sample, pinned for a CUDA device.
data::LoaderOptions evaluation_loader_options(int64_t batch, int workers, uint64_t seed,
                                              Device device = Device::cpu());

// The walk over the epochs [start_epoch, epochs) of a run.
struct EpochLoop {
  std::string tool;  // "pneuma-train": the prefix of the lines said on stderr
  std::string out;   // the run's folder, named in the --stop-after line
  int64_t start_epoch = 0, epochs = 0;
  int64_t stop_after = 0;  // > 0: return after this many epochs as if interrupted (--stop-after)
  // When set, the walk ends once it says stop ("<tool>: early stop: no better <monitored>
  // for <patience> epochs"); a resumed run that had stopped runs no epoch.
  const EarlyStopping* early_stopping = nullptr;
  int64_t patience = 0;
  std::string monitored;  // "validation AUROC"

  // Calls run_epoch(epoch) for each epoch; false when --stop-after cut the run short
  // (said on stderr with the --resume command that continues it).
  bool run(const std::function<void(int64_t epoch)>& run_epoch) const;
};

// After epoch `epoch` (0-based) of a resumable run in `out`: best.safetensors when `best`,
// then last.safetensors and train_state.safetensors (save_train_state, with the run's
// settings as extra {"options": options}); `meta` is the checkpoints' metadata.
void save_epoch_checkpoints(const std::string& out, const nn::Module& model, const optim::Optimizer& optimizer,
                            const LrScheduler* scheduler, const EarlyStopping* early_stopping, int64_t epoch,
                            bool best, const nlohmann::json& options, const io::Metadata& meta);

}  // namespace pneuma::train
