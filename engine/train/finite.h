#pragma once
// The NaN/inf loss guard of the training loops.
#include <cstdint>
#include <string>

#include "engine/core/tensor.h"

namespace pneuma::train {

// Throws pneuma::Error "loss is nan at step 123; kept <keep_note>" (or inf / -inf) when
// the scalar loss is not finite. keep_note says what survives, e.g. "the checkpoint of
// epoch 2 in out/"; "" leaves the clause out. step counts optimizer steps from 1.
void require_finite_loss(const Tensor& loss, int64_t step, const std::string& keep_note);
void require_finite_loss(double loss, int64_t step, const std::string& keep_note);

}  // namespace pneuma::train
