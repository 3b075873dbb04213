#include "engine/ops/norm/norm_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/parallel.h"
#include "engine/ops/norm/norm_types.h"
#include "kernels/norm/batch_norm_math.cuh"

namespace pneuma::cpu {

namespace {

using kern::batch_norm_acc_t;

// Per-channel loops touch N * S elements each; split channels so a thread gets about
// kParallelGrain elements.
int64_t channel_grain(int64_t N, int64_t S) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(N * S, 1)); }

// The sum of f(p[s]) over a contiguous run, in kLanes independent accumulators of type A:
// one serial chain of additions waits on each add's latency, the lanes overlap (batch norm
// statistics 1.8x faster here). The result differs from the serial sum only by rounding.
constexpr int64_t kLanes = 16;

template <class A, class T, class F>
A lane_sum(const T* p, int64_t n, F&& f) {
  A acc[kLanes] = {};
  int64_t s = 0;
  for (; s + kLanes <= n; s += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) acc[j] += f(static_cast<A>(p[s + j]));
  A total = 0;
  for (; s < n; ++s) total += f(static_cast<A>(p[s]));
  for (int64_t j = 0; j < kLanes; ++j) total += acc[j];
  return total;
}

// batch_norm_backward for [N, C] rows (S == 1), walking rows over blocks of channels.
template <class T, class P, class M = opmath_t<T>>
void backward_rows(const T* in, const T* go, int64_t N, int64_t C, const M* m, const M* v, const P* w, double eps,
                   bool training, T* gx, P* gw, P* gb) {
  using A = batch_norm_acc_t<T>;
  const A count = static_cast<A>(N);
  parallel_for(C, [&](int64_t begin, int64_t end) {
    const size_t width = static_cast<size_t>(end - begin);
    std::vector<A> sum_g(width, A(0)), dot(width, A(0)), a(width), k(width), g_mean(width);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = begin; c < end; ++c) {
        const A g = static_cast<A>(go[n * C + c]);
        sum_g[c - begin] += g;
        dot[c - begin] += g * (static_cast<A>(in[n * C + c]) - static_cast<A>(m[c]));
      }
    for (int64_t c = begin; c < end; ++c) {
      const size_t j = static_cast<size_t>(c - begin);
      const A invstd = A(1) / std::sqrt(static_cast<A>(v[c]) + static_cast<A>(eps));
      if (gw) gw[c] = static_cast<P>(dot[j] * invstd);
      if (gb) gb[c] = static_cast<P>(sum_g[j]);
      a[j] = (w ? static_cast<A>(w[c]) : A(1)) * invstd;
      k[j] = training ? dot[j] * invstd * invstd / count : A(0);
      g_mean[j] = training ? sum_g[j] / count : A(0);
    }
    if (!gx) return;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = begin; c < end; ++c) {
        const size_t j = static_cast<size_t>(c - begin);
        gx[n * C + c] = static_cast<T>(
            (static_cast<A>(go[n * C + c]) - g_mean[j] - (static_cast<A>(in[n * C + c]) - static_cast<A>(m[c])) * k[j]) *
            a[j]);
      }
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(N, 1)));
}

}  // namespace

void batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var) {
  dispatch_floating_and_bfloat16(x.dtype(), "batch_norm", [&]<class T>() {
    using A = batch_norm_acc_t<T>;
    using M = opmath_t<T>;
    const T* in = x.data<T>();
    M* m = mean.data<M>();
    M* v = var.data<M>();
    const A count = static_cast<A>(N * S);
    if (S == 1) {
      // [N, C] rows: walk each row over a block of channels so the reads are contiguous.
      parallel_for(C, [&](int64_t begin, int64_t end) {
        std::vector<A> sum(static_cast<size_t>(end - begin), A(0)), sq(sum.size(), A(0));
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = begin; c < end; ++c) sum[c - begin] += static_cast<A>(in[n * C + c]);
        for (A& s : sum) s /= count;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = begin; c < end; ++c) {
            const A d = static_cast<A>(in[n * C + c]) - sum[c - begin];
            sq[c - begin] += d * d;
          }
        for (int64_t c = begin; c < end; ++c) {
          m[c] = static_cast<M>(sum[c - begin]);
          v[c] = static_cast<M>(sq[c - begin] / count);
        }
      }, channel_grain(N, S));
      return;
    }
    parallel_for(C, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        // Two passes: the mean first, then squared deviations, which stays accurate when
        // |mean| >> std where E[x^2] - E[x]^2 would cancel.
        A sum = 0;
        for (int64_t n = 0; n < N; ++n) sum += lane_sum<A>(in + (n * C + c) * S, S, [](A v) { return v; });
        const A mu = sum / count;
        A sq = 0;
        for (int64_t n = 0; n < N; ++n)
          sq += lane_sum<A>(in + (n * C + c) * S, S, [mu](A v) {
            const A d = v - mu;
            return d * d;
          });
        m[c] = static_cast<M>(mu);
        v[c] = static_cast<M>(sq / count);
      }
    }, channel_grain(N, S));
  });
}

void batch_norm_apply(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var,
                      const Tensor& weight, const Tensor& bias, double eps, const Tensor& y) {
  const DType params = batch_norm_param_dtype({&weight, &bias}, batch_norm_stats_dtype(x.dtype()));
  dispatch_batch_norm_types(x.dtype(), params, "batch_norm", [&]<class T, class P>() {
    using A = batch_norm_acc_t<T>;
    using O = opmath_t<T>;  // the statistics' type; float32 data keep their float multiply-add, as bfloat16's
    const T* in = x.data<T>();
    T* out = y.data<T>();
    const O* m = mean.data<O>();
    const O* v = var.data<O>();
    const P* w = weight.defined() ? weight.data<P>() : nullptr;
    const P* b = bias.defined() ? bias.data<P>() : nullptr;
    // y = x * alpha + beta with per-channel alpha = w / sqrt(var + eps), beta = b - mean * alpha.
    std::vector<O> alpha(static_cast<size_t>(C)), beta(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) {
      const kern::BatchNormCoefficients<A> k = kern::batch_norm_coefficients<A>(m[c], v[c], w, b, c, eps);
      alpha[c] = static_cast<O>(k.alpha);
      beta[c] = static_cast<O>(k.beta);
    }
    if (S == 1) {
      parallel_for(N, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n)
          for (int64_t c = 0; c < C; ++c) out[n * C + c] = static_cast<T>(static_cast<O>(in[n * C + c]) * alpha[c] + beta[c]);
      }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)));
      return;
    }
    parallel_for(N * C, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t c = plane % C;
        const O a = alpha[c], bb = beta[c];
        const T* p = in + plane * S;
        T* q = out + plane * S;
        for (int64_t s = 0; s < S; ++s) q[s] = static_cast<T>(static_cast<O>(p[s]) * a + bb);
      }
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(S, 1)));
  });
}

