#include "engine/ops/loss/loss_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "engine/cpu/parallel.h"
#include "engine/ops/linalg/linalg_cpu.h"

namespace pneuma::cpu {

namespace losses = kern::losses;

namespace {

// Sums value(i) for i in [0, n) in fixed blocks (partial sums in parallel, then in order), so
// the result does not depend on the number of threads.
template <class Fn>
double blocked_sum(int64_t n, int64_t block, Fn&& value) {
  const int64_t blocks = (n + block - 1) / block;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  parallel_for(blocks, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      double s = 0;
      const int64_t stop = std::min(n, (b + 1) * block);
      for (int64_t i = b * block; i < stop; ++i) s += value(i);
      partial[static_cast<size_t>(b)] = s;
    }
  }, std::max<int64_t>(1, kParallelGrain / block));
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

constexpr int64_t kSumBlock = 4096;

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(cols, 1)); }

template <class T>
losses::BinaryTerms<T> binary_terms(const BinaryLossConfig& c, T x, T t, T pos_weight) {
  if (c.kind == BinaryLossKind::SigmoidFocal) return losses::sigmoid_focal_terms(x, t, T(c.alpha), T(c.gamma));
  return losses::bce_with_logits_terms(x, t, pos_weight);
}

}  // namespace

// ---- binary losses

void binary_loss_forward(const BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                         const Tensor& pos_weight, const Tensor& out, const Tensor& unit_dx, const Tensor& unit_dt) {
  dispatch_floating(x.dtype(), "binary loss", [&]<class T>() {
    const T* xs = x.data<T>();
    const T* ts = t.data<T>();
    const T* ws = weight.defined() ? weight.data<T>() : nullptr;
    const T* pws = pos_weight.defined() ? pos_weight.data<T>() : nullptr;
    T* udx = unit_dx.defined() ? unit_dx.data<T>() : nullptr;
    T* udt = unit_dt.defined() ? unit_dt.data<T>() : nullptr;
    const int64_t n = x.numel();
    // One evaluation of the element's terms serves the loss and, when asked, its gradients.
    auto element = [&](int64_t i) {
      const losses::BinaryTerms<T> r = binary_terms<T>(config, xs[i], ts[i], pws ? pws[i] : T(1));
      const T w = ws ? ws[i] : T(1);
      if (udx) udx[i] = w * r.dx;
      if (udt) udt[i] = w * r.dt;
      return w * r.loss;
    };
    if (config.reduction == LossReduction::None) {
      T* o = out.data<T>();
      parallel_for(n, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) o[i] = element(i);
      }, 4096);
      return;
    }
    const double total = blocked_sum(n, kSumBlock, [&](int64_t i) { return static_cast<double>(element(i)); });
    // torch divides the float sum by numel; an empty mean is NaN.
    out.data<T>()[0] = config.reduction == LossReduction::Mean ? static_cast<T>(total / static_cast<double>(n))
                                                               : static_cast<T>(total);
  });
}

void binary_loss_backward_saved(LossReduction reduction, const Tensor& unit, const Tensor& g, const Tensor& grad) {
  const Tensor gd = g.contiguous();
  dispatch_floating(unit.dtype(), "binary loss backward", [&]<class T>() {
    const T* u = unit.data<T>();
    const T* gs = gd.data<T>();
    T* out = grad.data<T>();
    const int64_t n = unit.numel();
    if (reduction == LossReduction::None) {
      parallel_for(n, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) out[i] = gs[i] * u[i];
      });
      return;
    }
    const T scale = reduction == LossReduction::Mean ? gs[0] / static_cast<T>(n) : gs[0];
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = scale * u[i];
    });
  });
}

