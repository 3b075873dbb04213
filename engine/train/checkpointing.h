#pragma once
// Checkpoints of a training run in its output folder:
//   last.safetensors         the model after the latest epoch (a plain checkpoint with
//                            metadata, for pneuma-predict / pneuma-eval / --init)
//   train_state.safetensors  everything a resumed run needs, self-contained: the model
//                            ("model/<name>"), the optimizer's state ("optimizer/<name>")
//                            and, as JSON in the metadata key "train_state", the epoch,
//                            the optimizer's lr, the scheduler, early stopping, the
//                            global generator state and the caller's `extra`.
// Both are written to a temporary file and renamed (io::save_safetensors), and the
// resume state is one file, so a run killed at any moment resumes from a consistent
// state: the model and optimizer of the same epoch.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/data/image.h"
#include "engine/io/checkpoint.h"
#include "engine/nn/module.h"
#include "engine/optim/optimizer.h"
#include "engine/train/early_stopping.h"
#include "engine/train/scheduler.h"

namespace pneuma::train {

inline constexpr const char* kLastCheckpoint = "last.safetensors";
inline constexpr const char* kBestCheckpoint = "best.safetensors";
inline constexpr const char* kTrainState = "train_state.safetensors";

struct TrainState {
  int64_t epoch = 0;     // epochs completed
  nlohmann::json extra;  // the tool's own state (best metric, its arguments, ...)
};

// The metadata keys the prediction tools read: model, num_classes, img_size, mean, std
// (comma-separated), epoch. A binary classifier's decision threshold goes in "threshold"
// (format_number); callers add any other key.
io::Metadata checkpoint_metadata(const std::string& model, int64_t num_classes, int64_t img_size,
                                 const data::Normalization& normalization, int64_t epoch);
// Shortest text that reads back as the same double ("0.1", "0.30000000000000004").
std::string format_number(double value);
std::string format_numbers(const std::vector<double>& values);  // comma-separated

// Writes dir/last.safetensors (model + model_metadata, with epoch = state.epoch) and
// dir/train_state.safetensors. scheduler / early_stopping may be null (not used).
void save_train_state(const std::string& dir, const nn::Module& model, const optim::Optimizer& optimizer,
                      const LrScheduler* scheduler, const EarlyStopping* early_stopping, const TrainState& state,
                      const io::Metadata& model_metadata = {});

// Restores model, optimizer (state tensors and lr), scheduler, early stopping and the
// global generator from dir/train_state.safetensors; returns the epoch and extra. A
// missing file, another model's or optimizer's state, or a scheduler saved/not saved
// where this run has one/none is an Error naming the file.
TrainState load_train_state(const std::string& dir, nn::Module& model, optim::Optimizer& optimizer,
                            LrScheduler* scheduler, EarlyStopping* early_stopping);

bool has_train_state(const std::string& dir);

}  // namespace pneuma::train
