#pragma once
// GPU tests on a machine without a GPU are reported as skipped, never as passed:
// under ctest (PNEUMA_CTEST=1) the test process exits 77, which ctest counts as
// skipped; run directly, the test case returns early with a message.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/device_memory.h"
#endif

namespace pneuma::testing {

inline bool cuda_available() {
#ifdef PNEUMA_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

inline void skip_test(const char* why) {
  std::printf("SKIPPED: %s\n", why);
  std::fflush(stdout);
  if (std::getenv("PNEUMA_CTEST") != nullptr) std::_Exit(77);
  MESSAGE("skipped: ", why);
}

}  // namespace pneuma::testing

// First statement of a test that needs a GPU.
#define PNEUMA_REQUIRE_GPU()                                                               \
  do {                                                                                     \
    if (!::pneuma::testing::cuda_available()) {                                            \
      ::pneuma::testing::skip_test("no CUDA device (or a build without the CUDA backend)"); \
      return;                                                                              \
    }                                                                                      \
  } while (0)
