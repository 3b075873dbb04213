#include "engine/train/scheduler.h"

#include <cmath>
#include <limits>
#include <numbers>

#include "engine/core/error.h"

namespace pneuma::train {

namespace {
// ReduceLROnPlateau's eps: a reduction smaller than this is ignored.
constexpr double kPlateauEps = 1e-8;

double initial_best(const std::string& mode) {
  return mode == "max" ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

// nlohmann::json stores infinities as null; keep them as text so they read back.
nlohmann::json number_to_json(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}
double number_from_json(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string s = j.get<std::string>();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}
}  // namespace

LrScheduler::LrScheduler(optim::Optimizer& optimizer, SchedulerOptions options, int64_t total_epochs)
    : optimizer_(&optimizer), options_(std::move(options)), total_epochs_(total_epochs), base_lr_(optimizer.lr()) {
  const std::string& kind = options_.kind;
  PNEUMA_CHECK(kind == "none" || kind == "step" || kind == "cosine" || kind == "plateau", "scheduler: unknown kind '",
               kind, "' (none, step, cosine, plateau)");
  PNEUMA_CHECK(options_.warmup_epochs >= 0, "scheduler: warmup epochs ", options_.warmup_epochs, " < 0");
  if (kind == "step") {
    PNEUMA_CHECK(options_.step_size >= 1, "scheduler: step size ", options_.step_size, " < 1");
    PNEUMA_CHECK(options_.gamma > 0, "scheduler: gamma ", options_.gamma, " <= 0");
  }
  if (kind == "cosine") {
    if (options_.t_max == 0) options_.t_max = std::max<int64_t>(1, total_epochs - options_.warmup_epochs);
    PNEUMA_CHECK(options_.t_max >= 1, "scheduler: cosine t_max ", options_.t_max, " < 1");
  }
  if (kind == "plateau") {
    PNEUMA_CHECK(options_.mode == "max" || options_.mode == "min", "scheduler: plateau mode '", options_.mode,
                 "' is not max or min");
    PNEUMA_CHECK(options_.factor > 0 && options_.factor < 1, "scheduler: plateau factor ", options_.factor,
                 " is not in (0, 1)");
    PNEUMA_CHECK(options_.patience >= 0 && options_.cooldown >= 0, "scheduler: plateau patience/cooldown < 0");
  }
  plateau_lr_ = base_lr_;
  best_ = initial_best(options_.mode);
  apply();
}

double LrScheduler::scheduled_lr(int64_t epoch) const {
  const int64_t warmup = options_.warmup_epochs;
  if (epoch < warmup) {
    // LinearLR(start_factor = 1/(W+1), end_factor = 1, total_iters = W) at step `epoch`.
    const double start = 1.0 / static_cast<double>(warmup + 1);
    return base_lr_ * (start + (1.0 - start) * static_cast<double>(epoch) / static_cast<double>(warmup));
  }
  const int64_t t = epoch - warmup;
  if (options_.kind == "step") return base_lr_ * std::pow(options_.gamma, static_cast<double>(t / options_.step_size));
  if (options_.kind == "cosine")
    return options_.eta_min +
           (base_lr_ - options_.eta_min) *
               (1 + std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(options_.t_max))) / 2;
  if (options_.kind == "plateau") return plateau_lr_;
  return base_lr_;
}

void LrScheduler::apply() {
  lr_ = scheduled_lr(t_);
  optimizer_->set_lr(lr_);
}

void LrScheduler::step(std::optional<double> metric) {
  if (options_.kind == "plateau" && t_ >= options_.warmup_epochs) {
    PNEUMA_CHECK(metric.has_value(), "scheduler: plateau needs the validation metric at every step");
    const double current = *metric;
    const bool better = options_.mode == "max" ? current > best_ * (1 + options_.threshold)
                                               : current < best_ * (1 - options_.threshold);
    // rel threshold on a best of +-inf: torch compares against inf * (1 +- threshold), the same.
    if (better) {
      best_ = current;
      num_bad_epochs_ = 0;
    } else {
      ++num_bad_epochs_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      num_bad_epochs_ = 0;
    }
    if (num_bad_epochs_ > options_.patience) {
      const double reduced = std::max(plateau_lr_ * options_.factor, options_.min_lr);
      if (plateau_lr_ - reduced > kPlateauEps) plateau_lr_ = reduced;
      cooldown_counter_ = options_.cooldown;
      num_bad_epochs_ = 0;
    }
  }
  ++t_;
  apply();
}

nlohmann::json LrScheduler::state() const {
  return {{"kind", options_.kind},
          {"t", t_},
          {"base_lr", base_lr_},
          {"lr", lr_},
          {"plateau_lr", plateau_lr_},
          {"best", number_to_json(best_)},
          {"num_bad_epochs", num_bad_epochs_},
          {"cooldown_counter", cooldown_counter_}};
}

void LrScheduler::load_state(const nlohmann::json& state) {
  try {
    const std::string kind = state.at("kind").get<std::string>();
    PNEUMA_CHECK(kind == options_.kind, "scheduler: the saved state is of a '", kind, "' schedule, this run uses '",
                 options_.kind, "'");
    t_ = state.at("t").get<int64_t>();
    base_lr_ = state.at("base_lr").get<double>();
    plateau_lr_ = state.at("plateau_lr").get<double>();
    best_ = number_from_json(state.at("best"));
    num_bad_epochs_ = state.at("num_bad_epochs").get<int64_t>();
    cooldown_counter_ = state.at("cooldown_counter").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    PNEUMA_FAIL("scheduler: bad saved state (", e.what(), ")");
  }
  apply();
}

}  // namespace pneuma::train
