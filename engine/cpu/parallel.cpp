#include "engine/cpu/parallel.h"

#include <cblas.h>

namespace pneuma::cpu {

void set_num_threads(int threads) {
  if (threads < 1) threads = 1;
#ifdef _OPENMP
  omp_set_num_threads(threads);  // also oneDNN's thread count: Debian builds it on OpenMP
#endif
  openblas_set_num_threads(threads);
}

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace pneuma::cpu
