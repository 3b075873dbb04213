#pragma once
// CPU matrix products: OpenBLAS GEMM (the fast path, float32 and float64) and plain
// reference loops that the fast path is tested against. bfloat16 goes through float32 (see
// gemm_bfloat16).
#include <array>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

// out[batch..., m, n] = a[..., m, k] @ b[..., k, n] (+ out when accumulate). out is
// contiguous; the batch dims of a and b are right-aligned with out's and broadcast
// (missing or size-1 dims repeat). Operands may have any strides. BLAS (float32 and
// float64) unless the fast path is off (engine/cpu/fast_path.h), then the loops.
// bfloat16 operands and out: a float32 product, rounded to bfloat16 once.
void gemm(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate = false);
// Debian's OpenBLAS has no bfloat16 GEMM (sbgemm): a and b are widened to float32 (exact), multiplied
// by the float32 gemm (float32 accumulation, as oneDNN and cuBLAS do for bfloat16) and the result is
// rounded to bfloat16 once. All three bfloat16.
void gemm_bfloat16(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate);
void gemm_blas(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate);
void gemm_reference(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate);

// For every batch index of out (all its dims but the last two), the element offsets of
// that batch's matrix in a, b and out (broadcast batch dims repeat offset 0).
std::vector<std::array<int64_t, 3>> batch_offsets(const Tensor& a, const Tensor& b, const Tensor& out);

// Writes row (1-d, n elements) into every row of out ([rows, n], contiguous).
void fill_rows(const Tensor& row, const Tensor& out);

}  // namespace pneuma::cpu
