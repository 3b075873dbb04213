#pragma once
// Counter-based random numbers: value i of a stream is a pure function of (seed, i),
// so CPU loops, emulated kernels and GPU kernels draw identical numbers in any order.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define PNEUMA_RANDOM_HD __host__ __device__ inline
#else
#define PNEUMA_RANDOM_HD inline
#endif

namespace pneuma::random {

PNEUMA_RANDOM_HD uint64_t mix64(uint64_t z) {  // splitmix64 finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

PNEUMA_RANDOM_HD uint64_t bits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (counter * 0xd1b54a32d192ed03ULL));
}

// Uniform in [0, 1) with 53 random bits.
PNEUMA_RANDOM_HD double uniform(uint64_t seed, uint64_t counter) {
  return static_cast<double>(bits(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller over two uniforms of the same counter.
PNEUMA_RANDOM_HD double normal(uint64_t seed, uint64_t counter) {
  const double u1 = 1.0 - uniform(seed, 2 * counter);  // (0, 1]
  const double u2 = uniform(seed, 2 * counter + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace pneuma::random
