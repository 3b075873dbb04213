#include "engine/ops/normalize/normalize_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/parallel.h"
#include "kernels/normalize/normalize.cuh"

namespace pneuma::cpu {

namespace {

struct Layout {
  int64_t outer = 1, n = 1, inner = 1;
};

Layout layout_of(const Shape& shape, int64_t dim) {
  Layout l;
  for (int64_t d = 0; d < dim; ++d) l.outer *= shape[d];
  l.n = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) l.inner *= shape[d];
  return l;
}

Tensor dense(const Tensor& t) { return t.detach().contiguous(); }

int64_t grain_for(const Layout& l) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(l.n * l.inner, 1)); }

}  // namespace

// The sums run over n for each of the inner columns at once, so memory is read in order whatever
// inner is; the per-element expressions and the precision (double sums for float32/float64, float
// for bfloat16, the norm in opmath_t<T>) are the CUDA kernels' (kernels/normalize/normalize.cuh).

void normalize_forward(const Tensor& x, int64_t dim, double p, double eps, const Tensor& y, const Tensor& norm) {
  const Layout l = layout_of(x.shape(), dim);
  const Tensor xd = dense(x);
  dispatch_floating_and_bfloat16(x.dtype(), "normalize", [&]<class T>() {
    using N = opmath_t<T>;
    using A = kern::normalize_acc_t<T>;
    const T* in = xd.data<T>();
    T* out = y.data<T>();
    N* nrm = norm.data<N>();
    const A pa = static_cast<A>(p);
    const N floor = static_cast<N>(eps);
    parallel_for(l.outer, [&](int64_t begin, int64_t end) {
      std::vector<A> acc;
      for (int64_t o = begin; o < end; ++o) {
        const T* xs = in + o * l.n * l.inner;
        T* ys = out + o * l.n * l.inner;
        N* ns = nrm + o * l.inner;
        acc.assign(l.inner, A(0));
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i) acc[i] += kern::norm_power<A>(static_cast<A>(xs[j * l.inner + i]), pa);
        for (int64_t i = 0; i < l.inner; ++i) ns[i] = static_cast<N>(kern::norm_root<A>(acc[i], pa));
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i) ys[j * l.inner + i] = kern::normalize_value(xs[j * l.inner + i], ns[i], floor);
      }
    }, grain_for(l));
  });
}

void normalize_backward(const Tensor& x, const Tensor& norm, const Tensor& g, int64_t dim, double p, double eps,
                        const Tensor& dx) {
  const Layout l = layout_of(x.shape(), dim);
  const Tensor xd = dense(x), nd = dense(norm), gd = dense(g);
  dispatch_floating_and_bfloat16(x.dtype(), "normalize backward", [&]<class T>() {
    using N = opmath_t<T>;
    using A = kern::normalize_acc_t<T>;
    const T* xs_all = xd.data<T>();
    const N* ns_all = nd.data<N>();
    const T* gs_all = gd.data<T>();
    T* out = dx.data<T>();
    parallel_for(l.outer, [&](int64_t begin, int64_t end) {
      std::vector<A> coef;
      for (int64_t o = begin; o < end; ++o) {
        const int64_t at = o * l.n * l.inner;
        const T* xs = xs_all + at;
        const T* gs = gs_all + at;
        const N* ns = ns_all + o * l.inner;
        T* ds = out + at;
        // coef = d(loss)/d(norm) = -sum(g * x) / denom^2, zero where the clamp is active.
        coef.assign(l.inner, A(0));
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i)
            coef[i] += static_cast<A>(gs[j * l.inner + i]) * static_cast<A>(xs[j * l.inner + i]);
        for (int64_t i = 0; i < l.inner; ++i) coef[i] = kern::normalize_norm_gradient<N, A>(coef[i], ns[i], eps);
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i) {
            const int64_t k = j * l.inner + i;
            ds[k] = kern::normalize_input_gradient<T, N, A>(gs[k], xs[k], ns[i], coef[i], eps, p);
          }
      }
    }, grain_for(l));
  });
}

}  // namespace pneuma::cpu
