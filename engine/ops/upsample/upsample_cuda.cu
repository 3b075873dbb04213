// Upsampling on CUDA tensors: our kernels, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/upsample/upsample_cuda.h"
#include "engine/ops/upsample/upsample_kernels.h"

namespace pneuma::cuda {

void upsample_nearest2d_forward(const Tensor& x, const cpu::Upsample2d& u, const Tensor& y) {
  kern::run_upsample2d_forward(false, x, u, y, op_stream(y.device()));
}
void upsample_nearest2d_backward(const Tensor& g, const cpu::Upsample2d& u, const Tensor& dx) {
  kern::run_upsample2d_backward(false, g, u, dx, op_stream(dx.device()));
}
void upsample_bilinear2d_forward(const Tensor& x, const cpu::Upsample2d& u, const Tensor& y) {
  kern::run_upsample2d_forward(true, x, u, y, op_stream(y.device()));
}
void upsample_bilinear2d_backward(const Tensor& g, const cpu::Upsample2d& u, const Tensor& dx) {
  kern::run_upsample2d_backward(true, g, u, dx, op_stream(dx.device()));
}

}  // namespace pneuma::cuda
