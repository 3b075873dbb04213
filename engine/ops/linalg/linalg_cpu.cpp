#include "engine/ops/linalg/linalg_cpu.h"

#include <algorithm>
#include <cstring>

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
  if (fast_path_enabled()) gemm_blas(a, b, out, accumulate);
  else gemm_reference(a, b, out, accumulate);
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
  dispatch_floating(out.dtype(), "linear", [&]<class T>() {
    const T* src = r.data<T>();
    T* dst = out.data<T>();
    for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + i * n, src, n * sizeof(T));
  });
}

}  // namespace pneuma::cpu
