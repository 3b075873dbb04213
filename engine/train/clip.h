#pragma once
// Gradient clipping, as torch.nn.utils.clip_grad_norm_.
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::train {

// The norm of all gradients together (parameters without a gradient are skipped;
// norm_type may be infinity); when it exceeds max_norm every gradient is scaled in place
// by max_norm / (total + 1e-6). Returns the total norm before clipping. A non-finite
// total leaves the gradients as they are (torch error_if_nonfinite=False would scale by
// nan; the NaN loss check stops training anyway). CUDA gradients are reduced and scaled on
// their device by the engine's CUDA ops; reading the total back is one host sync per device.
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0);

}  // namespace pneuma::train