void binary_loss_backward(const BinaryLossConfig& config, const Tensor& x, const Tensor& t, const Tensor& weight,
                          const Tensor& pos_weight, const Tensor& g, const Tensor& dx, const Tensor& dt) {
  const Tensor gd = g.contiguous();
  dispatch_floating(x.dtype(), "binary loss backward", [&]<class T>() {
    const T* xs = x.data<T>();
    const T* ts = t.data<T>();
    const T* ws = weight.defined() ? weight.data<T>() : nullptr;
    const T* pws = pos_weight.defined() ? pos_weight.data<T>() : nullptr;
    const T* gs = gd.data<T>();
    T* dxs = dx.defined() ? dx.data<T>() : nullptr;
    T* dts = dt.defined() ? dt.data<T>() : nullptr;
    const int64_t n = x.numel();
    const bool per_element = config.reduction == LossReduction::None;
    const T scale = config.reduction == LossReduction::Mean ? gs[0] / static_cast<T>(n) : gs[0];
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const losses::BinaryTerms<T> r = binary_terms<T>(config, xs[i], ts[i], pws ? pws[i] : T(1));
        T c = per_element ? gs[i] : scale;
        if (ws) c *= ws[i];
        if (dxs) dxs[i] = c * r.dx;
        if (dts) dts[i] = c * r.dt;
      }
    }, 4096);
  });
}

// ---- class rows

namespace {

// A row of the [outer, classes, inner] logits; Unit: inner == 1, so the compiler sees unit stride.
template <class T, bool Unit>
struct ClassRowView {
  const T* x;
  int64_t base, stride;
  T operator[](int64_t c) const { return x[base + c * (Unit ? 1 : stride)]; }
};

template <class T, bool Unit>
ClassRowView<T, Unit> class_row(const ClassLossConfig& c, const T* x, int64_t r) {
  const int64_t o = r / c.inner, k = r % c.inner;
  return {x, o * c.classes * c.inner + k, c.inner};
}

// The NaN-propagating maximum of row[0, n), in four independent chains: one chain's compare and
// select latency per element, not throughput, would bound the loop.
template <class Row>
auto row_max(const Row& row, int64_t n) {
  using T = std::decay_t<decltype(row[0])>;
  T m[4] = {-std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(),
            -std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity()};
  int64_t c = 0;
  for (; c + 4 <= n; c += 4)
    for (int k = 0; k < 4; ++k) m[k] = losses::nan_max(m[k], row[c + k]);
  for (; c < n; ++c) m[0] = losses::nan_max(m[0], row[c]);
  return losses::nan_max(losses::nan_max(m[0], m[1]), losses::nan_max(m[2], m[3]));
}

template <class T, bool Unit>
T row_lse(const ClassRowView<T, Unit>& row, int64_t classes) {
  const T mx = row_max(row, classes);
  double sum = 0;
  for (int64_t c = 0; c < classes; ++c) sum += losses::lexp(row[c] - mx);
  return mx + static_cast<T>(std::log(sum));
}

// As row_lse, also writing the row's softmax to p (the row's layout).
template <class T, bool Unit>
T row_softmax(const ClassRowView<T, Unit>& row, int64_t classes, T* p) {
  const int64_t stride = Unit ? 1 : row.stride;
  const T mx = row_max(row, classes);
  double sum = 0;
  for (int64_t c = 0; c < classes; ++c) {
    const T e = losses::lexp(row[c] - mx);
    p[c * stride] = e;
    sum += e;
  }
  const T inv_sum = static_cast<T>(1.0 / sum);
  for (int64_t c = 0; c < classes; ++c) p[c * stride] *= inv_sum;
  return mx + static_cast<T>(std::log(sum));
}

template <class Fn>
void with_unit_stride(bool unit, Fn&& fn) {
  if (unit) fn.template operator()<true>();
  else fn.template operator()<false>();
}

}  // namespace

