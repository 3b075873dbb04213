#include "engine/ops/softmax/softmax_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "engine/cpu/parallel.h"
#include "kernels/softmax/softmax.cuh"

namespace pneuma::cpu {

namespace {

// A tensor seen as [outer, n, inner] with the softmax dim in the middle.
struct Layout {
  int64_t outer = 1, n = 1, inner = 1;
};

Layout layout_of(const Shape& shape, int64_t dim) {
  Layout l;
  if (shape.empty()) return l;
  for (int64_t d = 0; d < dim; ++d) l.outer *= shape[d];
  l.n = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) l.inner *= shape[d];
  return l;
}

Tensor dense(const Tensor& t) { return t.detach().contiguous(); }

int64_t grain_for(const Layout& l) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(l.n * l.inner, 1)); }

// One [n, inner] block: the reduction runs over n for each of the inner columns at
// once, so memory is read in order whatever inner is. The per-element expressions are
// the CUDA kernel's (kernels/softmax/softmax.cuh); sums accumulate in double (float for
// bfloat16 data, which is computed in float and rounded once on store).
template <class T, class M = opmath_t<T>, class Acc = kern::softmax_acc_t<T>>
void forward_block(const T* x, T* y, int64_t n, int64_t inner, bool log, std::vector<M>& mx, std::vector<Acc>& sum) {
  mx.assign(inner, -std::numeric_limits<M>::infinity());
  sum.assign(inner, Acc(0));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < inner; ++i) mx[i] = kern::MaxOp{}(mx[i], static_cast<M>(x[j * inner + i]));
  // Where T is its own math type, y holds the exponentials until the division; bfloat16 output
  // would round them twice, so its softmax recomputes them in the last pass (the kernel's way).
  constexpr bool stage_in_output = std::is_same_v<T, M>;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < inner; ++i) {
      const M e = kern::softmax_shifted_exp(static_cast<M>(x[j * inner + i]), mx[i]);
      sum[i] += e;
      if constexpr (stage_in_output) {
        if (!log) y[j * inner + i] = e;
      }
    }
  if (log) {
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i)
        y[j * inner + i] = static_cast<T>(
            kern::log_softmax_value(static_cast<M>(x[j * inner + i]), mx[i], kern::log_of(static_cast<M>(sum[i]))));
  } else if constexpr (stage_in_output) {
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i) y[j * inner + i] /= static_cast<T>(sum[i]);
  } else {
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i)
        y[j * inner + i] =
            static_cast<T>(kern::softmax_value(static_cast<M>(x[j * inner + i]), mx[i], static_cast<M>(sum[i])));
  }
}

template <class T, class M = opmath_t<T>, class Acc = kern::softmax_acc_t<T>>
void backward_block(const T* y, const T* g, T* dx, int64_t n, int64_t inner, bool log, std::vector<Acc>& sum) {
  sum.assign(inner, Acc(0));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t k = j * inner + i;
      sum[i] += kern::softmax_backward_term<Acc>(static_cast<M>(y[k]), static_cast<M>(g[k]), log);
    }
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t k = j * inner + i;
      dx[k] = static_cast<T>(kern::softmax_backward_value(static_cast<M>(y[k]), static_cast<M>(g[k]), sum[i], log));
    }
}

}  // namespace

void softmax_forward(const Tensor& x, int64_t dim, bool log, const Tensor& y) {
  const Layout l = layout_of(x.shape(), dim);
  const Tensor xd = dense(x);
  dispatch_floating_and_bfloat16(x.dtype(), log ? "log_softmax" : "softmax", [&]<class T>() {
    const T* in = xd.data<T>();
    T* out = y.data<T>();
    parallel_for(l.outer, [&](int64_t begin, int64_t end) {
      std::vector<opmath_t<T>> mx;
      std::vector<kern::softmax_acc_t<T>> sum;
      for (int64_t o = begin; o < end; ++o)
        forward_block(in + o * l.n * l.inner, out + o * l.n * l.inner, l.n, l.inner, log, mx, sum);
    }, grain_for(l));
  });
}

void softmax_backward(const Tensor& y, const Tensor& g, int64_t dim, bool log, const Tensor& dx) {
  const Layout l = layout_of(y.shape(), dim);
  const Tensor yd = dense(y), gd = dense(g);
  dispatch_floating_and_bfloat16(y.dtype(), log ? "log_softmax backward" : "softmax backward", [&]<class T>() {
    const T* ys = yd.data<T>();
    const T* gs = gd.data<T>();
    T* out = dx.data<T>();
    parallel_for(l.outer, [&](int64_t begin, int64_t end) {
      std::vector<kern::softmax_acc_t<T>> sum;
      for (int64_t o = begin; o < end; ++o) {
        const int64_t at = o * l.n * l.inner;
        backward_block(ys + at, gs + at, out + at, l.n, l.inner, log, sum);
      }
    }, grain_for(l));
  });
}

}  // namespace pneuma::cpu
