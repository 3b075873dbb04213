// Dropout on CUDA tensors: our kernels, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/dropout/dropout_cuda.h"
#include "engine/ops/dropout/dropout_kernels.h"

namespace pneuma::cuda {

void dropout_forward(const Tensor& x, double p, uint64_t seed, const Tensor& y, const Tensor& mask) {
  kern::run_dropout_forward(x, p, seed, y, mask, op_stream(y.device()));
}

void dropout_backward(const Tensor& g, const Tensor& mask, double p, const Tensor& dx) {
  kern::run_dropout_backward(g, mask, p, dx, op_stream(dx.device()));
}

}  // namespace pneuma::cuda