void batch_norm_backward(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                         const Tensor& var, const Tensor& weight, double eps, bool training, const Tensor& dx,
                         const Tensor& dweight, const Tensor& dbias) {
  const DType params = batch_norm_param_dtype({&weight, &dweight, &dbias}, batch_norm_stats_dtype(g.dtype()));
  dispatch_batch_norm_types(g.dtype(), params, "batch_norm backward", [&]<class T, class P>() {
    using A = batch_norm_acc_t<T>;
    const T* go = g.data<T>();
    P* gb = dbias.defined() ? dbias.data<P>() : nullptr;
    if (!dx.defined() && !dweight.defined()) {
      // Only the bias gradient: a per-channel sum of g, without x or the statistics.
      parallel_for(C, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          // Lanes pay off on runs of at least kLanes values; [N, C] rows (S = 1) add serially.
          A sum_g = 0;
          for (int64_t n = 0; n < N; ++n) {
            const T* q = go + (n * C + c) * S;
            if (S >= kLanes) {
              sum_g += lane_sum<A>(q, S, [](A v) { return v; });
            } else {
              for (int64_t s = 0; s < S; ++s) sum_g += static_cast<A>(q[s]);
            }
          }
          gb[c] = static_cast<P>(sum_g);
        }
      }, channel_grain(N, S));
      return;
    }
    using M = opmath_t<T>;
    const T* in = x.data<T>();
    const M* m = mean.data<M>();
    const M* v = var.data<M>();
    const P* w = weight.defined() ? weight.data<P>() : nullptr;
    T* gx = dx.defined() ? dx.data<T>() : nullptr;
    P* gw = dweight.defined() ? dweight.data<P>() : nullptr;
    const A count = static_cast<A>(N * S);
    if (S == 1) {
      backward_rows(in, go, N, C, m, v, w, eps, training, gx, gw, gb);
      return;
    }
    parallel_for(C, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const A mu = static_cast<A>(m[c]);
        const A invstd = kern::batch_norm_invstd<A>(v[c], eps);
        A sum_g = 0, dot = 0;  // sum(g), sum(g * (x - mean))
        for (int64_t n = 0; n < N; ++n) {
          const T* p = in + (n * C + c) * S;
          const T* q = go + (n * C + c) * S;
          for (int64_t s = 0; s < S; ++s) {
            const A gs = static_cast<A>(q[s]);
            sum_g += gs;
            dot += gs * (static_cast<A>(p[s]) - mu);
          }
        }
        if (gw) gw[c] = static_cast<P>(dot * invstd);
        if (gb) gb[c] = static_cast<P>(sum_g);
        if (!gx) continue;
        const A scale = (w ? static_cast<A>(w[c]) : A(1)) * invstd;
        if (training) {
          // dx = w * invstd * (g - mean(g) - xhat * mean(g * xhat))
          const A k = dot * invstd * invstd / count;
          const A g_mean = sum_g / count;
          for (int64_t n = 0; n < N; ++n) {
            const T* p = in + (n * C + c) * S;
            const T* q = go + (n * C + c) * S;
            T* r = gx + (n * C + c) * S;
            for (int64_t s = 0; s < S; ++s)
              r[s] = static_cast<T>((static_cast<A>(q[s]) - g_mean - (static_cast<A>(p[s]) - mu) * k) * scale);
          }
        } else {
          for (int64_t n = 0; n < N; ++n) {
            const T* q = go + (n * C + c) * S;
            T* r = gx + (n * C + c) * S;
            for (int64_t s = 0; s < S; ++s) r[s] = static_cast<T>(static_cast<A>(q[s]) * scale);
          }
        }
      }
    }, channel_grain(N, S));
  });
}

void batch_norm_update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                               const Tensor& var, double momentum, int64_t count) {
  const DType running = batch_norm_param_dtype({&running_mean, &running_var}, mean.dtype());
  // Computed in the running statistics' accumulate type: double for float32 ones (as the float32
  // path), float for bfloat16 ones.
  dispatch_batch_norm_running_types(running, mean.dtype(), "batch_norm", [&]<class P, class M>() {
    using A = batch_norm_acc_t<P>;
    const int64_t C = mean.numel();
    const M* m = mean.data<M>();
    const M* v = var.data<M>();
    // PyTorch divides by count - 1 as is; count > 1 is checked in training.
    const A unbias = static_cast<A>(static_cast<double>(count) / static_cast<double>(count - 1));
    const A keep = static_cast<A>(1 - momentum), take = static_cast<A>(momentum);
    if (running_mean.defined()) {
      P* r = running_mean.data<P>();
      const int64_t stride = running_mean.strides()[0];
      for (int64_t c = 0; c < C; ++c)
        r[c * stride] = static_cast<P>(keep * static_cast<A>(r[c * stride]) + take * static_cast<A>(m[c]));
    }
    if (running_var.defined()) {
      P* r = running_var.data<P>();
      const int64_t stride = running_var.strides()[0];
      for (int64_t c = 0; c < C; ++c)
        r[c * stride] = static_cast<P>(keep * static_cast<A>(r[c * stride]) + take * static_cast<A>(v[c]) * unbias);
    }
  });
}

}  // namespace pneuma::cpu