void class_loss_forward(const ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                        const Tensor& out, const Tensor& lse, const Tensor& totals, const Tensor& probabilities) {
  dispatch_floating(x.dtype(), "class loss", [&]<class T>() {
    const T* xs = x.data<T>();
    T* ps = probabilities.defined() ? probabilities.data<T>() : nullptr;
    const int64_t* ys = target.data<int64_t>();
    const T* ws = weight.defined() ? weight.data<T>() : nullptr;
    T* lses = lse.data<T>();
    const int64_t rows = config.rows(), classes = config.classes;
    const bool focal = config.kind == ClassLossKind::SoftmaxFocal;
    const T eps = static_cast<T>(config.label_smoothing);
    std::vector<losses::ClassRowStats<T>> stats(static_cast<size_t>(rows));
    with_unit_stride(config.inner == 1, [&]<bool Unit>() {
      parallel_for(rows, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          losses::ClassRowStats<T>& s = stats[static_cast<size_t>(r)];
          s = {T(0), T(0), T(0), T(0)};
          const int64_t y = ys[r];
          if (!focal && y == config.ignore_index) {
            lses[r] = T(0);
            continue;
          }
          const ClassRowView<T, Unit> row = class_row<T, Unit>(config, xs, r);
          s.lse = ps ? row_softmax(row, classes, ps + row.base) : row_lse(row, classes);
          lses[r] = s.lse;
          const T w_y = ws ? ws[y] : T(1);
          if (focal) {
            s.nll = losses::softmax_focal_value(row[y] - s.lse, w_y, static_cast<T>(config.gamma));
            s.weight = T(1);
            continue;
          }
          s.nll = -w_y * (row[y] - s.lse);
          s.weight = w_y;
          if (eps > T(0)) {
            double smooth = 0;
            for (int64_t c = 0; c < classes; ++c) smooth -= static_cast<double>((ws ? ws[c] : T(1)) * (row[c] - s.lse));
            s.smooth = static_cast<T>(smooth);
          }
        }
      }, row_grain(classes));
    });

    double sums[4] = {0, 0, 0, 0};
    for (int64_t r = 0; r < rows; ++r) {
      const losses::ClassRowStats<T>& s = stats[static_cast<size_t>(r)];
      const bool valid = focal || ys[r] != config.ignore_index;
      sums[0] += s.nll;
      sums[1] += s.smooth;
      sums[2] += s.weight;
      sums[3] += valid ? 1.0 : 0.0;
    }
    const losses::ClassTotals<T> t{static_cast<T>(sums[0]), static_cast<T>(sums[1]), static_cast<T>(sums[2]),
                                   static_cast<T>(sums[3])};
    T* tot = totals.data<T>();
    tot[0] = t.nll;
    tot[1] = t.smooth;
    tot[2] = t.weight;
    tot[3] = t.valid;
    T* o = out.data<T>();
    if (config.reduction == LossReduction::None) {
      for (int64_t r = 0; r < rows; ++r)
        o[r] = losses::class_loss_row(config.kind, stats[static_cast<size_t>(r)], eps, classes);
    } else {
      o[0] = losses::class_loss_reduced(config.kind, config.reduction, t, eps, classes);
    }
  });
}

void class_loss_backward(const ClassLossConfig& config, const Tensor& x, const Tensor& target, const Tensor& weight,
                         const Tensor& lse, const Tensor& totals, const Tensor& g, const Tensor& dx,
                         const Tensor& probabilities) {
  const Tensor gd = g.contiguous();
  dispatch_floating(x.dtype(), "class loss backward", [&]<class T>() {
    const T* xs = x.data<T>();
    const T* ps = probabilities.defined() ? probabilities.data<T>() : nullptr;
    const int64_t* ys = target.data<int64_t>();
    const T* ws = weight.defined() ? weight.data<T>() : nullptr;
    const T* lses = lse.data<T>();
    const T* tot = totals.data<T>();
    const losses::ClassTotals<T> t{tot[0], tot[1], tot[2], tot[3]};
    const T* gs = gd.data<T>();
    T* out = dx.data<T>();
    const int64_t rows = config.rows(), classes = config.classes;
    const bool focal = config.kind == ClassLossKind::SoftmaxFocal;
    const T eps = static_cast<T>(config.label_smoothing);
    T weight_sum = static_cast<T>(classes);
    if (ws) {
      double s = 0;
      for (int64_t c = 0; c < classes; ++c) s += ws[c];
      weight_sum = static_cast<T>(s);
    }
    with_unit_stride(config.inner == 1, [&]<bool Unit>() {
      parallel_for(rows, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const ClassRowView<T, Unit> row = class_row<T, Unit>(config, xs, r);
          T* drow = out + row.base;
          const int64_t stride = Unit ? 1 : row.stride;
          const int64_t y = ys[r];
          if (!focal && y == config.ignore_index) {
            for (int64_t c = 0; c < classes; ++c) drow[c * stride] = T(0);
            continue;
          }
          const T g_r = config.reduction == LossReduction::None ? gs[r] : gs[0];
          const T w_y = ws ? ws[y] : T(1);
          const T l = lses[r];
          const losses::ClassRowGrad<T> k = losses::class_row_grad(config.kind, config.reduction, g_r, row[y] - l, w_y,
                                                                   w_y, static_cast<T>(config.gamma), t, eps, classes);
          const T* prow = ps ? ps + row.base : nullptr;
          auto prob = [&](int64_t c) { return prow ? prow[c * stride] : losses::lexp(row[c] - l); };
          if (k.b == T(0)) {
            for (int64_t c = 0; c < classes; ++c) drow[c * stride] = k.a * prob(c);
          } else {
            const T scale = k.a + k.b * weight_sum;
            for (int64_t c = 0; c < classes; ++c) drow[c * stride] = scale * prob(c) - k.b * (ws ? ws[c] : T(1));
          }
          drow[y * stride] -= k.a;
        }
      }, row_grain(classes));
    });
  });
}

