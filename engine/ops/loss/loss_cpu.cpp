#include "engine/ops/loss/loss_cpu.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "engine/cpu/parallel.h"
#include "engine/ops/linalg/linalg_cpu.h"

namespace pneuma::cpu {

namespace losses = kern::losses;

namespace {

constexpr int64_t kSumBlock = 4096;

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(cols, 1)); }

// ---- exp and log that the compiler vectorizes
// glibc's expf and logf are calls, one element at a time; on the loss loops they cost more than
// everything else together (cross-entropy over 1000 classes spent ~8 ns per logit, twice
// PyTorch's vectorized log_softmax). These are branch-free (selects only) and inline, so the
// loops that call them vectorize. Cephes' polynomials: within 2 ulp of the correctly rounded
// result over the ranges the losses use; float only (double keeps libm).

// c ? a : b with both evaluated, as bit masks: under the default -ftrapping-math GCC does not
// turn a ?: whose arms compute into a vector blend (it would evaluate an arm the program may not),
// and the whole loop stays scalar.
inline float select(bool c, float a, float b) {
  const uint32_t mask = 0u - static_cast<uint32_t>(c);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(a) & mask) | (std::bit_cast<uint32_t>(b) & ~mask));
}

// e^x for every float: NaN stays NaN, overflow gives +inf, underflow goes through the
// subnormals to 0.
inline float vector_expf(float x) {
  const float below_max = select(x < 89.0f, x, 89.0f);
  const float clamped = select(below_max > -104.0f, below_max, -104.0f);  // also maps NaN to -104
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (round to nearest even), r = x - n ln 2 in two parts.
  const float shifter = 12582912.0f;
  const float n = (clamped * 1.44269504088896341f + shifter) - shifter;
  const float r = (clamped - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  // 2^n as two factors 2^(n/2) 2^(n - n/2): each stays a normal float for n in [-150, 129].
  const int32_t k = static_cast<int32_t>(n);
  const int32_t half = k / 2;
  const float scale1 = std::bit_cast<float>((half + 127) << 23);
  const float scale2 = std::bit_cast<float>((k - half + 127) << 23);
  const float result = y * scale1 * scale2;
  return select(x != x, x, select(x < -104.0f, 0.0f, result));
}

// log(x) for normal positive finite x (the losses call it on 1 + e, e in [0, 1]); NaN stays NaN.
inline float vector_logf(float x) {
  const int32_t bits = std::bit_cast<int32_t>(x);
  // x = m 2^e with m in [sqrt(1/2), sqrt(2)).
  int32_t e = (bits >> 23) - 127;
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f800000);  // [1, 2)
  const bool above = m > 1.41421356237f;
  m = select(above, 0.5f * m, m);
  e += above ? 1 : 0;
  const float f = m - 1.0f;
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float y = f * z * p;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  const float result = (f + y) + 0.693359375f * fe;
  return select(x != x, x, result);
}

template <class T>
T loop_exp(T x) {
  if constexpr (std::is_same_v<T, float>) return vector_expf(x);
  else return losses::lexp(x);
}

template <class T>
T loop_log(T x) {
  if constexpr (std::is_same_v<T, float>) return vector_logf(x);
  else return losses::llog(x);
}

// The sum of v[0, n) in double, in kLanes independent partial sums combined in a fixed order:
// one chain of dependent additions per element would bound the loop by the adder's latency.
constexpr int kLanes = 8;

// Adds value(i) for i in [0, n) to the partial sums, element i to acc[i % kLanes].
template <class Fn>
void lane_accumulate(double (&acc)[kLanes], int64_t n, Fn&& value) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] += static_cast<double>(value(i + k));
  for (; i < n; ++i) acc[i % kLanes] += static_cast<double>(value(i));
}

inline double lane_total(const double (&acc)[kLanes]) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <class Fn>
double lane_sum(int64_t n, Fn&& value) {
  double acc[kLanes] = {};
  lane_accumulate(acc, n, value);
  return lane_total(acc);
}

