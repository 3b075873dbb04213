// The fused loss kernels (kernels/losses/), executed by the CPU emulator at small sizes, against the
// CPU reference loops (engine/ops/loss/loss_cpu.h): values, saved statistics and gradients, in float
// and double. The reference loops are themselves gradient-checked and compared with PyTorch
// (tests/ops/test_loss_*.cpp); one test also closes the loop through autograd.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/ops/loss/loss_cpu.h"
#include "engine/pneuma.h"
#include "kernels/losses/classification.cuh"
#include "kernels/losses/contrastive.cuh"

namespace {

using namespace pneuma;
namespace kl = pneuma::kern::losses;
using kl::LossReduction;

constexpr LossReduction kReductions[] = {LossReduction::None, LossReduction::Mean, LossReduction::Sum};

const char* name_of(LossReduction r) {
  return r == LossReduction::None ? "none" : (r == LossReduction::Mean ? "mean" : "sum");
}

// Deterministic values in [lo, hi).
template <class T>
std::vector<T> uniform(std::size_t n, std::uint32_t seed, double lo, double hi) {
  std::vector<T> v(n);
  std::uint32_t state = seed * 2654435761u + 12345u;
  for (auto& x : v) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<T>(lo + (hi - lo) * (static_cast<double>(state >> 8) / static_cast<double>(1u << 24)));
  }
  return v;
}

template <class T>
Tensor tensor_of(const std::vector<T>& v, const Shape& shape) {
  return Tensor::from_vector(std::vector<double>(v.begin(), v.end()), shape, dtype_v<T>);
}

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-4 : 1e-11;
}

// |a - b| <= tol * (1 + |b|) elementwise.
template <class T>
void check_values(const std::vector<T>& actual, const Tensor& expected, const char* what) {
  const std::vector<double> e = expected.to_vector();
  REQUIRE(actual.size() == e.size());
  for (std::size_t i = 0; i < e.size(); ++i) {
    INFO(what, " element ", i, ": kernel ", actual[i], " reference ", e[i]);
    CHECK(std::fabs(static_cast<double>(actual[i]) - e[i]) <= tolerance<T>() * (1.0 + std::fabs(e[i])));
  }
}

kern::Stream no_stream() { return kern::Stream{}; }

// ---- binary losses

template <class T>
void run_binary(kl::BinaryKind kind, double alpha, double gamma, bool weighted) {
  const std::int64_t n = 700;  // several blocks of 256 threads
  const std::vector<T> x = uniform<T>(n, 1, -60, 60);
  const std::vector<T> t = uniform<T>(n, 2, 0, 1);
  const std::vector<T> w = uniform<T>(n, 3, 0.5, 2);
  const std::vector<T> pw = uniform<T>(n, 4, 0.2, 3);
  const T* wp = weighted ? w.data() : nullptr;
  const T* pwp = weighted && kind == kl::BinaryKind::BceWithLogits ? pw.data() : nullptr;
  for (LossReduction r : kReductions) {
    CAPTURE(name_of(r));
    const kl::BinaryLossParams<T> p{kind, r, static_cast<T>(alpha), static_cast<T>(gamma)};
    const std::int64_t out_n = r == LossReduction::None ? n : 1;
    std::vector<T> out(static_cast<std::size_t>(out_n), T(-7));
    std::vector<T> workspace(static_cast<std::size_t>(kl::binary_loss_workspace_size(n)), T(-7));
    kl::launch_binary_loss_forward(p, x.data(), t.data(), wp, pwp, n, out.data(), workspace.data(), no_stream());

    cpu::BinaryLossConfig c;
    c.kind = kind == kl::BinaryKind::SigmoidFocal ? cpu::BinaryLossKind::SigmoidFocal : cpu::BinaryLossKind::BceWithLogits;
    c.reduction = r;
    c.alpha = alpha;
    c.gamma = gamma;
    const Tensor xt = tensor_of(x, {n}), tt = tensor_of(t, {n});
    const Tensor wt = wp ? tensor_of(w, {n}) : Tensor(), pwt = pwp ? tensor_of(pw, {n}) : Tensor();
    const Tensor expected = Tensor::empty(r == LossReduction::None ? Shape{n} : Shape{}, dtype_v<T>);
    cpu::binary_loss_forward(c, xt, tt, wt, pwt, expected);
    check_values(out, expected, "loss");

    const std::vector<T> g = uniform<T>(static_cast<std::size_t>(out_n), 5, -2, 2);
    std::vector<T> dx(static_cast<std::size_t>(n), T(-7)), dt(static_cast<std::size_t>(n), T(-7));
    kl::launch_binary_loss_backward(p, x.data(), t.data(), wp, pwp, n, g.data(), dx.data(), dt.data(), no_stream());
    const Tensor edx = Tensor::empty({n}, dtype_v<T>), edt = Tensor::empty({n}, dtype_v<T>);
    cpu::binary_loss_backward(c, xt, tt, wt, pwt, tensor_of(g, r == LossReduction::None ? Shape{n} : Shape{}), edx,
                              edt);
    check_values(dx, edx, "d input");
    check_values(dt, edt, "d target");
  }
}

