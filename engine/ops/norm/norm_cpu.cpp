#include "engine/ops/norm/norm_cpu.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
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

// ---- [R, C] rows
// A contiguous [R, C] array: channels-last (NHWC) memory, where R = N * H * W and the channels of
// a position are adjacent, and [N, C] inputs (S == 1). A channel is a column and its sums are
// column sums: the loops run along a row, across the channels (which the compiler vectorizes), and
// add row after row. The rows are cut into blocks of a fixed number of rows for a given C (not a
// function of the thread count, so results do not depend on it); each block sums into its own
// partial row, in parallel, and the partial rows are added in block order.

// The flat loops over rows: compiled twice on x86-64 with GCC, for x86-64-v3 (AVX2: 4 doubles or
// 8 floats a vector, bfloat16 widened with vector shifts) and for the baseline, the loader picking
// one for the machine once. GCC may fuse a * b + c into an FMA in the AVX2 clone, which changes
// double roundings only (the sums and the input gradient of float32 data are computed in double);
// the float multiply-add of the float32 output is left out of the clones (apply_rows), so that it
// rounds as the NCHW loop does.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PNEUMA_NORM_ROWS_LOOP __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PNEUMA_NORM_ROWS_LOOP
#endif

// About 16K elements a block: a float32 block (64 KB) is still in L2 when the block's second pass
// (squared deviations from its own mean) reads it again.
constexpr int64_t kRowBlockElements = 16384;

struct RowBlocks {
  int64_t rows, per_block, count;
  RowBlocks(int64_t R, int64_t C)
      : rows(R), per_block(std::max<int64_t>(1, kRowBlockElements / std::max<int64_t>(C, 1))),
        count((R + per_block - 1) / per_block) {}
  int64_t begin(int64_t block) const { return block * per_block; }
  int64_t size(int64_t block) const { return std::min(per_block, rows - block * per_block); }
};

// fn(block) for every block, blocks in parallel.
template <class Fn>
void for_each_row_block(const RowBlocks& blocks, int64_t C, Fn&& fn) {
  parallel_for(blocks.count, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) fn(block);
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(blocks.per_block * C, 1)));
}

// The column sums below read kRowGroup rows at a time and add them in registers before updating
// a channel's sum in memory: a sum updated at every row waits on its own store (2-3x slower from 128
// channels on). The rows stream in memory order, as the prefetchers like.
constexpr int64_t kRowGroup = 8;

// sum[c] += x[r, c] over rows r.
template <class A, class T>
PNEUMA_NORM_ROWS_LOOP void add_columns(const T* __restrict x, int64_t rows, int64_t C, A* __restrict sum) {
  int64_t r = 0;
  for (; r + kRowGroup <= rows; r += kRowGroup) {
    const T* p = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      A s = sum[c];
      for (int64_t k = 0; k < kRowGroup; ++k) s += static_cast<A>(p[k * C + c]);
      sum[c] = s;
    }
  }
  for (; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) sum[c] += static_cast<A>(x[r * C + c]);
}

// squares[c] += (x[r, c] - mean[c])^2 over rows r.
template <class A, class T>
PNEUMA_NORM_ROWS_LOOP void add_squared_deviations(const T* __restrict x, int64_t rows, int64_t C,
                                                  const A* __restrict mean, A* __restrict squares) {
  int64_t r = 0;
  for (; r + kRowGroup <= rows; r += kRowGroup) {
    const T* p = x + r * C;
    for (int64_t c = 0; c < C; ++c) {
      A s = squares[c];
      for (int64_t k = 0; k < kRowGroup; ++k) {
        const A d = static_cast<A>(p[k * C + c]) - mean[c];
        s += d * d;
      }
      squares[c] = s;
    }
  }
  for (; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const A d = static_cast<A>(x[r * C + c]) - mean[c];
      squares[c] += d * d;
    }
}

