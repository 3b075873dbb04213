#pragma once
// Per-channel and per-element math of batch norm for the CUDA kernels (kernels/norm/batch_norm.cuh):
// the expressions of the CPU loops in engine/ops/norm/norm_cpu.cpp, in double whatever the data's
// dtype, so that emulated kernels and CPU loops agree up to the order of the channel sums.
#include <cmath>

#if defined(__CUDACC__)
#define PNEUMA_NORM_HD __host__ __device__ inline
#else
#define PNEUMA_NORM_HD inline
#endif

namespace pneuma::kern {

// y = x * alpha + beta per channel: alpha = w / sqrt(var + eps), beta = b - mean * alpha
// (w = 1 and b = 0 when absent).
template <class T>
struct BatchNormCoefficients {
  T alpha, beta;
};

template <class T>
PNEUMA_NORM_HD BatchNormCoefficients<T> batch_norm_coefficients(T mean, T var, const T* weight, const T* bias,
                                                                long long c, double eps) {
  using std::sqrt;
  const double invstd = 1.0 / sqrt(static_cast<double>(var) + eps);
  const double a = (weight ? static_cast<double>(weight[c]) : 1.0) * invstd;
  return {static_cast<T>(a), static_cast<T>((bias ? static_cast<double>(bias[c]) : 0.0) - static_cast<double>(mean) * a)};
}

// The per-channel terms of the input gradient, from sum(g) and sum(g * (x - mean)) over the
// channel's `count` elements: dx = (g - g_mean - (x - mean) * k) * scale in training (the
// statistics depend on x), dx = g * scale otherwise.
struct BatchNormGradTerms {
  double scale, k, g_mean;
};

template <class T>
PNEUMA_NORM_HD BatchNormGradTerms batch_norm_grad_terms(T var, const T* weight, long long c, double eps, bool training,
                                                        double sum_g, double dot, double count) {
  using std::sqrt;
  const double invstd = 1.0 / sqrt(static_cast<double>(var) + eps);
  const double scale = (weight ? static_cast<double>(weight[c]) : 1.0) * invstd;
  return {scale, training ? dot * invstd * invstd / count : 0.0, training ? sum_g / count : 0.0};
}

template <class T>
PNEUMA_NORM_HD T batch_norm_grad_input(T g, T x, T mean, const BatchNormGradTerms& t, bool training) {
  if (!training) return static_cast<T>(g * t.scale);
  return static_cast<T>((g - t.g_mean - (x - static_cast<double>(mean)) * t.k) * t.scale);
}

// 1 / sqrt(var + eps); the weight gradient sum(g * xhat) is dot * invstd.
template <class T>
PNEUMA_NORM_HD double batch_norm_invstd(T var, double eps) {
  using std::sqrt;
  return 1.0 / sqrt(static_cast<double>(var) + eps);
}

}  // namespace pneuma::kern
