#pragma once
// max/min reductions (torch 1.13 semantics). NaN propagates: a slice holding a NaN
// reduces to NaN (and to the index of its first NaN). Ties: the dim forms return the
// first extreme index and send the gradient there; max()/min() over everything and
// amax/amin split the gradient evenly among the tied elements.
#include <utility>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma {

// Over all elements; a 0-d result. The tensor must not be empty.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// Over one dim: (values, int64 indices).
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
// Over several dims (all dims when `dims` is empty).
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);

}  // namespace pneuma