// ---- class rows

template <class T>
void run_class(kl::ClassLossKind kind, std::int64_t outer, std::int64_t classes, std::int64_t inner, bool weighted,
               double smoothing, double gamma) {
  const std::int64_t rows = outer * inner;
  const std::vector<T> x = uniform<T>(static_cast<std::size_t>(outer * classes * inner), 6, -8, 8);
  std::vector<std::int64_t> y(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    y[static_cast<std::size_t>(r)] = (r * 7 + 3) % classes;
    if (kind == kl::ClassLossKind::CrossEntropy && r % 5 == 2) y[static_cast<std::size_t>(r)] = -100;
  }
  const std::vector<T> w = uniform<T>(static_cast<std::size_t>(classes), 7, 0.2, 2);
  const T* wp = weighted ? w.data() : nullptr;
  for (LossReduction r : kReductions) {
    CAPTURE(name_of(r));
    const kl::ClassLossParams<T> p{kind, r, outer, classes, inner, -100, static_cast<T>(smoothing), static_cast<T>(gamma)};
    const std::int64_t out_n = r == LossReduction::None ? rows : 1;
    std::vector<T> out(static_cast<std::size_t>(out_n), T(-7)), lse(static_cast<std::size_t>(rows), T(-7)),
        totals(4, T(-7)), workspace(static_cast<std::size_t>(kl::class_loss_workspace_size(p)), T(-7));
    kl::launch_class_loss_forward(p, x.data(), y.data(), wp, out.data(), lse.data(), totals.data(), workspace.data(),
                                  no_stream());

    cpu::ClassLossConfig c;
    c.kind = kind;
    c.reduction = r;
    c.outer = outer;
    c.classes = classes;
    c.inner = inner;
    c.label_smoothing = smoothing;
    c.gamma = gamma;
    const Tensor xt = tensor_of(x, {outer, classes, inner});
    const Tensor yt = Tensor::from_indices(y, {rows});
    const Tensor wt = weighted ? tensor_of(w, {classes}) : Tensor();
    const Tensor eout = Tensor::empty(r == LossReduction::None ? Shape{rows} : Shape{}, dtype_v<T>);
    const Tensor ref_lse = Tensor::empty({rows}, dtype_v<T>), etotals = Tensor::empty({4}, dtype_v<T>);
    cpu::class_loss_forward(c, xt, yt, wt, eout, ref_lse, etotals);
    check_values(out, eout, "loss");
    check_values(lse, ref_lse, "lse");
    check_values(totals, etotals, "totals");

    const std::vector<T> g = uniform<T>(static_cast<std::size_t>(out_n), 8, -2, 2);
    std::vector<T> dx(x.size(), T(-7));
    kl::launch_class_loss_backward(p, x.data(), y.data(), wp, lse.data(), totals.data(), g.data(), dx.data(),
                                   no_stream());
    const Tensor edx = Tensor::empty({outer, classes, inner}, dtype_v<T>);
    cpu::class_loss_backward(c, xt, yt, wt, ref_lse, etotals, tensor_of(g, r == LossReduction::None ? Shape{rows} : Shape{}),
                             edx);
    check_values(dx, edx, "d input");
  }
}

// ---- contrastive rows

