#pragma once
// Joining, indexing and selection ops (torch 1.13 semantics). Index tensors are int64,
// conditions and masks are bool. The data operands may have any dtype for the forward
// (so int64 labels and bool masks can be joined and indexed too); gradients flow to
// float32/float64 operands.
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma {

// Concatenates along dim; all tensors share dtype, device and every size but dim's.
// As in PyTorch, 1-d tensors of size 0 are skipped (legacy empty tensors).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Stacks equally shaped tensors along a new dim (dim in [-(ndim+1), ndim]).
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// out = x with dim restricted to the entries listed in index (int64, 0-d or 1-d);
// repeated indices are allowed and their gradients accumulate.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j][k] = x[index[i][j][k]][j][k] (for dim 0); index has x's rank and
// index.size(d) <= x.size(d) for d != dim. out has index's shape.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// out = x with src[i][j][k] added at x[index[i][j][k]][j][k] (dim 0); gather's adjoint.
// index.size(d) <= src.size(d) for all d and <= x.size(d) for d != dim.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// condition ? a : b elementwise, broadcasting all three; condition is bool.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
// x with value written where mask (bool) is true; x and mask broadcast together.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// Free-function form of Tensor::flatten (torch.flatten).
inline Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1) {
  return x.flatten(start_dim, end_dim);
}

}  // namespace pneuma