// kern::losses::logistic_parts with the loops' exp and log, over a chunk: softplus(-x) and
// sigmoid(x) from e = exp(-|x|), expression for expression.
template <class T>
[[gnu::always_inline]] inline void logistic_parts_chunk(const T* x, int64_t n, T* softplus_neg, T* sigmoid) {
  for (int64_t i = 0; i < n; ++i) sigmoid[i] = loop_exp(x[i] < T(0) ? x[i] : -x[i]);  // e for now
  for (int64_t i = 0; i < n; ++i) softplus_neg[i] = losses::lmax(-x[i], T(0)) + loop_log(T(1) + sigmoid[i]);
  for (int64_t i = 0; i < n; ++i) sigmoid[i] = (x[i] >= T(0) ? T(1) : sigmoid[i]) / (T(1) + sigmoid[i]);
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

// ---- the float loops that carry the losses' exponentials, logarithms and row maxima
// Compiled twice on x86-64 with GCC: for x86-64-v3 (AVX2 and FMA, 8 floats a vector, as
// PyTorch's own kernels use where the CPU has them) and for the baseline (SSE2), the loader
// picking one for the machine once. The results of the two differ by rounding (FMA).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PNEUMA_FLOAT_LOOP __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PNEUMA_FLOAT_LOOP
#endif

// The maximum of x[0, n), NaN if any element is NaN (as row_max). GCC's vector extension, as
// the auto-vectorizer leaves a maximum with NaN semantics scalar: lane-wise maxima and
// sums of v - v, which turn NaN when an element is NaN or infinite; only then the row is
// scanned again with row_max, for the exact NaN semantics.
PNEUMA_FLOAT_LOOP float float_row_max(const float* x, int64_t n) {
  using Vector = float __attribute__((vector_size(kLanes * sizeof(float))));
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  Vector m = {kLowest, kLowest, kLowest, kLowest, kLowest, kLowest, kLowest, kLowest};
  Vector finite = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Vector v;
    std::memcpy(&v, x + i, sizeof v);
    m = v > m ? v : m;
    finite += v - v;
  }
  float result = kLowest, check = 0.0f;
  for (int k = 0; k < kLanes; ++k) {
    result = m[k] > result ? m[k] : result;
    check += finite[k];
  }
  for (; i < n; ++i) {
    result = x[i] > result ? x[i] : result;
    check += x[i] - x[i];
  }
  return check == 0.0f ? result : row_max(x, n);
}

// e[i] = exp(x[i] * scale - shift) for i in [0, n); returns their sum (in double, lane_sum's order).
PNEUMA_FLOAT_LOOP double float_shifted_exp(const float* x, float scale, float shift, float* e, int64_t n) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const float v = vector_expf(x[i + k] * scale - shift);
      e[i + k] = v;
      acc[k] += static_cast<double>(v);
    }
  for (; i < n; ++i) {
    e[i] = vector_expf(x[i] * scale - shift);
    acc[i % kLanes] += static_cast<double>(e[i]);
  }
  return lane_total(acc);
}

// Elements are taken kChunk at a time, so that a chunk's intermediate values stay in L1.
constexpr int64_t kChunk = 256;

// torchvision's sigmoid focal loss (kern::losses::sigmoid_focal_terms) from the chunk's logistic
// parts (the header's short form computes them itself, one libm exp and log per element), with
// gamma a constant and alpha's use known at compile time (alpha < 0 disables it), so that
// focal_power and pow_derivative fold to products, the alpha branch folds away and the loop
// vectorizes.
template <int Gamma, bool Alpha>
[[gnu::always_inline]] inline void focal_terms_chunk(const float* x, const float* t, float alpha,
                                                     const float* softplus_neg, const float* sigmoid, int64_t n,
                                                     float* loss, float* dx, float* dt) {
  const float gamma = static_cast<float>(Gamma);
  const float alpha_or_off = Alpha ? alpha : -1.0f;
  for (int64_t i = 0; i < n; ++i) {
    const losses::BinaryTerms<float> r = losses::sigmoid_focal_terms(
        x[i], t[i], alpha_or_off, gamma, losses::LogisticParts<float>{softplus_neg[i], sigmoid[i]});
    loss[i] = r.loss;
    dx[i] = r.dx;
    dt[i] = r.dt;
  }
}

