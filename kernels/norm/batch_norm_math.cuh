#pragma once
// Per-channel and per-element math of batch norm for the CUDA kernels (kernels/norm/batch_norm.cuh):
// the expressions of the CPU loops in engine/ops/norm/norm_cpu.cpp, in the same computing type, so
// that emulated kernels and CPU loops agree up to the order of the channel sums.
#include <cmath>
#include <type_traits>

#include "engine/core/bfloat16.h"

#if defined(__CUDACC__)
#define PNEUMA_NORM_HD __host__ __device__ inline
#else
#define PNEUMA_NORM_HD inline
#endif

namespace pneuma::kern {

// The type batch norm's channel sums and per-channel terms are computed in, for data type T:
// double for float32/float64 (a channel sums N * H * W values), float for bfloat16, as torch's
// accumulate type: the data carry 8 significant bits, float sums lose far fewer, and float64
// stays out of the mixed-precision path.
template <class T>
using batch_norm_acc_t = std::conditional_t<std::is_same_v<T, bfloat16>, float, double>;

// y = x * alpha + beta per channel: alpha = w / sqrt(var + eps), beta = b - mean * alpha
// (w = 1 and b = 0 when absent). A: the computing type, M: the statistics' type, P: the
// parameters' type.
template <class A>
struct BatchNormCoefficients {
  A alpha, beta;
};

template <class A, class M, class P>
PNEUMA_NORM_HD BatchNormCoefficients<A> batch_norm_coefficients(M mean, M var, const P* weight, const P* bias,
                                                                long long c, double eps) {
  using std::sqrt;
  const A invstd = A(1) / sqrt(static_cast<A>(var) + static_cast<A>(eps));
  const A a = (weight ? static_cast<A>(weight[c]) : A(1)) * invstd;
  return {a, (bias ? static_cast<A>(bias[c]) : A(0)) - static_cast<A>(mean) * a};
}

// The per-channel terms of the input gradient, from sum(g) and sum(g * (x - mean)) over the
// channel's `count` elements: dx = (g - g_mean - (x - mean) * k) * scale in training (the
// statistics depend on x), dx = g * scale otherwise.
template <class A>
struct BatchNormGradTerms {
  A scale, k, g_mean;
};

// 1 / sqrt(var + eps); the weight gradient sum(g * xhat) is dot * invstd.
template <class A, class M>
PNEUMA_NORM_HD A batch_norm_invstd(M var, double eps) {
  using std::sqrt;
  return A(1) / sqrt(static_cast<A>(var) + static_cast<A>(eps));
}

template <class A, class M, class P>
PNEUMA_NORM_HD BatchNormGradTerms<A> batch_norm_grad_terms(M var, const P* weight, long long c, double eps,
                                                           bool training, A sum_g, A dot, A count) {
  const A invstd = batch_norm_invstd<A>(var, eps);
  const A scale = (weight ? static_cast<A>(weight[c]) : A(1)) * invstd;
  return {scale, training ? dot * invstd * invstd / count : A(0), training ? sum_g / count : A(0)};
}

template <class T, class A, class M>
PNEUMA_NORM_HD T batch_norm_grad_input(T g, T x, M mean, const BatchNormGradTerms<A>& t, bool training) {
  if (!training) return static_cast<T>(static_cast<A>(g) * t.scale);
  return static_cast<T>((static_cast<A>(g) - t.g_mean - (static_cast<A>(x) - static_cast<A>(mean)) * t.k) * t.scale);
}

}  // namespace pneuma::kern
