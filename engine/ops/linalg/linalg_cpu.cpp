#include "engine/ops/linalg/linalg_cpu.h"

#include <algorithm>
#include <cstring>

#include "engine/cpu/copy.h"
#include "engine/cpu/fast_path.h"
#include "engine/cpu/loops.h"
#include "engine/cpu/parallel.h"

namespace pneuma::cpu {

namespace {
// Batch strides of t right-aligned with `batch` (0 where t's dim is missing or 1).
Strides batch_strides(const Tensor& t, const Shape& batch) {
  Strides s(batch.size(), 0);
  const int64_t t_batch = t.dim() - 2;
  const int64_t lead = static_cast<int64_t>(batch.size()) - t_batch;
  for (int64_t i = 0; i < t_batch; ++i)
    if (t.shape()[i] != 1) s[lead + i] = t.strides()[i];
  return s;
}
}  // namespace

std::vector<std::array<int64_t, 3>> batch_offsets(const Tensor& a, const Tensor& b, const Tensor& out) {
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const Strides out_strides(out.strides().begin(), out.strides().end() - 2);
  std::vector<std::array<int64_t, 3>> offsets;
  offsets.reserve(numel_of(batch));
  for_each_offset<3>(batch, {batch_strides(a, batch), batch_strides(b, batch), out_strides},
                     [&](const std::array<int64_t, 3>& o) { offsets.push_back(o); });
  return offsets;
}

void gemm(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  if (out.dtype() == DType::BFloat16) {
    gemm_bfloat16(a, b, out, accumulate);
    return;
  }
  if (fast_path_enabled()) gemm_blas(a, b, out, accumulate);
  else gemm_reference(a, b, out, accumulate);
}

namespace {
// t widened to float32 (exact). A transposed view of dense data (linear's weight^T, the
// backward's operand^T) stays transposed: its conversion is then one flat loop, and BLAS reads
// the result with its transpose flag as it would have read t.
Tensor widened(const Tensor& t) {
  if (t.dim() >= 2 && !t.is_contiguous() && t.transpose(-2, -1).is_contiguous())
    return t.detach().transpose(-2, -1).to(DType::Float32).transpose(-2, -1);
  return t.detach().to(DType::Float32);
}
}  // namespace

void gemm_bfloat16(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  PNEUMA_CHECK(a.dtype() == DType::BFloat16 && b.dtype() == DType::BFloat16, "matmul: expected bfloat16 operands for ",
               "a ", out.str(), " result, got ", a.str(), " and ", b.str());
  // Widening is exact; the float32 GEMM (BLAS or the loops) accumulates in float32, and the one
  // rounding is the copy back (with accumulate, out's bfloat16 values join the float32 sum first).
  const Tensor a32 = widened(a), b32 = widened(b);
  const Tensor out32 = accumulate ? out.detach().to(DType::Float32) : Tensor::empty(out.shape(), DType::Float32);
  gemm(a32, b32, out32, accumulate);
  copy_strided(out32, out);
}

void gemm_reference(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  const int64_t m = out.size(-2), n = out.size(-1), k = a.size(-1);
  const int64_t as0 = a.strides()[a.dim() - 2], as1 = a.strides()[a.dim() - 1];
  const int64_t bs0 = b.strides()[b.dim() - 2], bs1 = b.strides()[b.dim() - 1];
  const auto offsets = batch_offsets(a, b, out);
  const int64_t batches = static_cast<int64_t>(offsets.size());
  dispatch_floating(out.dtype(), "matmul", [&]<class T>() {
    const T* A = a.data<T>();
    const T* B = b.data<T>();
    T* C = out.data<T>();
    parallel_for(batches * m, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const auto& o = offsets[r / m];
        const int64_t i = r % m;
        const T* arow = A + o[0] + i * as0;
        T* crow = C + o[2] + i * n;
        for (int64_t j = 0; j < n; ++j) {
          const T* bcol = B + o[1] + j * bs1;
          double acc = 0;
          for (int64_t p = 0; p < k; ++p) acc += static_cast<double>(arow[p * as1]) * bcol[p * bs0];
          crow[j] = static_cast<T>(accumulate ? crow[j] + acc : acc);
        }
      }
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n * k, 1)));
  });
}

void fill_rows(const Tensor& row, const Tensor& out) {
  const Tensor r = row.detach().contiguous();
  const int64_t rows = out.size(0), n = out.size(1);
  dispatch_floating_and_bfloat16(out.dtype(), "linear", [&]<class T>() {
    const T* src = r.data<T>();
    T* dst = out.data<T>();
    for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + i * n, src, n * sizeof(T));
  });
}

}  // namespace pneuma::cpu