// ---- contrastive rows

void contrastive_forward(const ContrastiveConfig& config, const Tensor& s, const Tensor& groups, const Tensor& out,
                         const Tensor& lse, const Tensor& positives, const Tensor& totals, const Tensor& probabilities) {
  dispatch_floating(s.dtype(), "contrastive loss", [&]<class T>() {
    const T* ss = s.data<T>();
    T* ps = probabilities.data<T>();
    const int64_t* gs = groups.data<int64_t>();
    T* lses = lse.data<T>();
    T* pos = positives.data<T>();
    const int64_t m = s.size(0);
    const T inv_tau = static_cast<T>(config.inv_tau);
    std::vector<T> row_loss(static_cast<size_t>(m));
    parallel_for(m, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const T* row = ss + i * m;
        T* prow = ps + i * m;
        const int64_t gi = gs[i];
        // The maximum of the similarities, scaled once: inv_tau > 0 preserves the order.
        const T mx = losses::nan_max(row_max(row, i), row_max(row + i + 1, m - i - 1)) * inv_tau;
        T positive_sum = 0;
        int64_t count = 0;
        // Branch-free over j: the positive pattern is as unpredictable as the labels.
        auto scan = [&](int64_t from, int64_t to) {
          for (int64_t j = from; j < to; ++j) {
            const bool positive = gs[j] == gi;
            positive_sum += positive ? row[j] : T(0);
            count += positive;
          }
        };
        scan(0, i);
        scan(i + 1, m);
        positive_sum *= inv_tau;
        T lse_i = 0;
        if (count > 0) {
          T sum = 0;
          auto exponentiate = [&](int64_t from, int64_t to) {
            for (int64_t j = from; j < to; ++j) {
              const T e = losses::lexp(row[j] * inv_tau - mx);
              prow[j] = e;
              sum += e;
            }
          };
          exponentiate(0, i);
          exponentiate(i + 1, m);
          prow[i] = T(0);
          lse_i = mx + losses::llog(sum);
          const T inv_sum = T(1) / sum;
          for (int64_t j = 0; j < m; ++j) prow[j] *= inv_sum;
        } else {
          std::fill(prow, prow + m, T(0));  // never read: the anchor has no gradient
        }
        lses[i] = lse_i;
        pos[i] = static_cast<T>(count);
        row_loss[static_cast<size_t>(i)] = losses::contrastive_row_loss(lse_i, positive_sum, static_cast<T>(count));
      }
    }, row_grain(m));
    double loss_sum = 0, with_positives = 0;
    for (int64_t i = 0; i < m; ++i) {
      loss_sum += row_loss[static_cast<size_t>(i)];
      with_positives += pos[i] > T(0) ? 1.0 : 0.0;
    }
    T* tot = totals.data<T>();
    tot[0] = static_cast<T>(loss_sum);
    tot[1] = static_cast<T>(with_positives);
    const T a = losses::contrastive_anchor_weight(config.mean, m, tot[1], static_cast<T>(config.scale));
    out.data<T>()[0] = a * tot[0];
  });
}

