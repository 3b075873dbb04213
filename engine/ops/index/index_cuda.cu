// cat, where and masked_fill on CUDA tensors: elementwise kernels on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/elementwise/elementwise_kernels.h"
#include "engine/ops/index/index_cuda.h"

namespace pneuma::cuda {

void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out) {
  const cudaStream_t stream = op_stream(out.device());
  int64_t offset = 0;
  for (const Tensor& t : inputs) {
    const Tensor region = make_view(out, t.shape(), out.strides(), out.offset() + offset * out.strides()[dim]);
    kern::run_copy(t, region, stream);
    offset += t.shape()[dim];
  }
}

void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) {
  kern::run_where(condition, a, b, out, op_stream(out.device()));
}

void masked_fill(const Tensor& x, const Tensor& mask, double value, const Tensor& out) {
  kern::run_masked_fill(x, mask, value, out, op_stream(out.device()));
}

}  // namespace pneuma::cuda
