#pragma once
// How a row-major batched matrix product out[..., m, n] = a[..., m, k] @ b[..., k, n] maps onto
// cuBLAS, which is column-major. A row-major matrix read column-major is its transpose, so the
// product is computed as out^T = b^T @ a^T: cuBLAS's first operand is b, its second a, and its
// result [n, m] column-major is out row-major. Plain host code, tested without a GPU
// (tests/cuda/test_gemm_plan.cpp replays plans with a column-major reference GEMM).
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::ops {

// How cuBLAS reads one operand in place: as stored (op N) or transposed (op T), with its leading
// dimension.
struct GemmOperand {
  bool transpose = false;
  int64_t ld = 1;
};

// The operand role in cuBLAS's column-major product, for the row-major matrix [rows, cols] with
// element strides (row_stride, col_stride): N with ld = row_stride when rows are contiguous,
// T with ld = col_stride when columns are; nothing when neither (the caller copies it first).
std::optional<GemmOperand> column_major_operand(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride);

struct GemmPlan {
  // cuBLAS's sizes: op(first) is [n, k], op(second) [k, m], the result [n, m] column-major.
  int64_t m = 0, n = 0, k = 0;
  GemmOperand first;   // b
  GemmOperand second;  // a
  int64_t ldc = 1;     // out's row stride
  int64_t batch = 1;
  // One strided-batched call when every operand's batch offsets are i * stride (0: broadcast);
  // otherwise one call per entry of offsets ({a, b, out} element offsets per batch).
  bool uniform_batch = true;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  std::vector<std::array<int64_t, 3>> offsets;
};

// The plan for out = a @ b (+ out) with the engine's gemm contract (engine/ops/linalg/linalg_cpu.h):
// out contiguous [batch..., m, n]; a [..., m, k] and b [..., k, n] with batch dims right-aligned
// and broadcast. Throws when an operand is not readable in place (see column_major_operand) or a
// size does not fit cuBLAS's int.
GemmPlan plan_gemm(const Tensor& a, const Tensor& b, const Tensor& out);

// True when cuBLAS can read t's last two dims in place (else make it contiguous first).
bool gemm_readable(const Tensor& t);

}  // namespace pneuma::ops