// S = Z Z^T of L2-normalized rows, exactly symmetric (the same products summed in the same order).
template <class T>
std::vector<T> similarity(std::int64_t m, std::int64_t d, std::uint32_t seed, std::vector<T>* z_out = nullptr) {
  std::vector<T> z = uniform<T>(static_cast<std::size_t>(m * d), seed, -1, 1);
  for (std::int64_t i = 0; i < m; ++i) {
    double norm = 0;
    for (std::int64_t k = 0; k < d; ++k) norm += static_cast<double>(z[i * d + k]) * z[i * d + k];
    for (std::int64_t k = 0; k < d; ++k) z[i * d + k] = static_cast<T>(z[i * d + k] / std::sqrt(norm));
  }
  std::vector<T> s(static_cast<std::size_t>(m * m));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < m; ++j) {
      T acc = 0;
      for (std::int64_t k = 0; k < d; ++k) acc += z[i * d + k] * z[j * d + k];
      s[i * m + j] = acc;
    }
  if (z_out) *z_out = z;
  return s;
}

template <class T>
void run_contrastive(kl::ContrastiveMean mean, const std::vector<std::int64_t>& groups, double tau, double scale) {
  const std::int64_t m = static_cast<std::int64_t>(groups.size());
  CAPTURE(m);
  CAPTURE(tau);
  const std::vector<T> s = similarity<T>(m, 6, 9);
  const kl::ContrastiveParams<T> p{mean, m, static_cast<T>(1.0 / tau), static_cast<T>(scale)};
  std::vector<T> out(1, T(-7)), lse(static_cast<std::size_t>(m), T(-7)), pos(static_cast<std::size_t>(m), T(-7)),
      totals(2, T(-7)), workspace(static_cast<std::size_t>(kl::contrastive_workspace_size(m)), T(-7));
  kl::launch_contrastive_forward(p, s.data(), groups.data(), out.data(), lse.data(), pos.data(), totals.data(),
                                 workspace.data(), no_stream());

  cpu::ContrastiveConfig c;
  c.mean = mean;
  c.inv_tau = 1.0 / tau;
  c.scale = scale;
  const Tensor st = tensor_of(s, {m, m}), gt = Tensor::from_indices(groups, {m});
  const Tensor eout = Tensor::empty({}, dtype_v<T>), ref_lse = Tensor::empty({m}, dtype_v<T>),
               epos = Tensor::empty({m}, dtype_v<T>), etotals = Tensor::empty({2}, dtype_v<T>);
  const Tensor eprob = Tensor::empty({m, m}, dtype_v<T>);
  cpu::contrastive_forward(c, st, gt, eout, ref_lse, epos, etotals, eprob);
  check_values(out, eout, "loss");
  check_values(lse, ref_lse, "lse");
  check_values(pos, epos, "positives");
  check_values(totals, etotals, "totals");
  for (T v : out) CHECK(std::isfinite(static_cast<double>(v)));

  const std::vector<T> g{static_cast<T>(0.75)};
  for (bool symmetric : {false, true}) {
    CAPTURE(symmetric);
    std::vector<T> grad(s.size(), T(-7));
    kl::launch_contrastive_backward(p, s.data(), groups.data(), lse.data(), pos.data(), totals.data(), g.data(),
                                    symmetric, grad.data(), no_stream());
    const Tensor egrad = Tensor::empty({m, m}, dtype_v<T>);
    cpu::contrastive_backward(c, eprob, gt, epos, etotals, tensor_of(g, {}), symmetric, egrad);
    check_values(grad, egrad, "dS");
    if (symmetric) {
      // In place: G overwrites S.
      std::vector<T> in_place = s;
      kl::launch_contrastive_backward(p, in_place.data(), groups.data(), lse.data(), pos.data(), totals.data(),
                                      g.data(), true, in_place.data(), no_stream());
      check_values(in_place, egrad, "dS in place");
    }
  }
}

// ---- cosine embedding

