#pragma once
// The optimizer and learning-rate schedule flags of the training tools (pneuma-simclr,
// pneuma-train-mlp, pneuma-train-unet): one definition of the flags, their checks and their
// translation to train::make_optimizer / train::LrScheduler. Each tool sets its own defaults
// in the struct before add_optimization_flags, and the help shows them.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/train/optimizer_factory.h"
#include "engine/train/scheduler.h"

namespace pneuma::tools {

struct OptimizationFlags {
  std::string optimizer = "adam";
  double lr = 1e-3, weight_decay = 0, momentum = 0.9;
  std::string scheduler = "none";
  int64_t step_size = 10;
  double gamma = 0.1;
  int64_t warmup = 0, plateau_patience = 3;
  double plateau_factor = 0.1, min_lr = 0;
};
// JSON keys are the flag names with '-' as '_' (what tools/common/resume.h compares).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OptimizationFlags, optimizer, lr, weight_decay, momentum, scheduler,
                                                step_size, gamma, warmup, plateau_patience, plateau_factor, min_lr)

// A tool's settings (a struct with its own JSON conversions, member names = flag names)
// and the optimization flags side by side, as one flat JSON object: what the resume check
// compares flag by flag (tools/common/resume.h).
template <class Settings>
struct SettingsAndOptimization : Settings {
  OptimizationFlags optimization;
};
template <class Settings>
void to_json(nlohmann::json& j, const SettingsAndOptimization<Settings>& o) {
  j = static_cast<const Settings&>(o);
  j.update(nlohmann::json(o.optimization));
}
template <class Settings>
void from_json(const nlohmann::json& j, SettingsAndOptimization<Settings>& o) {
  static_cast<Settings&>(o) = j.get<Settings>();
  o.optimization = j.get<OptimizationFlags>();
}

// --optimizer --lr --weight-decay --momentum --scheduler --step-size --gamma --warmup
// --plateau-patience --plateau-factor --min-lr. plateau_metric says what the plateau
// schedule follows ("the validation Dice").
inline void add_optimization_flags(CLI::App& app, OptimizationFlags& f, const std::string& plateau_metric) {
  app.add_option("--optimizer", f.optimizer, "sgd (with --momentum), adam, adamw")->capture_default_str();
  app.add_option("--lr", f.lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--weight-decay", f.weight_decay, "weight decay: L2 for sgd/adam, decoupled for adamw")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--momentum", f.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--scheduler", f.scheduler,
                 "none, step (--step-size, --gamma), cosine (to --min-lr), plateau (on " + plateau_metric +
                     ": --plateau-patience, --plateau-factor, --min-lr)")
      ->capture_default_str();
  app.add_option("--step-size", f.step_size, "step scheduler: epochs per decay")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--gamma", f.gamma, "step scheduler: decay factor")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--warmup", f.warmup, "linear warmup epochs: epoch e < W at lr (e+1)/(W+1)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--plateau-patience", f.plateau_patience, "plateau scheduler: patience in epochs")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--plateau-factor", f.plateau_factor, "plateau scheduler: factor")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--min-lr", f.min_lr, "lowest lr of the cosine and plateau schedules")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

// An unknown optimizer is an Error before any data is read.
inline void check_optimization_flags(const OptimizationFlags& f) {
  const std::vector<std::string> names = train::optimizer_names();
  PNEUMA_CHECK(std::find(names.begin(), names.end(), f.optimizer) != names.end(), "unknown optimizer '", f.optimizer,
               "' (sgd, adam, adamw)");
}

inline std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizationFlags& f, std::vector<Tensor> parameters) {
  return train::make_optimizer(f.optimizer, std::move(parameters), f.lr, f.weight_decay, f.momentum);
}

// plateau_mode: "max" when the followed metric should rise, "min" when it should fall.
inline train::SchedulerOptions scheduler_options(const OptimizationFlags& f, const std::string& plateau_mode) {
  train::SchedulerOptions s;
  s.kind = f.scheduler;
  s.step_size = f.step_size;
  s.gamma = f.gamma;
  s.eta_min = f.min_lr;
  s.mode = plateau_mode;
  s.factor = f.plateau_factor;
  s.patience = f.plateau_patience;
  s.min_lr = f.min_lr;
  s.warmup_epochs = f.warmup;
  return s;
}

}  // namespace pneuma::tools
