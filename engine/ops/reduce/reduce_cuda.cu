// Sum and max/min reductions on CUDA tensors: our kernels, on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/reduce/reduce.h"
#include "engine/ops/reduce/reduce_cuda.h"
#include "engine/ops/reduce/reduce_kernels.h"

namespace pneuma::cuda {

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, double scale) {
  Tensor out = Tensor::empty(ops::reduced_shape(x.shape(), dims, keepdim), x.dtype(), x.device());
  kern::run_sum(x, dims, out, op_stream(x.device()), scale);
  return out;
}

void minmax_rows(const Tensor& rows, bool is_max, const Tensor& values, const Tensor& indices) {
  kern::run_minmax_rows(rows, is_max, values, indices, op_stream(values.device()));
}

}  // namespace pneuma::cuda