template <class T>
void run_cosine(std::int64_t n, std::int64_t d, double margin) {
  const std::vector<T> a = uniform<T>(static_cast<std::size_t>(n * d), 10, -1, 1);
  const std::vector<T> b = uniform<T>(static_cast<std::size_t>(n * d), 11, -1, 1);
  std::vector<T> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = i % 3 == 0 ? T(1) : T(-1);
  for (LossReduction r : kReductions) {
    CAPTURE(name_of(r));
    const std::int64_t out_n = r == LossReduction::None ? n : 1;
    std::vector<T> out(static_cast<std::size_t>(out_n), T(-7)), workspace(static_cast<std::size_t>(n), T(-7));
    kl::launch_cosine_embedding_forward(r, static_cast<T>(margin), a.data(), b.data(), t.data(), n, d, out.data(),
                                        workspace.data(), no_stream());
    const Tensor at = tensor_of(a, {n, d}), bt = tensor_of(b, {n, d}), tt = tensor_of(t, {n});
    const Tensor eout = Tensor::empty(r == LossReduction::None ? Shape{n} : Shape{}, dtype_v<T>);
    cpu::cosine_embedding_forward(r, margin, at, bt, tt, eout.reshape({out_n}));
    check_values(out, eout, "loss");

    const std::vector<T> g = uniform<T>(static_cast<std::size_t>(out_n), 12, -2, 2);
    std::vector<T> da(a.size(), T(-7)), db(b.size(), T(-7));
    kl::launch_cosine_embedding_backward(r, static_cast<T>(margin), a.data(), b.data(), t.data(), n, d, g.data(),
                                         da.data(), db.data(), no_stream());
    const Tensor eda = Tensor::empty({n, d}, dtype_v<T>), edb = Tensor::empty({n, d}, dtype_v<T>);
    cpu::cosine_embedding_backward(r, margin, at, bt, tt, tensor_of(g, {out_n}), eda, edb);
    check_values(da, eda, "d input1");
    check_values(db, edb, "d input2");
  }
}

std::vector<std::int64_t> pair_groups(std::int64_t n) {
  std::vector<std::int64_t> g(static_cast<std::size_t>(2 * n));
  for (std::int64_t i = 0; i < 2 * n; ++i) g[static_cast<std::size_t>(i)] = i % n;
  return g;
}

std::vector<std::int64_t> label_groups(std::int64_t m, std::int64_t classes) {
  std::vector<std::int64_t> g(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) g[static_cast<std::size_t>(i)] = (i * 5 + 1) % classes;
  return g;
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated binary_cross_entropy_with_logits", T, float, double) {
  run_binary<T>(kl::BinaryKind::BceWithLogits, 0, 0, false);
  run_binary<T>(kl::BinaryKind::BceWithLogits, 0, 0, true);
}

TEST_CASE_TEMPLATE("emulated sigmoid_focal_loss", T, float, double) {
  run_binary<T>(kl::BinaryKind::SigmoidFocal, 0.25, 2.0, false);
  run_binary<T>(kl::BinaryKind::SigmoidFocal, -1.0, 1.5, false);
  run_binary<T>(kl::BinaryKind::SigmoidFocal, 0.7, 0.0, false);
}

TEST_CASE_TEMPLATE("emulated cross_entropy", T, float, double) {
  run_class<T>(kl::ClassLossKind::CrossEntropy, 13, 5, 1, false, 0.0, 0);
  run_class<T>(kl::ClassLossKind::CrossEntropy, 13, 5, 1, true, 0.1, 0);
  run_class<T>(kl::ClassLossKind::CrossEntropy, 3, 4, 6, true, 0.2, 0);    // [N, C, d] layout
  run_class<T>(kl::ClassLossKind::CrossEntropy, 4, 300, 1, false, 0.05, 0);  // rows wider than a block
}

TEST_CASE_TEMPLATE("emulated softmax_focal_loss", T, float, double) {
  run_class<T>(kl::ClassLossKind::SoftmaxFocal, 11, 4, 1, true, 0, 2.0);
  run_class<T>(kl::ClassLossKind::SoftmaxFocal, 2, 3, 5, false, 0, 0.5);
  run_class<T>(kl::ClassLossKind::SoftmaxFocal, 3, 270, 1, true, 0, 2.0);
}

TEST_CASE_TEMPLATE("emulated nt_xent_loss", T, float, double) {
  for (double tau : {0.05, 0.1, 1.0}) run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, pair_groups(9), tau, 1);
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, pair_groups(1), 0.1, 1);
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, pair_groups(150), 0.1, 1);  // rows wider than a block
}