void contrastive_backward(const ContrastiveConfig& config, const Tensor& probabilities, const Tensor& groups,
                          const Tensor& positives, const Tensor& totals, const Tensor& g, bool symmetric,
                          const Tensor& grad_s) {
  const Tensor gd = g.contiguous();
  dispatch_floating(probabilities.dtype(), "contrastive loss backward", [&]<class T>() {
    const T* ps = probabilities.data<T>();
    const int64_t* gs = groups.data<int64_t>();
    const T* pos = positives.data<T>();
    T* out = grad_s.data<T>();
    const int64_t m = probabilities.size(0);
    const T a = losses::contrastive_anchor_weight(config.mean, m, totals.data<T>()[1], static_cast<T>(config.scale));
    const T coefficient = gd.data<T>()[0] * a * static_cast<T>(config.inv_tau);
    std::vector<losses::ContrastiveAnchorGrad<T>> anchors(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) anchors[static_cast<size_t>(i)] = losses::contrastive_anchor_grad(pos[i], coefficient);
    auto term = [&](int64_t i, int64_t j) {
      return losses::contrastive_grad_term(ps[i * m + j], gs[i] == gs[j], anchors[static_cast<size_t>(i)]);
    };
    if (!symmetric) {
      parallel_for(m, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          for (int64_t j = 0; j < m; ++j) out[i * m + j] = term(i, j);
          out[i * m + i] = T(0);
        }
      }, row_grain(m));
      return;
    }
    // G = dS + dS^T in one pass over tile pairs (bi <= bj). Each tile pair's two terms are formed
    // in local buffers from contiguous rows of the probabilities and written back as contiguous
    // rows: walking a column of an N x N matrix directly thrashes the cache, as its rows are a
    // power of two apart for the usual batch sizes. Both mirrored tiles are read before either is
    // written, so grad_s may alias probabilities.
    constexpr int64_t kTile = 64;
    const int64_t tiles = (m + kTile - 1) / kTile;
    std::vector<std::pair<int64_t, int64_t>> pairs;
    for (int64_t bi = 0; bi < tiles; ++bi)
      for (int64_t bj = bi; bj < tiles; ++bj) pairs.emplace_back(bi, bj);
    parallel_for(static_cast<int64_t>(pairs.size()), [&](int64_t begin, int64_t end) {
      std::vector<T> upper(kTile * kTile), lower(kTile * kTile);  // term(i, j) and term(j, i)
      for (int64_t p = begin; p < end; ++p) {
        const auto [bi, bj] = pairs[static_cast<size_t>(p)];
        const int64_t i0 = bi * kTile, j0 = bj * kTile;
        const int64_t ni = std::min(m, i0 + kTile) - i0, nj = std::min(m, j0 + kTile) - j0;
        for (int64_t x = 0; x < ni; ++x)
          for (int64_t y = 0; y < nj; ++y) upper[x * kTile + y] = term(i0 + x, j0 + y);
        for (int64_t y = 0; y < nj; ++y)
          for (int64_t x = 0; x < ni; ++x) lower[y * kTile + x] = term(j0 + y, i0 + x);
        for (int64_t x = 0; x < ni; ++x)
          for (int64_t y = 0; y < nj; ++y) out[(i0 + x) * m + j0 + y] = upper[x * kTile + y] + lower[y * kTile + x];
        for (int64_t y = 0; y < nj; ++y)
          for (int64_t x = 0; x < ni; ++x) out[(j0 + y) * m + i0 + x] = upper[x * kTile + y] + lower[y * kTile + x];
      }
    }, std::max<int64_t>(1, static_cast<int64_t>(pairs.size()) / 64));
    // term(i, i) is not a loss term (P_ii = 0, but i is its own group member): zero the diagonal.
    for (int64_t i = 0; i < m; ++i) out[i * m + i] = T(0);
  });
}

void contrastive_embeddings_forward(const ContrastiveConfig& config, const Tensor& z, const Tensor& groups,
                                    const Tensor& out, const Tensor& probabilities, const Tensor& lse,
                                    const Tensor& positives, const Tensor& totals) {
  gemm(z, z.transpose(0, 1), probabilities);
  contrastive_forward(config, probabilities, groups, out, lse, positives, totals, probabilities);
}

