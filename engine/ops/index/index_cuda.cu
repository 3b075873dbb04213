// The joining/indexing ops on CUDA tensors, on the device context's stream: cat, where and
// masked_fill are elementwise kernels, the gather/scatter family kernels/index/index.cuh.
#include "engine/cuda/op_stream.h"
#include "engine/ops/elementwise/elementwise_kernels.h"
#include "engine/ops/index/index_cuda.h"
#include "engine/ops/index/index_kernels.h"

namespace pneuma::cuda {

namespace {
kern::IndexCheck index_check(bool check) { return check ? kern::IndexCheck::Validate : kern::IndexCheck::Trusted; }
}  // namespace

void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out) {
  const cudaStream_t stream = op_stream(out.device());
  int64_t offset = 0;
  for (const Tensor& t : inputs) {
    const Tensor region = make_view(out, t.shape(), out.strides(), out.offset() + offset * out.strides()[dim]);
    kern::run_copy(t, region, stream);
    offset += t.shape()[dim];
  }
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, bool check) {
  kern::run_index_select(x, dim, index, out, op_stream(out.device()), index_check(check));
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool check) {
  kern::run_index_add(out, dim, index, src, op_stream(out.device()), index_check(check));
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, const char* op, bool check) {
  kern::run_gather(x, dim, index, out, op, op_stream(out.device()), index_check(check));
}

void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, const char* op,
                 bool check) {
  kern::run_scatter_add(out, dim, index, src, op, op_stream(out.device()), index_check(check));
}

void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) {
  kern::run_where(condition, a, b, out, op_stream(out.device()));
}

void masked_fill(const Tensor& x, const Tensor& mask, double value, const Tensor& out) {
  kern::run_masked_fill(x, mask, value, out, op_stream(out.device()));
}

}  // namespace pneuma::cuda
