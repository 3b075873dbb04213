// OpenBLAS GEMM: the CPU fast path of matmul/linear, float32 and float64. Transposed
// operands are passed with BLAS's transpose flags instead of being copied.
#include <cblas.h>

#include <climits>
#include <cstring>
#include <optional>

#include "engine/ops/linalg/linalg_cpu.h"

namespace pneuma::cpu {

namespace {

struct MatrixArg {
  CBLAS_TRANSPOSE trans;
  int64_t ld;
};

// How BLAS can read a [rows, cols] matrix with strides (rs, cs) in place: row-major
// (unit column stride) or transposed (unit row stride); nothing otherwise.
std::optional<MatrixArg> blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= std::max<int64_t>(1, cols)))
    return MatrixArg{CblasNoTrans, rows == 1 ? std::max<int64_t>(1, cols) : rs};
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= std::max<int64_t>(1, rows)))
    return MatrixArg{CblasTrans, cols == 1 ? std::max<int64_t>(1, rows) : cs};
  return std::nullopt;
}

// The operand itself when BLAS can read it, else a contiguous copy.
std::pair<Tensor, MatrixArg> blas_operand(const Tensor& t) {
  const int64_t r = t.size(-2), c = t.size(-1);
  if (auto arg = blas_layout(r, c, t.strides()[t.dim() - 2], t.strides()[t.dim() - 1])) return {t, *arg};
  Tensor dense = t.detach().contiguous();
  return {dense, MatrixArg{CblasNoTrans, std::max<int64_t>(1, c)}};
}

void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const float* a, int lda, const float* b,
               int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}
void gemm_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const double* a, int lda, const double* b,
               int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

int as_blas_int(int64_t v, const char* what) {
  PNEUMA_CHECK(v <= INT_MAX, "matmul: ", what, " ", v, " exceeds the BLAS integer range");
  return static_cast<int>(v);
}

}  // namespace

void gemm_blas(const Tensor& a_in, const Tensor& b_in, const Tensor& out, bool accumulate) {
  const int64_t m = out.size(-2), n = out.size(-1), k = a_in.size(-1);
  if (out.numel() == 0) return;
  if (k == 0) {
    if (!accumulate) std::memset(out.raw_data(), 0, out.numel() * dtype_size(out.dtype()));
    return;
  }
  const auto [a, aa] = blas_operand(a_in);
  const auto [b, ba] = blas_operand(b_in);
  const auto offsets = batch_offsets(a, b, out);
  const int M = as_blas_int(m, "size"), N = as_blas_int(n, "size"), K = as_blas_int(k, "size");
  const int lda = as_blas_int(aa.ld, "stride"), ldb = as_blas_int(ba.ld, "stride");
  dispatch_floating(out.dtype(), "matmul", [&]<class T>() {
    const T* A = a.data<T>();
    const T* B = b.data<T>();
    T* C = out.data<T>();
    for (const auto& o : offsets)
      gemm_call(aa.trans, ba.trans, M, N, K, A + o[0], lda, B + o[1], ldb, accumulate ? T(1) : T(0), C + o[2], N);
  });
}

}  // namespace pneuma::cpu
