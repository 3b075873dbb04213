#pragma once
// Learning-rate schedules stepped once per epoch, as torch.optim.lr_scheduler:
//   step     StepLR:            base * gamma^floor(t / step_size)
//   cosine   CosineAnnealingLR: eta_min + (base - eta_min) (1 + cos(pi t / t_max)) / 2
//            (the closed form; t_max 0 means total_epochs - warmup_epochs)
//   plateau  ReduceLROnPlateau: relative threshold, cooldown, min_lr, eps 1e-8; needs the
//            validation metric at every step()
//   none     the base rate throughout
// Warmup (warmup_epochs = W > 0) is torch's SequentialLR([LinearLR(start_factor = 1/(W+1),
// total_iters = W), schedule], milestones = [W]): epoch e < W trains at base (e+1)/(W+1),
// so the ramp never starts at 0 and reaches the base rate at epoch W, where the schedule
// starts at its own t = 0. During warmup the plateau schedule is not fed metrics.
//
// t counts epochs: the constructor sets the optimizer to epoch 0's rate, and each step()
// (after epoch t's validation) sets the rate of epoch t + 1.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/optim/optimizer.h"

namespace pneuma::train {

struct SchedulerOptions {
  std::string kind = "none";  // none | step | cosine | plateau
  // step
  int64_t step_size = 30;
  double gamma = 0.1;
  // cosine
  int64_t t_max = 0;  // 0: total_epochs - warmup_epochs
  double eta_min = 0;
  // plateau
  std::string mode = "max";  // max: the metric should rise (AUROC); min: fall (loss)
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;  // relative
  int64_t cooldown = 0;
  double min_lr = 0;
  // all kinds
  int64_t warmup_epochs = 0;
};

class LrScheduler {
 public:
  // The optimizer's current lr is the base rate. Bad options (unknown kind or mode,
  // step_size < 1, factor outside (0, 1), ...) throw naming the option.
  LrScheduler(optim::Optimizer& optimizer, SchedulerOptions options, int64_t total_epochs);

  // Once per epoch, after validation; plateau needs the metric (others ignore it).
  void step(std::optional<double> metric = {});
  double lr() const { return lr_; }  // the rate of the next epoch (set on the optimizer)
  int64_t epochs_stepped() const { return t_; }
  const SchedulerOptions& options() const { return options_; }

  // Everything step() depends on, to resume exactly; load_state also sets the optimizer's lr.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  double scheduled_lr(int64_t epoch) const;  // closed form for none/step/cosine and warmup
  void apply();

  optim::Optimizer* optimizer_;
  SchedulerOptions options_;
  int64_t total_epochs_;
  double base_lr_;
  double lr_;
  int64_t t_ = 0;  // steps taken = index of the epoch about to run
  // ReduceLROnPlateau state
  double plateau_lr_;
  double best_;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
};

}  // namespace pneuma::train