TEST_CASE_TEMPLATE("emulated multi_pos_con_loss", T, float, double) {
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, label_groups(20, 3), 0.1, 1);
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, std::vector<std::int64_t>(12, 4), 0.05, 1);  // one class
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, label_groups(7, 7), 0.5, 1);  // no positives at all
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, {0, 1, 1, 2, 3, 3, 3, 9}, 1.0, 1);
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchors, {5}, 0.1, 1);  // a single anchor
}

TEST_CASE_TEMPLATE("emulated supcon_loss", T, float, double) {
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchorsWithPositives, label_groups(16, 5), 0.07, 1);
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchorsWithPositives, {0, 1, 1, 2, 3, 3, 3, 9}, 0.5, 0.5 / 0.07);
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchorsWithPositives, label_groups(6, 6), 0.1, 1);
  run_contrastive<T>(kl::ContrastiveMean::MeanOverAnchorsWithPositives, label_groups(260, 4), 0.1, 1);
}

TEST_CASE_TEMPLATE("emulated cosine_embedding_loss", T, float, double) {
  run_cosine<T>(9, 5, 0.0);
  run_cosine<T>(4, 300, -0.2);
}

// The kernel path end to end against autograd: SupCon (no normalization inside) on features F,
// S = F F^T, the fused forward and symmetric backward, dF = G F.
TEST_CASE("emulated supcon_loss: kernel gradient G F equals the autograd gradient") {
  const std::int64_t m = 10, d = 4;
  std::vector<double> z;
  const std::vector<double> s = similarity<double>(m, d, 13, &z);
  const std::vector<std::int64_t> labels = {0, 1, 0, 2, 1, 1, 3, 0, 2, 4};
  const double tau = 0.2, base = 0.1;
  const kl::ContrastiveParams<double> p{kl::ContrastiveMean::MeanOverAnchorsWithPositives, m, 1 / tau, tau / base};
  std::vector<double> out(1), lse(m), pos(m), totals(2), workspace(m), grad(s.size());
  kl::launch_contrastive_forward(p, s.data(), labels.data(), out.data(), lse.data(), pos.data(), totals.data(),
                                 workspace.data(), no_stream());
  const std::vector<double> g{1.0};
  kl::launch_contrastive_backward(p, s.data(), labels.data(), lse.data(), pos.data(), totals.data(), g.data(), true,
                                  grad.data(), no_stream());

  Tensor f = Tensor::from_vector(z, {m, d}, DType::Float64);
  f.set_requires_grad(true);
  const Tensor loss = supcon_loss(f, Tensor::from_indices(labels, {m}), tau, base);
  loss.backward();
  CHECK(out[0] == doctest::Approx(loss.item()).epsilon(1e-12));
  const std::vector<double> expected = f.grad().to_vector();
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t k = 0; k < d; ++k) {
      double acc = 0;
      for (std::int64_t j = 0; j < m; ++j) acc += grad[i * m + j] * z[j * d + k];
      CHECK(acc == doctest::Approx(expected[i * d + k]).epsilon(1e-10));
    }
}

TEST_CASE("emulated losses: launch geometry and bad sizes") {
  CHECK(kl::row_block_threads(1) == 32);
  CHECK(kl::row_block_threads(100) == 128);
  CHECK(kl::row_block_threads(5000) == 256);
  CHECK(kl::element_blocks(0) == 1);
  CHECK(kl::element_blocks(257) == 2);
  CHECK(kl::element_blocks(1 << 30) == 1024);
  const kl::BinaryLossParams<float> p{kl::BinaryKind::BceWithLogits, LossReduction::Mean, 0, 0};
  float out = 0, ws = 0;
  CHECK_THROWS_AS(kl::launch_binary_loss_forward<float>(p, nullptr, nullptr, nullptr, nullptr, -1, &out, &ws, no_stream()),
                  std::invalid_argument);
  // An empty mean is NaN (as torch), an empty sum 0.
  kl::launch_binary_loss_forward<float>(p, nullptr, nullptr, nullptr, nullptr, 0, &out, &ws, no_stream());
  CHECK(std::isnan(out));
  const kl::BinaryLossParams<float> ps{kl::BinaryKind::BceWithLogits, LossReduction::Sum, 0, 0};
  kl::launch_binary_loss_forward<float>(ps, nullptr, nullptr, nullptr, nullptr, 0, &out, &ws, no_stream());
  CHECK(out == 0.0f);
}

}  // TEST_SUITE
