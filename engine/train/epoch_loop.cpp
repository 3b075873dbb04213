#include "engine/train/epoch_loop.h"

#include <cstdio>
#include <filesystem>

#include "engine/train/checkpointing.h"
#include "engine/train/clip.h"
#include "engine/train/finite.h"

namespace pneuma::train {

void optimization_step(const Tensor& loss, optim::Optimizer& optimizer, double clip_grad, int64_t step,
                       const std::string& keep_note) {
  require_finite_loss(loss, step, keep_note);
  optimizer.zero_grad();
  loss.backward();
  if (clip_grad > 0) clip_grad_norm(optimizer.parameters(), clip_grad);
  optimizer.step();
}

std::string kept_checkpoint_note(int64_t epoch, const std::string& out) {
  return epoch > 0 ? "the checkpoint of epoch " + std::to_string(epoch) + " in " + out
                   : std::string("nothing (the first epoch had not finished)");
}

std::string epoch_label(int64_t epoch, int64_t epochs) {
  return "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
}

std::string fixed4(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", value);
  return text;
}

data::LoaderOptions training_loader_options(int64_t batch, int workers, uint64_t seed, int64_t epoch_length,
                                            Device device) {
  data::LoaderOptions options = evaluation_loader_options(batch, workers, seed, device);
  options.drop_last = epoch_length > 1 && epoch_length % batch == 1;
  return options;
}

data::LoaderOptions evaluation_loader_options(int64_t batch, int workers, uint64_t seed, Device device) {
  data::LoaderOptions options;
  options.batch_size = batch;
  options.workers = workers;
  options.seed = seed;
  options.drop_last = false;
  options.pin_memory = device.is_cuda();
  return options;
}

bool EpochLoop::run(const std::function<void(int64_t epoch)>& run_epoch) const {
  int64_t epochs_this_run = 0;
  for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
    if (early_stopping != nullptr && early_stopping->should_stop()) break;
    if (stop_after > 0 && epochs_this_run >= stop_after) {
      std::fprintf(stderr, "%s: stopped after %lld epoch(s) (--stop-after); continue with --resume %s\n", tool.c_str(),
                   static_cast<long long>(epochs_this_run), out.c_str());
      return false;
    }
    run_epoch(epoch);
    ++epochs_this_run;
    if (early_stopping != nullptr && early_stopping->should_stop())
      std::fprintf(stderr, "%s: early stop: no better %s for %lld epochs\n", tool.c_str(), monitored.c_str(),
                   static_cast<long long>(patience));
  }
  return true;
}

void save_epoch_checkpoints(const std::string& out, const nn::Module& model, const optim::Optimizer& optimizer,
                            const LrScheduler* scheduler, const EarlyStopping* early_stopping, int64_t epoch,
                            bool best, const nlohmann::json& options, const io::Metadata& meta) {
  if (best) io::save_checkpoint(model, (std::filesystem::path(out) / kBestCheckpoint).string(), meta);
  TrainState state;
  state.epoch = epoch + 1;
  state.extra = {{"options", options}};
  save_train_state(out, model, optimizer, scheduler, early_stopping, state, meta);
}

}  // namespace pneuma::train