// sum_g[c] += g[r, c] and dot[c] += g[r, c] * (x[r, c] - mean[c]) over rows r.
template <class A, class T>
PNEUMA_NORM_ROWS_LOOP void add_gradient_columns(const T* __restrict x, const T* __restrict g, int64_t rows, int64_t C,
                                                const A* __restrict mean, A* __restrict sum_g, A* __restrict dot) {
  int64_t r = 0;
  for (; r + kRowGroup <= rows; r += kRowGroup) {
    const T* xr = x + r * C;
    const T* gr = g + r * C;
    for (int64_t c = 0; c < C; ++c) {
      A s = sum_g[c], d = dot[c];
      for (int64_t k = 0; k < kRowGroup; ++k) {
        const A gv = static_cast<A>(gr[k * C + c]);
        s += gv;
        d += gv * (static_cast<A>(xr[k * C + c]) - mean[c]);
      }
      sum_g[c] = s;
      dot[c] = d;
    }
  }
  for (; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const A gv = static_cast<A>(g[r * C + c]);
      sum_g[c] += gv;
      dot[c] += gv * (static_cast<A>(x[r * C + c]) - mean[c]);
    }
}

// y[r, c] = x[r, c] * alpha[c] + beta[c], the NCHW loop's expression.
template <class T, class O>
inline void apply_rows_body(const T* __restrict x, int64_t rows, int64_t C, const O* __restrict alpha,
                            const O* __restrict beta, T* __restrict y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c)
      y[r * C + c] = static_cast<T>(static_cast<O>(x[r * C + c]) * alpha[c] + beta[c]);
}

// bfloat16 data with an AVX2 clone (their widening and rounding are what costs); float32/float64
// without one, so that the multiply-add rounds as in the NCHW loop (the loop is memory-bound).
PNEUMA_NORM_ROWS_LOOP void apply_rows_bf16(const bfloat16* x, int64_t rows, int64_t C, const float* alpha,
                                           const float* beta, bfloat16* y) {
  apply_rows_body(x, rows, C, alpha, beta, y);
}

template <class T, class O>
void apply_rows(const T* x, int64_t rows, int64_t C, const O* alpha, const O* beta, T* y) {
  if constexpr (std::is_same_v<T, bfloat16>) apply_rows_bf16(x, rows, C, alpha, beta, y);
  else apply_rows_body(x, rows, C, alpha, beta, y);
}

// dx[r, c] = (g - g_mean[c] - (x - mean[c]) * k[c]) * scale[c] in training (kern::batch_norm_grad_input's
// expression), g * scale[c] otherwise.
template <class A, class T>
PNEUMA_NORM_ROWS_LOOP void input_gradient_rows(const T* __restrict x, const T* __restrict g, int64_t rows, int64_t C,
                                               const A* __restrict mean, const A* __restrict g_mean,
                                               const A* __restrict k, const A* __restrict scale, bool training,
                                               T* __restrict dx) {
  if (training) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c)
        dx[r * C + c] = static_cast<T>(
            (static_cast<A>(g[r * C + c]) - g_mean[c] - (static_cast<A>(x[r * C + c]) - mean[c]) * k[c]) * scale[c]);
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c) dx[r * C + c] = static_cast<T>(static_cast<A>(g[r * C + c]) * scale[c]);
  }
}

