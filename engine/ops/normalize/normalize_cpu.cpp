#include "engine/ops/normalize/normalize_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/parallel.h"

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

// |v|^p, with the common powers spelled out (exact and fast).
double power(double v, double p) {
  if (p == 2.0) return v * v;
  if (p == 1.0) return std::abs(v);
  return std::pow(std::abs(v), p);
}

double root(double s, double p) {
  if (p == 2.0) return std::sqrt(s);
  if (p == 1.0) return s;
  return std::pow(s, 1.0 / p);
}

// d||x||_p / dx_i for norm > 0 (PyTorch's norm_backward).
double norm_derivative(double v, double norm, double p) {
  if (p == 2.0) return v / norm;
  if (p == 1.0) return (v > 0) - (v < 0);
  return v * std::pow(std::abs(v), p - 2.0) / std::pow(norm, p - 1.0);
}

}  // namespace

void normalize_forward(const Tensor& x, int64_t dim, double p, double eps, const Tensor& y, const Tensor& norm) {
  const Layout l = layout_of(x.shape(), dim);
  const Tensor xd = dense(x);
  dispatch_floating(x.dtype(), "normalize", [&]<class T>() {
    const T* in = xd.data<T>();
    T* out = y.data<T>();
    T* nrm = norm.data<T>();
    parallel_for(l.outer, [&](int64_t begin, int64_t end) {
      std::vector<double> acc;
      for (int64_t o = begin; o < end; ++o) {
        const T* xs = in + o * l.n * l.inner;
        T* ys = out + o * l.n * l.inner;
        T* ns = nrm + o * l.inner;
        acc.assign(l.inner, 0.0);
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i) acc[i] += power(xs[j * l.inner + i], p);
        for (int64_t i = 0; i < l.inner; ++i) ns[i] = static_cast<T>(root(acc[i], p));
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i)
            ys[j * l.inner + i] = xs[j * l.inner + i] / std::max(ns[i], static_cast<T>(eps));
      }
    }, grain_for(l));
  });
}

void normalize_backward(const Tensor& x, const Tensor& norm, const Tensor& g, int64_t dim, double p, double eps,
                        const Tensor& dx) {
  const Layout l = layout_of(x.shape(), dim);
  const Tensor xd = dense(x), nd = dense(norm), gd = dense(g);
  dispatch_floating(x.dtype(), "normalize backward", [&]<class T>() {
    const T* xs_all = xd.data<T>();
    const T* ns_all = nd.data<T>();
    const T* gs_all = gd.data<T>();
    T* out = dx.data<T>();
    parallel_for(l.outer, [&](int64_t begin, int64_t end) {
      std::vector<double> coef;
      for (int64_t o = begin; o < end; ++o) {
        const int64_t at = o * l.n * l.inner;
        const T* xs = xs_all + at;
        const T* gs = gs_all + at;
        const T* ns = ns_all + o * l.inner;
        T* ds = out + at;
        // coef = d(loss)/d(norm) = -sum(g * x) / denom^2, zero where the clamp is active.
        coef.assign(l.inner, 0.0);
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i)
            coef[i] += static_cast<double>(gs[j * l.inner + i]) * xs[j * l.inner + i];
        for (int64_t i = 0; i < l.inner; ++i) {
          const double nrm = ns[i], denom = std::max(nrm, static_cast<double>(static_cast<T>(eps)));
          coef[i] = nrm >= static_cast<T>(eps) && nrm != 0 ? -coef[i] / (denom * denom) : 0.0;
        }
        for (int64_t j = 0; j < l.n; ++j)
          for (int64_t i = 0; i < l.inner; ++i) {
            const int64_t k = j * l.inner + i;
            const double nrm = ns[i], denom = std::max(nrm, static_cast<double>(static_cast<T>(eps)));
            double v = gs[k] / denom;
            if (coef[i] != 0.0) v += coef[i] * norm_derivative(xs[k], nrm, p);
            ds[k] = static_cast<T>(v);
          }
      }
    }, grain_for(l));
  });
}

}  // namespace pneuma::cpu
