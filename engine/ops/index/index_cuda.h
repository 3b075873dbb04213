#pragma once
// CUDA entry points of the joining/indexing ops, with the signatures of their CPU twins in
// index_cpu.h. where, masked_fill and cat are elementwise kernels
// (kernels/elementwise/elementwise.cuh); index_select, index_add, gather and scatter_add are
// kernels/index/index.cuh. Indices are checked on the device where the CPU loops check them, one
// host sync to read the verdict, unless the caller passes check = false for indices a forward
// pass already checked (backward passes). Defined in index_cuda.cu with the CUDA backend, in
// engine/cuda/without_cuda.cpp otherwise.
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::cuda {

// Copies each input into its slice of out along dim (inputs listed in order).
void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out);
// out (contiguous, x's shape with index.numel() at dim) = x[..., index, ...]; any dtype.
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, bool check = true);
// out[..., index[i], ...] += src[..., i, ...]; out contiguous, float.
void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool check = true);
// out (index's shape) = x gathered along dim; any dtype.
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, const char* op, bool check = true);
// out[... index[p] ...] += src[p] for every position p of index; float.
void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, const char* op,
                 bool check = true);
// out = condition ? a : b with broadcasting; out has the broadcast shape.
void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out);
// out = mask ? value : x with broadcasting; out has the broadcast shape.
void masked_fill(const Tensor& x, const Tensor& mask, double value, const Tensor& out);

}  // namespace pneuma::cuda