void contrastive_embeddings_backward(const ContrastiveConfig& config, const Tensor& z, const Tensor& probabilities,
                                     const Tensor& groups, const Tensor& positives, const Tensor& totals,
                                     const Tensor& g, const Tensor& dz) {
  const Tensor grad_s = Tensor::empty(probabilities.shape(), probabilities.dtype());
  contrastive_backward(config, probabilities, groups, positives, totals, g, /*symmetric=*/true, grad_s);
  gemm(grad_s, z, dz);
}

// ---- cosine embedding

namespace {

template <class T>
struct CosineRow {
  T dot, sq1, sq2, cos;
};

template <class T>
CosineRow<T> cosine_row(const T* a, const T* b, int64_t d) {
  double dot = 0, sq1 = 0, sq2 = 0;
  for (int64_t k = 0; k < d; ++k) {
    dot += static_cast<double>(a[k]) * b[k];
    sq1 += static_cast<double>(a[k]) * a[k];
    sq2 += static_cast<double>(b[k]) * b[k];
  }
  CosineRow<T> r{static_cast<T>(dot), static_cast<T>(sq1), static_cast<T>(sq2), T(0)};
  r.cos = losses::cosine_of(r.dot, r.sq1, r.sq2);
  return r;
}

}  // namespace

void cosine_embedding_forward(LossReduction reduction, double margin, const Tensor& x1, const Tensor& x2,
                              const Tensor& target, const Tensor& out) {
  dispatch_floating(x1.dtype(), "cosine_embedding_loss", [&]<class T>() {
    const T* a = x1.data<T>();
    const T* b = x2.data<T>();
    const T* ts = target.data<T>();
    const int64_t n = x1.size(0), d = x1.size(1);
    std::vector<T> values(static_cast<size_t>(n));
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const CosineRow<T> r = cosine_row(a + i * d, b + i * d, d);
        values[static_cast<size_t>(i)] = losses::cosine_embedding_value(r.cos, ts[i], static_cast<T>(margin));
      }
    }, row_grain(d));
    T* o = out.data<T>();
    if (reduction == LossReduction::None) {
      std::copy(values.begin(), values.end(), o);
      return;
    }
    double total = 0;
    for (T v : values) total += v;
    o[0] = static_cast<T>(reduction == LossReduction::Mean ? total / static_cast<double>(n) : total);
  });
}

void cosine_embedding_backward(LossReduction reduction, double margin, const Tensor& x1, const Tensor& x2,
                               const Tensor& target, const Tensor& g, const Tensor& dx1, const Tensor& dx2) {
  const Tensor gd = g.contiguous();
  dispatch_floating(x1.dtype(), "cosine_embedding_loss backward", [&]<class T>() {
    const T* a = x1.data<T>();
    const T* b = x2.data<T>();
    const T* ts = target.data<T>();
    const T* gs = gd.data<T>();
    T* da = dx1.defined() ? dx1.data<T>() : nullptr;
    T* db = dx2.defined() ? dx2.data<T>() : nullptr;
    const int64_t n = x1.size(0), d = x1.size(1);
    const T scale = reduction == LossReduction::Mean ? gs[0] / static_cast<T>(n) : gs[0];
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const T* ai = a + i * d;
        const T* bi = b + i * d;
        const CosineRow<T> r = cosine_row(ai, bi, d);
        const T gi = reduction == LossReduction::None ? gs[i] : scale;
        const T c = gi * losses::cosine_embedding_dcos(r.cos, ts[i], static_cast<T>(margin));
        const losses::CosineRowFactors<T> f = losses::cosine_row_factors(r.cos, r.sq1, r.sq2);
        if (da)
          for (int64_t k = 0; k < d; ++k)
            da[i * d + k] = c * losses::cosine_derivative(ai[k], bi[k], f.inv_denominator, f.cos_over_sq1);
        if (db)
          for (int64_t k = 0; k < d; ++k)
            db[i * d + k] = c * losses::cosine_derivative(bi[k], ai[k], f.inv_denominator, f.cos_over_sq2);
      }
    }, row_grain(d));
  });
}

}  // namespace pneuma::cpu
