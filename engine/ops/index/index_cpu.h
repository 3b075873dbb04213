#pragma once
// CPU loops of the joining/indexing ops. Shapes and dtypes are checked by the caller
// (engine/ops/index/index.cpp); index values are checked here, where they are read,
// and a bad one throws naming the op, the value and the size of the indexed dim.
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

// Copies each input into its slice of out along dim (inputs listed in order).
void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out);
// out (contiguous, x's shape with index.numel() at dim) = x[..., index, ...]; any dtype.
void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
// out[..., index[i], ...] += src[..., i, ...]; out contiguous, float.
void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
// out (index's shape) = x gathered along dim; any dtype.
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, const char* op);
// out[... index[p] ...] += src[p] for every position p of index; float.
void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, const char* op);
// out = condition ? a : b with broadcasting; out contiguous with the broadcast shape.
void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out);
// out = mask ? value : x with broadcasting; out contiguous with the broadcast shape.
void masked_fill(const Tensor& x, const Tensor& mask, double value, const Tensor& out);

}  // namespace pneuma::cpu
