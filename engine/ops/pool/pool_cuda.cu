// Pooling on CUDA tensors: our kernels, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/pool/pool_cuda.h"
#include "engine/ops/pool/pool_kernels.h"

namespace pneuma::cuda {

void max_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const Tensor& y, const Tensor& indices) {
  kern::run_max_pool2d_forward(x, p, y, indices, op_stream(y.device()));
}
void max_pool2d_backward(const Tensor& g, const Tensor& indices, const kern::Pool2d& p, const Tensor& dx) {
  kern::run_max_pool2d_backward(g, indices, p, dx, op_stream(dx.device()));
}
void avg_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const cpu::AvgOptions& o, const Tensor& y) {
  kern::run_avg_pool2d_forward(x, p, o, y, op_stream(y.device()));
}
void avg_pool2d_backward(const Tensor& g, const kern::Pool2d& p, const cpu::AvgOptions& o, const Tensor& dx) {
  kern::run_avg_pool2d_backward(g, p, o, dx, op_stream(dx.device()));
}
void adaptive_avg_pool2d_forward(const Tensor& x, const kern::Pool2d& p, const Tensor& y) {
  kern::run_adaptive_avg_pool2d_forward(x, p, y, op_stream(y.device()));
}
void adaptive_avg_pool2d_backward(const Tensor& g, const kern::Pool2d& p, const Tensor& dx) {
  kern::run_adaptive_avg_pool2d_backward(g, p, dx, op_stream(dx.device()));
}

}  // namespace pneuma::cuda
