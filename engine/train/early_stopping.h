#pragma once
// Early stopping on a validation metric: stop after `patience` epochs without a new best.
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

namespace pneuma::train {

class EarlyStopping {
 public:
  // patience 0: never stop (only tracks the best). A new best must beat the old one by
  // more than min_delta (in the metric's direction).
  explicit EarlyStopping(int64_t patience, bool maximize = true, double min_delta = 0);

  // Call once per epoch; true when `value` is a new best. NaN is never a best.
  bool update(double value);
  bool should_stop() const;
  double best() const { return best_; }
  // 0-based index of the update() call that gave the best (-1 before any).
  int64_t best_epoch() const { return best_epoch_; }
  int64_t epochs_without_improvement() const { return bad_epochs_; }

  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  int64_t patience_;
  bool maximize_;
  double min_delta_;
  double best_;
  int64_t best_epoch_ = -1;
  int64_t updates_ = 0;
  int64_t bad_epochs_ = 0;
};

}  // namespace pneuma::train