// A binary loss on n <= kChunk elements: values[i] = weight_i * loss_i and, where not null,
// unit_dx / unit_dt = weight_i * d(loss_i)/dx_i, /dt_i. A null pos_weight or weight reads as ones.
// Every loop here is free of branches, so that each vectorizes. Returns false (and computes
// nothing) for a focal gamma other than 0, 1 or 2, whose power stays with libm.
PNEUMA_FLOAT_LOOP bool float_binary_chunk(const BinaryLossConfig& config, const float* x, const float* t,
                                          const float* pos_weight, const float* weight, int64_t n, float* values,
                                          float* unit_dx, float* unit_dt) {
  const bool focal = config.kind == BinaryLossKind::SigmoidFocal;
  const float gamma = static_cast<float>(config.gamma), alpha = static_cast<float>(config.alpha);
  if (focal && gamma != 0.0f && gamma != 1.0f && gamma != 2.0f) return false;
  float softplus_neg[kChunk], sigmoid[kChunk], loss[kChunk], dx[kChunk], dt[kChunk], ones[kChunk];
  for (int64_t i = 0; i < n; ++i) ones[i] = 1.0f;
  const float* w = weight ? weight : ones;
  logistic_parts_chunk(x, n, softplus_neg, sigmoid);
  if (!focal) {
    const float* pw = pos_weight ? pos_weight : ones;
    for (int64_t i = 0; i < n; ++i) {
      const losses::BinaryTerms<float> r =
          losses::bce_with_logits_terms(x[i], t[i], pw[i], losses::LogisticParts<float>{softplus_neg[i], sigmoid[i]});
      loss[i] = r.loss;
      dx[i] = r.dx;
      dt[i] = r.dt;
    }
  } else {
    const bool with_alpha = alpha >= 0.0f;
    auto terms = [&]<int Gamma>() {
      if (with_alpha) focal_terms_chunk<Gamma, true>(x, t, alpha, softplus_neg, sigmoid, n, loss, dx, dt);
      else focal_terms_chunk<Gamma, false>(x, t, alpha, softplus_neg, sigmoid, n, loss, dx, dt);
    };
    if (gamma == 2.0f) terms.template operator()<2>();
    else if (gamma == 1.0f) terms.template operator()<1>();
    else terms.template operator()<0>();
  }
  for (int64_t i = 0; i < n; ++i) {
    values[i] = w[i] * loss[i];
    dx[i] = w[i] * dx[i];
    dt[i] = w[i] * dt[i];
  }
  if (unit_dx) std::memcpy(unit_dx, dx, static_cast<size_t>(n) * sizeof(float));
  if (unit_dt) std::memcpy(unit_dt, dt, static_cast<size_t>(n) * sizeof(float));
  return true;
}

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
    T* unreduced = config.reduction == LossReduction::None ? out.data<T>() : nullptr;
    const int64_t n = x.numel();
    const bool bce = config.kind == BinaryLossKind::BceWithLogits;
    // Fixed blocks of kSumBlock elements, each summed on its own and the blocks' sums added in
    // order: the result does not depend on the number of threads. Within a block, chunks small
    // enough for L1: BCE's exponentials and logarithms first, each in a loop of its own that
    // vectorizes, then one evaluation of the element's terms for the loss and, when asked, its
    // gradients.
    const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
    std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
    parallel_for(blocks, [&](int64_t begin, int64_t end) {
      T softplus_neg[kChunk], sigmoid[kChunk], values[kChunk];
      for (int64_t b = begin; b < end; ++b) {
        double acc[kLanes] = {};
        auto accumulate = [&](int64_t from, int64_t len) {
          if (unreduced) std::copy(values, values + len, unreduced + from);
          else lane_accumulate(acc, len, [&](int64_t k) { return values[k]; });
        };
        const int64_t stop = std::min(n, (b + 1) * kSumBlock);
        for (int64_t from = b * kSumBlock; from < stop; from += kChunk) {
          const int64_t len = std::min(kChunk, stop - from);
          if constexpr (std::is_same_v<T, float>) {
            if (float_binary_chunk(config, xs + from, ts + from, pws ? pws + from : nullptr, ws ? ws + from : nullptr,
                                   len, values, udx ? udx + from : nullptr, udt ? udt + from : nullptr)) {
              accumulate(from, len);
              continue;
            }
          }
          if (bce) logistic_parts_chunk(xs + from, len, softplus_neg, sigmoid);
          for (int64_t k = 0; k < len; ++k) {
            const int64_t i = from + k;
            const T pw = pws ? pws[i] : T(1);
            const losses::BinaryTerms<T> r =
                bce ? losses::bce_with_logits_terms(xs[i], ts[i], pw, losses::LogisticParts<T>{softplus_neg[k], sigmoid[k]})
                    : binary_terms<T>(config, xs[i], ts[i], pw);
            const T w = ws ? ws[i] : T(1);
            if (udx) udx[i] = w * r.dx;
            if (udt) udt[i] = w * r.dt;
            values[k] = w * r.loss;
          }
          accumulate(from, len);
        }
        partial[static_cast<size_t>(b)] = lane_total(acc);
      }
    }, std::max<int64_t>(1, kParallelGrain / kSumBlock / 4));
    if (unreduced) return;
    double total = 0;
    for (double p : partial) total += p;
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

