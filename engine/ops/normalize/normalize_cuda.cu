// normalize on CUDA tensors: our kernels, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/normalize/normalize_cuda.h"
#include "engine/ops/normalize/normalize_kernels.h"

namespace pneuma::cuda {

void normalize_forward(const Tensor& x, int64_t dim, double p, double eps, const Tensor& y, const Tensor& norm) {
  kern::run_normalize_forward(x, dim, p, eps, y, norm, op_stream(y.device()));
}

void normalize_backward(const Tensor& x, const Tensor& norm, const Tensor& g, int64_t dim, double p, double eps,
                        const Tensor& dx) {
  kern::run_normalize_backward(x, norm, g, dim, p, eps, dx, op_stream(dx.device()));
}

}  // namespace pneuma::cuda
