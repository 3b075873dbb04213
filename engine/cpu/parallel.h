#pragma once
// Splits [0, n) into chunks over the OpenMP threads when the work is large enough to
// pay for the fork; small loops stay serial.
#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pneuma::cpu {

constexpr int64_t kParallelGrain = 32768;

template <class Fn>
void parallel_for(int64_t n, Fn&& fn, int64_t grain = kParallelGrain) {
#ifdef _OPENMP
  if (n > grain && omp_get_max_threads() > 1 && !omp_in_parallel()) {
    const int64_t threads = std::min<int64_t>(omp_get_max_threads(), (n + grain - 1) / grain);
#pragma omp parallel num_threads(static_cast<int>(threads))
    {
      const int64_t t = omp_get_thread_num();
      const int64_t chunk = (n + threads - 1) / threads;
      const int64_t begin = std::min(n, t * chunk);
      const int64_t end = std::min(n, begin + chunk);
      if (begin < end) fn(begin, end);
    }
    return;
  }
#endif
  if (n > 0) fn(int64_t{0}, n);
}

// Number of threads the CPU backend uses (OpenMP, oneDNN and OpenBLAS together).
void set_num_threads(int threads);
int num_threads();

}  // namespace pneuma::cpu
