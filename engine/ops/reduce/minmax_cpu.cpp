#include "engine/ops/reduce/minmax_cpu.h"

#include <algorithm>

#include "engine/cpu/parallel.h"

namespace pneuma::cpu {

namespace {
template <class T>
bool is_nan(T v) {
  return v != v;  // false for integer types
}
}  // namespace

void minmax_rows(const Tensor& rows, bool is_max, const Tensor& values, const Tensor& indices) {
  const int64_t outer = rows.shape()[0], inner = rows.shape()[1];
  dispatch_all(rows.dtype(), is_max ? "max" : "min", [&]<class T>() {
    const T* in = rows.data<T>();
    T* v = values.data<T>();
    int64_t* ix = indices.defined() ? indices.data<int64_t>() : nullptr;
    parallel_for(outer, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const T* row = in + r * inner;
        T best = row[0];
        int64_t at = 0;
        for (int64_t i = 1; i < inner && !is_nan(best); ++i) {
          const T x = row[i];
          if (is_nan(x) || (is_max ? x > best : x < best)) {
            best = x;
            at = i;
          }
        }
        v[r] = best;
        if (ix) ix[r] = at;
      }
    }, std::max<int64_t>(1, kParallelGrain / inner));
  });
}

}  // namespace pneuma::cpu
