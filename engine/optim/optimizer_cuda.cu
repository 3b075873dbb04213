// Fused optimizer steps on CUDA parameters, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/optim/optimizer_cuda.h"
#include "engine/optim/optimizer_kernels.h"

namespace pneuma::cuda {

void sgd_step(const std::vector<Tensor>& parameters, std::vector<Tensor>& momentum_buffers,
              const optim::SgdOptions& options, double lr) {
  if (parameters.empty()) return;
  kern::run_fused_sgd_step(parameters, momentum_buffers, options, lr, op_stream(parameters.front().device()));
}

void adam_step(const std::vector<Tensor>& parameters, std::vector<Tensor>& exp_avg, std::vector<Tensor>& exp_avg_sq,
               const optim::AdamOptions& options, double lr, int64_t step) {
  if (parameters.empty()) return;
  kern::run_fused_adam_step(parameters, exp_avg, exp_avg_sq, options, lr, step,
                            op_stream(parameters.front().device()));
}

}  // namespace pneuma::cuda
