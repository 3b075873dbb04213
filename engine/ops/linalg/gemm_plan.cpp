#include "engine/ops/linalg/gemm_plan.h"

#include <algorithm>
#include <climits>

#include "engine/ops/linalg/linalg_cpu.h"

namespace pneuma::ops {

namespace {

int64_t checked_int(int64_t value, const char* what) {
  PNEUMA_CHECK(value >= 0 && value <= INT_MAX, "matmul (CUDA): ", what, " ", value, " exceeds cuBLAS's int range");
  return value;
}

GemmOperand readable_operand(const Tensor& t, const char* name) {
  const int64_t r = t.size(-2), c = t.size(-1);
  const auto operand = column_major_operand(r, c, t.strides()[t.dim() - 2], t.strides()[t.dim() - 1]);
  PNEUMA_CHECK(operand.has_value(), "matmul (CUDA): operand ", name, " ", t.str(), " with strides ",
               shape_str(t.strides()), " cannot be read by cuBLAS in place; make it contiguous first");
  checked_int(operand->ld, "leading dimension");
  return *operand;
}

}  // namespace

std::optional<GemmOperand> column_major_operand(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  // Rows contiguous: stored column-major this is the [cols, rows] transpose, exactly what the
  // swapped product wants, so op N. A single row or column has no meaningful second stride.
  if ((col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= std::max<int64_t>(1, cols)))
    return GemmOperand{false, rows == 1 ? std::max<int64_t>(1, cols) : row_stride};
  if ((row_stride == 1 || rows == 1) && (cols == 1 || col_stride >= std::max<int64_t>(1, rows)))
    return GemmOperand{true, cols == 1 ? std::max<int64_t>(1, rows) : col_stride};
  return std::nullopt;
}

bool gemm_readable(const Tensor& t) {
  return column_major_operand(t.size(-2), t.size(-1), t.strides()[t.dim() - 2], t.strides()[t.dim() - 1])
      .has_value();
}

GemmPlan plan_gemm(const Tensor& a, const Tensor& b, const Tensor& out) {
  PNEUMA_CHECK(a.dim() >= 2 && b.dim() >= 2 && out.dim() >= 2, "matmul (CUDA): expected matrices, got ", a.str(),
               ", ", b.str(), " and ", out.str());
  PNEUMA_CHECK(out.is_contiguous(), "matmul (CUDA): the output ", out.str(), " must be contiguous");
  GemmPlan plan;
  plan.m = checked_int(out.size(-2), "size");
  plan.n = checked_int(out.size(-1), "size");
  plan.k = checked_int(a.size(-1), "size");
  PNEUMA_CHECK(a.size(-2) == plan.m && b.size(-2) == plan.k && b.size(-1) == plan.n, "matmul (CUDA): shapes ",
               shape_str(a.shape()), " @ ", shape_str(b.shape()), " do not give ", shape_str(out.shape()));
  plan.first = readable_operand(b, "b");
  plan.second = readable_operand(a, "a");
  plan.ldc = std::max<int64_t>(1, plan.n);
  plan.offsets = cpu::batch_offsets(a, b, out);
  plan.batch = checked_int(static_cast<int64_t>(plan.offsets.size()), "batch count");
  if (plan.batch > 1) {
    plan.stride_a = plan.offsets[1][0];
    plan.stride_b = plan.offsets[1][1];
    plan.stride_c = plan.offsets[1][2];
  } else {
    plan.stride_c = plan.m * plan.n;
  }
  for (int64_t i = 0; i < plan.batch && plan.uniform_batch; ++i) {
    const auto& o = plan.offsets[i];
    plan.uniform_batch = o[0] == i * plan.stride_a && o[1] == i * plan.stride_b && o[2] == i * plan.stride_c;
  }
  return plan;
}

}  // namespace pneuma::ops
