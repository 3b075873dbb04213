#pragma once
// The optimizers' steps on CUDA parameters: every parameter with a gradient updated in one fused
// launch per dtype (kernels/optim/fused_update.cuh), with the CPU step's math. Defined in
// optimizer_cuda.cu with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include <vector>

#include "engine/core/tensor.h"
#include "engine/optim/optimizer.h"

namespace pneuma::cuda {

// optim::SGD::step for parameters on one CUDA device; creates missing momentum buffers there.
void sgd_step(const std::vector<Tensor>& parameters, std::vector<Tensor>& momentum_buffers,
              const optim::SgdOptions& options, double lr);
// optim::Adam::step (Adam or AdamW) for parameters on one CUDA device; `step` counts this step.
void adam_step(const std::vector<Tensor>& parameters, std::vector<Tensor>& exp_avg, std::vector<Tensor>& exp_avg_sq,
               const optim::AdamOptions& options, double lr, int64_t step);

}  // namespace pneuma::cuda
