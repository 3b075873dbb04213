// softmax / log_softmax on CUDA tensors: our kernels, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/softmax/softmax_cuda.h"
#include "engine/ops/softmax/softmax_kernels.h"

namespace pneuma::cuda {

void softmax_forward(const Tensor& x, int64_t dim, bool log, const Tensor& y) {
  kern::run_softmax_forward(x, dim, log, y, op_stream(y.device()));
}

void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& dx) {
  kern::run_softmax_backward(y, g, dim, log, dx, op_stream(dx.device()));
}

}  // namespace pneuma::cuda
