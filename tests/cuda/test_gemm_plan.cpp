// The row-major -> column-major mapping of the cuBLAS matmul (engine/ops/linalg/gemm_plan.h),
// tested on the host: every plan is replayed by a column-major GEMM with cuBLAS's exact argument
// semantics (op, leading dims, batch strides or per-batch offsets) and must give the CPU
// reference product.
#include <doctest/doctest.h>

#include <vector>

#include "engine/ops/linalg/gemm_plan.h"
#include "engine/ops/linalg/linalg_cpu.h"
#include "engine/pneuma.h"

using namespace pneuma;

namespace {

// C = alpha op(A) op(B) + beta C, all column-major (BLAS/cuBLAS semantics), double accumulation
// in the order of the CPU reference loops.
void column_major_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const double* a,
                       int64_t lda, const double* b, int64_t ldb, bool accumulate, double* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = transpose_a ? a[p + i * lda] : a[i + p * lda];
        const double bv = transpose_b ? b[j + p * ldb] : b[p + j * ldb];
        sum += av * bv;
      }
      c[i + j * ldc] = accumulate ? c[i + j * ldc] + sum : sum;
    }
  }
}

// What linalg_cublas.cu does with a plan, with the column-major GEMM above in place of cuBLAS.
void replay(const ops::GemmPlan& plan, const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  const double* A = a.data<double>();
  const double* B = b.data<double>();
  double* C = out.data<double>();
  for (int64_t i = 0; i < plan.batch; ++i) {
    const std::array<int64_t, 3> o = plan.uniform_batch
                                         ? std::array<int64_t, 3>{i * plan.stride_a, i * plan.stride_b, i * plan.stride_c}
                                         : plan.offsets[i];
    column_major_gemm(plan.first.transpose, plan.second.transpose, plan.n, plan.m, plan.k, B + o[1], plan.first.ld,
                      A + o[0], plan.second.ld, accumulate, C + o[2], plan.ldc);
  }
}

Shape product_shape(const Tensor& a, const Tensor& b) {
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape shape = broadcast_shapes(batch_a, batch_b, "test");
  shape.push_back(a.size(-2));
  shape.push_back(b.size(-1));
  return shape;
}

// Returns whether the plan was a single strided-batched call.
bool check_plan(const Tensor& a, const Tensor& b) {
  const Shape shape = product_shape(a, b);
  const Tensor expected = Tensor::empty(shape, DType::Float64), actual = Tensor::empty(shape, DType::Float64);
  cpu::gemm_reference(a, b, expected, false);
  const ops::GemmPlan plan = ops::plan_gemm(a, b, actual);
  replay(plan, a, b, actual, false);
  CHECK(actual.to_vector() == expected.to_vector());
  // Accumulating onto what is there, as linear does onto its bias rows.
  const Tensor base = Tensor::randn(shape, 5, DType::Float64);
  const Tensor expected_sum = base.clone(), actual_sum = base.clone();
  cpu::gemm_reference(a, b, expected_sum, true);
  replay(plan, a, b, actual_sum, true);
  CHECK(actual_sum.to_vector() == expected_sum.to_vector());
  return plan.uniform_batch;
}

Tensor matrix(const Shape& shape, uint64_t seed) { return Tensor::randn(shape, seed, DType::Float64); }

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("gemm plan: column-major operand roles") {
  // Row-major contiguous [3, 4]: read as stored (op N), leading dim 4.
  auto op = ops::column_major_operand(3, 4, 4, 1);
  REQUIRE(op.has_value());
  CHECK_FALSE(op->transpose);
  CHECK(op->ld == 4);
  // Its transpose view [4, 3] with strides (1, 4): op T, leading dim 4.
  op = ops::column_major_operand(4, 3, 1, 4);
  REQUIRE(op.has_value());
  CHECK(op->transpose);
  CHECK(op->ld == 4);
  // A slice of wider rows keeps the parent's row stride as leading dim.
  op = ops::column_major_operand(3, 4, 10, 1);
  CHECK(op->ld == 10);
  // Vectors: a single row or column reads either way with a valid leading dim.
  CHECK(ops::column_major_operand(1, 5, 0, 1)->ld == 5);
  CHECK(ops::column_major_operand(5, 1, 1, 0)->ld >= 1);
  // Both strides above 1: cuBLAS cannot read it.
  CHECK_FALSE(ops::column_major_operand(3, 4, 8, 2).has_value());
  CHECK_FALSE(ops::gemm_readable(matrix({6, 8}, 1).slice(0, 0, 6, 2).slice(1, 0, 8, 2)));
  CHECK(ops::gemm_readable(matrix({6, 8}, 1).transpose(0, 1)));
}

TEST_CASE("gemm plan: matrices in every layout") {
  const Tensor a = matrix({5, 7}, 1), b = matrix({7, 3}, 2);
  CHECK(check_plan(a, b));
  CHECK(check_plan(matrix({7, 5}, 3).transpose(0, 1), b));                      // a transposed
  CHECK(check_plan(a, matrix({3, 7}, 4).transpose(0, 1)));                      // b transposed
  CHECK(check_plan(matrix({7, 5}, 5).transpose(0, 1), matrix({3, 7}, 6).transpose(0, 1)));
  CHECK(check_plan(matrix({5, 12}, 7).slice(1, 2, 9), matrix({9, 3}, 8).slice(0, 1, 8)));  // padded rows
  CHECK(check_plan(matrix({1, 7}, 9), b));                                      // one row
  CHECK(check_plan(a, matrix({7, 1}, 10)));                                     // one column
  CHECK(check_plan(matrix({1, 7}, 11), matrix({7, 1}, 12)));                    // a dot product
}

TEST_CASE("gemm plan: batches - broadcast batches and the per-batch fallback") {
  // Plain batches and a shared right operand: one strided-batched call (stride 0 for b).
  CHECK(check_plan(matrix({4, 5, 7}, 1), matrix({4, 7, 3}, 2)));
  CHECK(check_plan(matrix({4, 5, 7}, 3), matrix({7, 3}, 4)));
  CHECK(check_plan(matrix({5, 7}, 5), matrix({4, 7, 3}, 6)));
  // Transposed batch members.
  CHECK(check_plan(matrix({4, 7, 5}, 7).transpose(1, 2), matrix({4, 3, 7}, 8).transpose(1, 2)));
  // Batch dims broadcast against each other ([2, 1] with [3]): no single stride, one call per batch.
  CHECK_FALSE(check_plan(matrix({2, 1, 5, 7}, 9), matrix({3, 7, 3}, 10)));
  // A batch whose members are permuted in memory: also per batch.
  CHECK_FALSE(check_plan(matrix({3, 2, 5, 7}, 11).transpose(0, 1), matrix({2, 3, 7, 3}, 12)));
}

TEST_CASE("gemm plan: refuses what cuBLAS cannot take") {
  const Tensor strided = matrix({10, 14}, 1).slice(0, 0, 10, 2).slice(1, 0, 14, 2);  // [5, 7], strides (28, 2)
  const Tensor out = Tensor::empty({5, 3}, DType::Float64);
  CHECK_THROWS_WITH_AS(ops::plan_gemm(strided, matrix({7, 3}, 2), out), doctest::Contains("make it contiguous"),
                       Error);
  CHECK_THROWS_AS(ops::plan_gemm(matrix({5, 7}, 1), matrix({7, 3}, 2), Tensor::empty({3, 5}, DType::Float64).transpose(0, 1)),
                  Error);
  CHECK_THROWS_AS(ops::plan_gemm(matrix({5, 7}, 1), matrix({6, 3}, 2), out), Error);
}

}  // TEST_SUITE
