#pragma once
#include "engine/core/tensor.h"

namespace pneuma::cpu {

// For each row r of rows ([outer, inner], contiguous, inner > 0): values[r] = the max
// (or min) of the row, indices[r] = the first index holding it; a NaN wins over any
// number. values and indices are contiguous with outer elements; indices may be
// undefined when not wanted.
void minmax_rows(const Tensor& rows, bool is_max, const Tensor& values, const Tensor& indices);

}  // namespace pneuma::cpu
