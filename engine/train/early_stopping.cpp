#include "engine/train/early_stopping.h"

#include <cmath>

#include "engine/core/error.h"

namespace pneuma::train {

EarlyStopping::EarlyStopping(int64_t patience, bool maximize, double min_delta)
    : patience_(patience),
      maximize_(maximize),
      min_delta_(min_delta),
      best_(maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity()) {
  PNEUMA_CHECK(patience >= 0, "early stopping: patience ", patience, " < 0");
  PNEUMA_CHECK(min_delta >= 0, "early stopping: min_delta ", min_delta, " < 0");
}

bool EarlyStopping::update(double value) {
  const int64_t index = updates_++;
  const bool improved =
      !std::isnan(value) && (best_epoch_ < 0 || (maximize_ ? value > best_ + min_delta_ : value < best_ - min_delta_));
  if (improved) {
    best_ = value;
    best_epoch_ = index;
    bad_epochs_ = 0;
  } else {
    ++bad_epochs_;
  }
  return improved;
}

bool EarlyStopping::should_stop() const { return patience_ > 0 && bad_epochs_ >= patience_; }

nlohmann::json EarlyStopping::state() const {
  // best is +-inf only before the first finite update; store null then.
  return {{"best", best_epoch_ < 0 ? nlohmann::json() : nlohmann::json(best_)},
          {"best_epoch", best_epoch_},
          {"updates", updates_},
          {"bad_epochs", bad_epochs_}};
}

void EarlyStopping::load_state(const nlohmann::json& state) {
  try {
    best_epoch_ = state.at("best_epoch").get<int64_t>();
    if (best_epoch_ >= 0) best_ = state.at("best").get<double>();
    updates_ = state.at("updates").get<int64_t>();
    bad_epochs_ = state.at("bad_epochs").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    PNEUMA_FAIL("early stopping: bad saved state (", e.what(), ")");
  }
}

}  // namespace pneuma::train
