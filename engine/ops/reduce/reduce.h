#pragma once
// Reductions over dims (negative dims allowed; an empty dim list reduces everything).
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma {

Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);

namespace ops {
// Sorted, wrapped, de-duplicated dims to reduce; all dims when `dims` is empty.
std::vector<int64_t> reduction_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op);
// The output shape of a reduction (reduced dims dropped, or kept as 1).
Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim);
// Re-inserts reduced dims as size 1, so a gradient of a keepdim=false result broadcasts.
Tensor unsqueeze_reduced(const Tensor& grad, const Shape& input_shape, const std::vector<int64_t>& dims);
// x viewed as [outer, inner] where inner runs over the reduced dims (a copy when needed).
Tensor reduced_to_last(const Tensor& x, const std::vector<int64_t>& dims);
}  // namespace ops

}  // namespace pneuma
