// Batch norm on CUDA tensors: our kernels, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/norm/norm_cuda.h"
#include "engine/ops/norm/norm_kernels.h"

namespace pneuma::cuda {

void batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var) {
  kern::run_batch_norm_stats(x, N, C, S, mean, var, op_stream(x.device()));
}

void batch_norm_apply(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var,
                      const Tensor& weight, const Tensor& bias, double eps, const Tensor& y) {
  kern::run_batch_norm_apply(x, N, C, S, mean, var, weight, bias, eps, y, op_stream(y.device()));
}

void batch_norm_backward(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                         const Tensor& var, const Tensor& weight, double eps, bool training, const Tensor& dx,
                         const Tensor& dweight, const Tensor& dbias) {
  kern::run_batch_norm_backward(x, g, N, C, S, mean, var, weight, eps, training, dx, dweight, dbias,
                                op_stream(g.device()));
}

void batch_norm_update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                               const Tensor& var, double momentum, int64_t count) {
  kern::run_batch_norm_update_running(running_mean, running_var, mean, var, momentum, count,
                                      op_stream(mean.device()));
}

}  // namespace pneuma::cuda
