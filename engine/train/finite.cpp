#include "engine/train/finite.h"

#include <cmath>

#include "engine/core/error.h"

namespace pneuma::train {

void require_finite_loss(double loss, int64_t step, const std::string& keep_note) {
  if (std::isfinite(loss)) return;
  const char* what = std::isnan(loss) ? "nan" : (loss > 0 ? "inf" : "-inf");
  PNEUMA_FAIL("loss is ", what, " at step ", step, keep_note.empty() ? "" : "; kept ", keep_note);
}

void require_finite_loss(const Tensor& loss, int64_t step, const std::string& keep_note) {
  PNEUMA_CHECK(loss.defined() && loss.numel() == 1, "require_finite_loss: the loss is not one number (",
               loss.defined() ? loss.str() : "undefined", ")");
  require_finite_loss(loss.item(), step, keep_note);
}

}  // namespace pneuma::train