template <class T, bool Unit>
T class_row_max(const ClassRowView<T, Unit>& row, int64_t classes) {
  if constexpr (Unit && std::is_same_v<T, float>) return float_row_max(row.x + row.base, classes);
  else return row_max(row, classes);
}

// Writes exp(row[c] - max) to e[c * e_stride] and returns their sum: the exponentials in a loop of
// their own (it vectorizes for unit strides), the sum in double in lanes.
template <class T, bool Unit>
double row_shifted_exp(const ClassRowView<T, Unit>& row, int64_t classes, T mx, T* e, int64_t e_stride) {
  if constexpr (Unit && std::is_same_v<T, float>) {
    if (e_stride == 1) return float_shifted_exp(row.x + row.base, 1.0f, mx, e, classes);
  }
  for (int64_t c = 0; c < classes; ++c) e[c * e_stride] = loop_exp(row[c] - mx);
  return lane_sum(classes, [&](int64_t c) { return e[c * e_stride]; });
}

// The row's log-sum-exp; scratch: room for the row's `classes` exponentials.
template <class T, bool Unit>
T row_lse(const ClassRowView<T, Unit>& row, int64_t classes, T* scratch) {
  const T mx = class_row_max(row, classes);
  const double sum = row_shifted_exp(row, classes, mx, scratch, 1);
  return mx + static_cast<T>(std::log(sum));
}

// As row_lse, also writing the row's softmax to p (the row's layout).
template <class T, bool Unit>
T row_softmax(const ClassRowView<T, Unit>& row, int64_t classes, T* p) {
  const int64_t stride = Unit ? 1 : row.stride;
  const T mx = class_row_max(row, classes);
  const double sum = row_shifted_exp(row, classes, mx, p, stride);
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
        std::vector<T> scratch(ps ? 0 : static_cast<size_t>(classes));  // a row's exponentials, when p is not kept
        for (int64_t r = begin; r < end; ++r) {
          losses::ClassRowStats<T>& s = stats[static_cast<size_t>(r)];
          s = {T(0), T(0), T(0), T(0)};
          const int64_t y = ys[r];
          if (!focal && y == config.ignore_index) {
            lses[r] = T(0);
            continue;
          }
          const ClassRowView<T, Unit> row = class_row<T, Unit>(config, xs, r);
          s.lse = ps ? row_softmax(row, classes, ps + row.base) : row_lse(row, classes, scratch.data());
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
            const T lse_r = s.lse;
            s.smooth = static_cast<T>(-(ws ? lane_sum(classes, [&](int64_t c) { return ws[c] * (row[c] - lse_r); })
                                           : lane_sum(classes, [&](int64_t c) { return row[c] - lse_r; })));
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
          // The row's softmax: the forward's, or formed here into drow; then drow = the gradient,
          // in loops without a branch inside, so that they vectorize.
          const T* prow = ps ? ps + row.base : drow;
          if (!ps)
            for (int64_t c = 0; c < classes; ++c) drow[c * stride] = loop_exp(row[c] - l);
          if (k.b == T(0)) {
            for (int64_t c = 0; c < classes; ++c) drow[c * stride] = k.a * prow[c * stride];
          } else if (ws) {
            const T scale = k.a + k.b * weight_sum;
            for (int64_t c = 0; c < classes; ++c) drow[c * stride] = scale * prow[c * stride] - k.b * ws[c];
          } else {
            const T scale = k.a + k.b * weight_sum;
            for (int64_t c = 0; c < classes; ++c) drow[c * stride] = scale * prow[c * stride] - k.b;
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
        T mx;
        if constexpr (std::is_same_v<T, float>) mx = losses::nan_max(float_row_max(row, i), float_row_max(row + i + 1, m - i - 1));
        else mx = losses::nan_max(row_max(row, i), row_max(row + i + 1, m - i - 1));
        mx *= inv_tau;
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
          // The exponentials in a loop that vectorizes, then their sum in double in lanes.
          T sum;
          if constexpr (std::is_same_v<T, float>) {
            sum = static_cast<T>(float_shifted_exp(row, inv_tau, mx, prow, i) +
                                 float_shifted_exp(row + i + 1, inv_tau, mx, prow + i + 1, m - i - 1));
          } else {
            for (int64_t j = 0; j < m; ++j) prow[j] = loop_exp(row[j] * inv_tau - mx);
            prow[i] = T(0);
            sum = static_cast<T>(lane_sum(m, [&](int64_t j) { return prow[j]; }));
          }
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