// Mean and biased variance of each column. Each block sums its rows, then the squared deviations
// from its own mean while its rows are in cache; the blocks combine exactly as two passes over
// the whole column would: mean = sum / R, and the squared deviations from it are the blocks' own
// plus n_b (mean_b - mean)^2 each (Chan et al.). Accurate when |mean| >> std, as the NCHW loops.
template <class T>
void stats_rows(const T* x, int64_t R, int64_t C, opmath_t<T>* mean, opmath_t<T>* var) {
  using A = batch_norm_acc_t<T>;
  using M = opmath_t<T>;
  const RowBlocks blocks(R, C);
  const size_t cells = static_cast<size_t>(blocks.count * C);
  std::vector<A> sums(cells, A(0)), means(cells), squares(cells, A(0));
  for_each_row_block(blocks, C, [&](int64_t block) {
    const T* p = x + blocks.begin(block) * C;
    const int64_t n = blocks.size(block);
    A* sum = sums.data() + block * C;
    A* block_mean = means.data() + block * C;
    add_columns(p, n, C, sum);
    for (int64_t c = 0; c < C; ++c) block_mean[c] = sum[c] / static_cast<A>(n);
    add_squared_deviations(p, n, C, block_mean, squares.data() + block * C);
  });
  std::vector<A> total(static_cast<size_t>(C), A(0)), deviation(static_cast<size_t>(C), A(0));
  for (int64_t block = 0; block < blocks.count; ++block)
    for (int64_t c = 0; c < C; ++c) total[c] += sums[block * C + c];
  const A count = static_cast<A>(R);
  for (int64_t c = 0; c < C; ++c) total[c] /= count;
  for (int64_t block = 0; block < blocks.count; ++block) {
    const A n = static_cast<A>(blocks.size(block));
    for (int64_t c = 0; c < C; ++c) {
      const A d = means[block * C + c] - total[c];
      deviation[c] += squares[block * C + c] + n * d * d;
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = static_cast<M>(total[c]);
    var[c] = static_cast<M>(deviation[c] / count);
  }
}

// Column sums of g and, with x, of g * (x - mean), in block order.
template <class A, class T, class M>
void gradient_sums_rows(const T* x, const T* g, int64_t R, int64_t C, const M* mean, std::vector<A>& sum_g,
                        std::vector<A>& dot) {
  const RowBlocks blocks(R, C);
  const size_t cells = static_cast<size_t>(blocks.count * C);
  std::vector<A> block_g(cells, A(0)), block_dot(x ? cells : 0, A(0)), mu(static_cast<size_t>(C));
  if (x)
    for (int64_t c = 0; c < C; ++c) mu[c] = static_cast<A>(mean[c]);
  for_each_row_block(blocks, C, [&](int64_t block) {
    const int64_t at = blocks.begin(block) * C, n = blocks.size(block);
    if (x) add_gradient_columns(x + at, g + at, n, C, mu.data(), block_g.data() + block * C, block_dot.data() + block * C);
    else add_columns(g + at, n, C, block_g.data() + block * C);
  });
  sum_g.assign(static_cast<size_t>(C), A(0));
  dot.assign(static_cast<size_t>(C), A(0));
  for (int64_t block = 0; block < blocks.count; ++block)
    for (int64_t c = 0; c < C; ++c) {
      sum_g[c] += block_g[block * C + c];
      if (x) dot[c] += block_dot[block * C + c];
    }
}

// batch_norm_backward on rows. x, m, v are nullptr when only the bias gradient is wanted.
template <class T, class P, class M = opmath_t<T>>
void backward_rows(const T* x, const T* g, int64_t R, int64_t C, const M* m, const M* v, const P* w, double eps,
                   bool training, T* gx, P* gw, P* gb) {
  using A = batch_norm_acc_t<T>;
  std::vector<A> sum_g, dot;
  gradient_sums_rows<A>(x, g, R, C, m, sum_g, dot);
  const A count = static_cast<A>(R);
  std::vector<A> mu(static_cast<size_t>(C)), g_mean(mu.size()), k(mu.size()), scale(mu.size());
  for (int64_t c = 0; c < C; ++c) {
    if (gb) gb[c] = static_cast<P>(sum_g[c]);
    if (!x) continue;
    if (gw) gw[c] = static_cast<P>(dot[c] * kern::batch_norm_invstd<A>(v[c], eps));
    const kern::BatchNormGradTerms<A> t = kern::batch_norm_grad_terms<A>(v[c], w, c, eps, training, sum_g[c], dot[c], count);
    mu[c] = static_cast<A>(m[c]);
    g_mean[c] = t.g_mean;
    k[c] = t.k;
    scale[c] = t.scale;
  }
  if (!gx) return;
  parallel_for(R, [&](int64_t begin, int64_t end) {
    input_gradient_rows(x + begin * C, g + begin * C, end - begin, C, mu.data(), g_mean.data(), k.data(), scale.data(),
                        training, gx + begin * C);
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(C, 1)));
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
      stats_rows(in, N, C, m, v);
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
        apply_rows(in + begin * C, end - begin, C, alpha.data(), beta.data(), out + begin * C);
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
      if (S == 1) {
        backward_rows<T, P, opmath_t<T>>(nullptr, go, N, C, nullptr, nullptr, nullptr, eps, training, nullptr, nullptr, gb);
        return;
      }
      parallel_for(C, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          // Lanes pay off on runs of at least kLanes values; short runs add serially.
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
