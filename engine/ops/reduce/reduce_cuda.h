#pragma once
// CUDA entry points of the reductions, with the signatures of the CPU loops in reduce.cpp.
// Defined in reduce_cuda.cu with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::cuda {

// x summed over dims (sorted, distinct, wrapped), accumulated in double like the CPU.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
// As cpu::minmax_rows (engine/ops/reduce/minmax_cpu.h).
void minmax_rows(const Tensor& rows, bool is_max, const Tensor& values, const Tensor& indices);

}  // namespace pneuma::cuda
