// The losses' CUDA launch code (engine/ops/loss/loss_kernels.h: workspaces, parameter mapping,
// the contrastive GEMM + fused rows), executed by the CPU emulator on CPU tensors, against the CPU
// references: the loops of loss_cpu.h, and for the kernels without loops (the three-branch
// class-wise embedding losses, soft Dice) the public ops' CPU composition with autograd. Sizes
// are chosen to give several block sizes (d = 5, 100, 300: 32, 128 and 256 threads, wider rows
// looping) and counts that are not multiples of a block.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "engine/ops/linalg/linalg_cpu.h"
#include "engine/ops/loss/loss_cpu.h"
#include "engine/ops/loss/loss_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::uniform_values;

namespace {

namespace kl = pneuma::kern::losses;
using kl::LossReduction;

constexpr LossReduction kReductions[] = {LossReduction::None, LossReduction::Mean, LossReduction::Sum};

kern::Stream emulator() { return kern::Stream{}; }

// |expected - actual| <= tol (1 + |expected|): float sums add in another order than the reference.
void require_near(const Tensor& expected, const Tensor& actual, const char* what) {
  CAPTURE(what);
  REQUIRE(expected.shape() == actual.shape());
  const double tol = expected.dtype() == DType::Float32 ? 3e-5 : 1e-11;
  const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
  for (size_t i = 0; i < e.size(); ++i) {
    CAPTURE(i);
    CAPTURE(e[i]);
    CAPTURE(a[i]);
    REQUIRE(std::fabs(e[i] - a[i]) <= tol * (1 + std::fabs(e[i])));
  }
}

Tensor labels_of(const std::vector<int64_t>& v) { return Tensor::from_indices(v, {static_cast<int64_t>(v.size())}); }

std::vector<int64_t> cycling_labels(int64_t n, int64_t classes, int64_t stride = 1) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = (i * stride) % classes;
  return v;
}

Tensor leaf(const Tensor& t) {
  Tensor c = t.clone();
  c.set_requires_grad(true);
  return c;
}

// ---- contrastive: the whole embeddings path with the CPU GEMM in cuBLAS's place

void cpu_gemm(const Tensor& a, const Tensor& b, const Tensor& out) { cpu::gemm(a, b, out); }

void run_contrastive_embeddings(DType dtype, int64_t m, int64_t d, const std::vector<int64_t>& groups,
                                const cpu::ContrastiveConfig& config) {
  CAPTURE(m);
  CAPTURE(d);
  const Tensor z = uniform_values({m, d}, 21, dtype, -1, 1);
  const Tensor g = labels_of(groups);
  auto scalars = [&] { return std::vector<Tensor>{Tensor::empty({}, dtype), Tensor::empty({m}, dtype),
                                                  Tensor::empty({m}, dtype), Tensor::empty({2}, dtype)}; };
  // Reference: out, lse, positives, totals; the CPU's N x N buffer holds the softmax.
  std::vector<Tensor> ref = scalars(), got = scalars();
  const Tensor ref_matrix = Tensor::empty({m, m}, dtype), s = Tensor::empty({m, m}, dtype);
  cpu::contrastive_embeddings_forward(config, z, g, ref[0], ref_matrix, ref[1], ref[2], ref[3]);
  kern::run_contrastive_embeddings_forward(config, z, g, got[0], s, got[1], got[2], got[3], cpu_gemm, emulator());
  require_near(ref[0], got[0], "loss");
  require_near(ref[2], got[2], "positives");
  require_near(ref[3], got[3], "totals");
  // The forward leaves S = Z Z^T in the buffer.
  const Tensor zzt = Tensor::empty({m, m}, dtype);
  cpu::gemm(z, z.transpose(0, 1), zzt);
  require_near(zzt, s, "S");

  const Tensor upstream = Tensor::full({}, 0.75, dtype);
  const Tensor ref_dz = Tensor::empty({m, d}, dtype), dz = Tensor::empty({m, d}, dtype);
  cpu::contrastive_embeddings_backward(config, z, ref_matrix, g, ref[2], ref[3], upstream, ref_dz);
  kern::run_contrastive_embeddings_backward(config, z, s, g, got[1], got[2], got[3], upstream, dz, cpu_gemm,
                                            emulator());
  require_near(ref_dz, dz, "dz");
}

// ---- three-branch embedding losses: the launch chain of the CUDA dispatch

struct EmbeddingCase {
  int64_t classes, d;
  std::vector<int64_t> common, adult, pediatric;
};

// means [paths, C, d] and counts [paths, C] of zs, as the CUDA dispatch forms them.
std::vector<Tensor> launch_class_means(const std::vector<Tensor>& zs, const std::vector<Tensor>& labels,
                                       int64_t classes) {
  const int64_t paths = static_cast<int64_t>(zs.size()), d = zs[0].size(1);
  const Tensor means = Tensor::full({paths, classes, d}, -7, zs[0].dtype());
  const Tensor counts = Tensor::full({paths, classes}, -7, zs[0].dtype());
  for (int64_t p = 0; p < paths; ++p)
    kern::run_class_means(zs[static_cast<size_t>(p)], labels[static_cast<size_t>(p)], means.select(0, p),
                          counts.select(0, p), emulator());
  return {means, counts};
}

// Loss and d(loss)/dz of every path through the kernels, for upstream gradient `g`.
std::vector<Tensor> kernel_embedding_loss(const kl::EmbeddingLossConfig& config, const std::vector<Tensor>& zs,
                                          const std::vector<Tensor>& labels, int64_t classes, double g) {
  const std::vector<Tensor> mc = launch_class_means(zs, labels, classes);
  const Tensor out = Tensor::full({}, -7, zs[0].dtype());
  kern::run_embedding_loss_forward(config, mc[0], mc[1], out, emulator());
  const Tensor grad_means = Tensor::full(mc[0].shape(), -7, zs[0].dtype());
  kern::run_embedding_loss_backward(config, mc[0], mc[1], Tensor::full({}, g, zs[0].dtype()), grad_means, emulator());
  std::vector<Tensor> r{out};
  for (size_t p = 0; p < zs.size(); ++p) {
    const Tensor dz = Tensor::full(zs[p].shape(), -7, zs[p].dtype());
    const int64_t index = static_cast<int64_t>(p);
    kern::run_class_means_backward(zs[p], labels[p], mc[1].select(0, index), grad_means.select(0, index), dz,
                                   emulator());
    r.push_back(dz);
  }
  return r;
}

void check_similarity(DType dtype, const EmbeddingCase& c) {
  CAPTURE(c.classes);
  CAPTURE(c.d);
  const std::vector<std::vector<int64_t>> label_sets{c.common, c.adult, c.pediatric};
  std::vector<Tensor> zs, labels, leaves;
  for (size_t p = 0; p < 3; ++p) {
    zs.push_back(uniform_values({static_cast<int64_t>(label_sets[p].size()), c.d}, 31 + p, dtype, -1, 1));
    labels.push_back(labels_of(label_sets[p]));
    leaves.push_back(leaf(zs.back()));
  }
  const double g = 1.25;
  const Tensor ref = embedding_similarity_loss(leaves[0], labels[0], leaves[1], labels[1], leaves[2], labels[2],
                                               c.classes);
  (ref * g).backward();
  kl::EmbeddingLossConfig config;
  config.kind = kl::EmbeddingLossKind::Similarity;
  const std::vector<Tensor> got = kernel_embedding_loss(config, zs, labels, c.classes, g);
  require_near(ref.detach(), got[0], "loss");
  for (size_t p = 0; p < 3; ++p) {
    CAPTURE(p);
    // A path with no term is not on the reference's graph: its gradient is zero.
    const Tensor expected = leaves[p].grad().defined() ? leaves[p].grad() : Tensor::zeros(zs[p].shape(), dtype);
    require_near(expected, got[p + 1], "dz");
  }
}

void check_dissimilarity(DType dtype, int64_t classes, int64_t d, const std::vector<int64_t>& common, bool hinge,
                         Reduction reduction) {
  CAPTURE(classes);
  CAPTURE(d);
  CAPTURE(hinge);
  CAPTURE(reduction_name(reduction));
  // Shifted inputs make some class means point the same way (cos > 0) and some not.
  const Tensor z = uniform_values({static_cast<int64_t>(common.size()), d}, 41, dtype, -1, 1.3);
  const Tensor labels = labels_of(common);
  const Tensor z_leaf = leaf(z);
  const double g = 0.8;
  const Tensor ref = embedding_dissimilarity_loss(z_leaf, labels, classes, hinge, reduction);
  (ref * g).backward();
  kl::EmbeddingLossConfig config;
  config.kind = kl::EmbeddingLossKind::Dissimilarity;
  config.hinge = hinge;
  config.reduction = reduction == Reduction::Sum ? LossReduction::Sum : LossReduction::Mean;
  const std::vector<Tensor> got = kernel_embedding_loss(config, {z}, {labels}, classes, g);
  require_near(ref.detach(), got[0], "loss");
  require_near(z_leaf.grad(), got[1], "dz");
}

// ---- soft Dice

void check_dice(DType dtype, const Shape& shape, double smooth, bool soft_targets) {
  CAPTURE(shape_str(shape));
  CAPTURE(smooth);
  const Tensor x = uniform_values(shape, 51, dtype, -6, 6);
  // Masks of 0 and 1, or soft targets in [0, 1).
  const Tensor t = soft_targets ? uniform_values(shape, 52, dtype, 0, 1) : uniform_values(shape, 52, dtype, 0, 2, 1.0);
  const int64_t samples = shape[0];
  for (const Reduction reduction : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    CAPTURE(reduction_name(reduction));
    const Tensor x_leaf = leaf(x), t_leaf = leaf(t);
    const Tensor ref = dice_loss(x_leaf, t_leaf, smooth, reduction);
    const Tensor w = reduction == Reduction::None ? uniform_values({samples}, 53, dtype, -2, 2)
                                                  : Tensor::full({}, 1.5, dtype);
    sum(ref * w).backward();

    const LossReduction r = reduction == Reduction::None ? LossReduction::None
                                                         : (reduction == Reduction::Mean ? LossReduction::Mean
                                                                                         : LossReduction::Sum);
    const Tensor out = Tensor::full(ref.shape(), -7, dtype), sums = Tensor::full({samples, kl::kDiceSums}, -7, dtype);
    kern::run_dice_forward(r, smooth, x, t, out, sums, emulator());
    require_near(ref.detach(), out, "loss");
    const Tensor dx = Tensor::full(shape, -7, dtype), dt = Tensor::full(shape, -7, dtype);
    kern::run_dice_backward(r, smooth, x, t, sums, w, dx, dt, emulator());
    require_near(x_leaf.grad(), dx, "d input");
    require_near(t_leaf.grad(), dt, "d target");
  }
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated contrastive losses through the launch code with the GEMM", T, float, double) {
  const DType dtype = dtype_v<T>;
  cpu::ContrastiveConfig nt_xent;
  nt_xent.inv_tau = 1 / 0.1;
  std::vector<int64_t> pairs(18);
  for (int64_t i = 0; i < 18; ++i) pairs[static_cast<size_t>(i)] = i % 9;
  run_contrastive_embeddings(dtype, 18, 5, pairs, nt_xent);
  cpu::ContrastiveConfig multi_pos;
  multi_pos.inv_tau = 1 / 0.5;
  run_contrastive_embeddings(dtype, 37, 100, cycling_labels(37, 4, 3), multi_pos);  // rows wider than 32 threads
  run_contrastive_embeddings(dtype, 7, 3, cycling_labels(7, 7), multi_pos);          // no anchor has a positive
  cpu::ContrastiveConfig supcon;
  supcon.mean = kl::ContrastiveMean::MeanOverAnchorsWithPositives;
  supcon.inv_tau = 1 / 0.07;
  supcon.scale = 0.07 / 0.1;
  run_contrastive_embeddings(dtype, 270, 6, cycling_labels(270, 5, 7), supcon);  // rows wider than a block
}

TEST_CASE_TEMPLATE("emulated binary and class losses through the launch code", T, float, double) {
  const DType dtype = dtype_v<T>;
  const int64_t n = 300;
  const Tensor x = uniform_values({n}, 61, dtype, -60, 60), t = uniform_values({n}, 62, dtype, 0, 1);
  const Tensor w = uniform_values({n}, 63, dtype, 0.5, 2), pw = uniform_values({n}, 64, dtype, 0.2, 3);
  for (const LossReduction r : kReductions) {
    for (const auto kind : {cpu::BinaryLossKind::BceWithLogits, cpu::BinaryLossKind::SigmoidFocal}) {
      cpu::BinaryLossConfig c;
      c.kind = kind;
      c.reduction = r;
      const Tensor pos = kind == cpu::BinaryLossKind::BceWithLogits ? pw : Tensor();
      const Shape out_shape = r == LossReduction::None ? Shape{n} : Shape{};
      const Tensor ref = Tensor::empty(out_shape, dtype), got = Tensor::full(out_shape, -7, dtype);
      cpu::binary_loss_forward(c, x, t, w, pos, ref);
      kern::run_binary_loss_forward(c, x, t, w, pos, got, emulator());
      require_near(ref, got, "binary loss");
      const Tensor g = uniform_values(out_shape, 65, dtype, -2, 2);
      const Tensor rdx = Tensor::empty({n}, dtype), rdt = Tensor::empty({n}, dtype);
      const Tensor dx = Tensor::full({n}, -7, dtype), dt = Tensor::full({n}, -7, dtype);
      cpu::binary_loss_backward(c, x, t, w, pos, g, rdx, rdt);
      kern::run_binary_loss_backward(c, x, t, w, pos, g, dx, dt, emulator());
      require_near(rdx, dx, "binary d input");
      require_near(rdt, dt, "binary d target");
    }
    // Cross-entropy over [N, C, d] with weights, label smoothing and an ignored target.
    cpu::ClassLossConfig c;
    c.reduction = r;
    c.outer = 3;
    c.classes = 5;
    c.inner = 7;
    c.label_smoothing = 0.1;
    const Tensor logits = uniform_values({3, 5, 7}, 66, dtype, -8, 8);
    std::vector<int64_t> y = cycling_labels(21, 5, 2);
    y[4] = c.ignore_index;
    const Tensor target = labels_of(y), cw = uniform_values({5}, 67, dtype, 0.2, 2);
    const Shape out_shape = r == LossReduction::None ? Shape{21} : Shape{};
    const Tensor ref = Tensor::empty(out_shape, dtype), got = Tensor::full(out_shape, -7, dtype);
    const Tensor ref_lse = Tensor::empty({21}, dtype), lse = Tensor::empty({21}, dtype);
    const Tensor ref_totals = Tensor::empty({4}, dtype), totals = Tensor::empty({4}, dtype);
    cpu::class_loss_forward(c, logits, target, cw, ref, ref_lse, ref_totals);
    kern::run_class_loss_forward(c, logits, target, cw, got, lse, totals, emulator());
    require_near(ref, got, "cross_entropy");
    const Tensor g = uniform_values(out_shape, 68, dtype, -2, 2);
    const Tensor rdx = Tensor::empty({3, 5, 7}, dtype), dx = Tensor::full({3, 5, 7}, -7, dtype);
    cpu::class_loss_backward(c, logits, target, cw, ref_lse, ref_totals, g, rdx);
    kern::run_class_loss_backward(c, logits, target, cw, lse, totals, g, dx, emulator());
    require_near(rdx, dx, "cross_entropy d input");
  }
}

TEST_CASE_TEMPLATE("emulated cosine_embedding_loss through the launch code", T, float, double) {
  const DType dtype = dtype_v<T>;
  const int64_t n = 9, d = 300;
  const Tensor a = uniform_values({n, d}, 71, dtype, -1, 1), b = uniform_values({n, d}, 72, dtype, -1, 1);
  std::vector<double> targets(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) targets[static_cast<size_t>(i)] = i % 3 == 0 ? 1.0 : -1.0;
  const Tensor t = Tensor::from_vector(targets, {n}, dtype);
  for (const LossReduction r : kReductions) {
    const Shape out_shape = r == LossReduction::None ? Shape{n} : Shape{1};
    const Tensor ref = Tensor::empty(out_shape, dtype), got = Tensor::full(out_shape, -7, dtype);
    cpu::cosine_embedding_forward(r, -0.1, a, b, t, ref);
    kern::run_cosine_embedding_forward(r, -0.1, a, b, t, got, emulator());
    require_near(ref, got, "cosine embedding");
    const Tensor g = uniform_values(out_shape, 73, dtype, -2, 2);
    const Tensor rda = Tensor::empty({n, d}, dtype), rdb = Tensor::empty({n, d}, dtype);
    const Tensor da = Tensor::full({n, d}, -7, dtype), db = Tensor::full({n, d}, -7, dtype);
    cpu::cosine_embedding_backward(r, -0.1, a, b, t, g, rda, rdb);
    kern::run_cosine_embedding_backward(r, -0.1, a, b, t, g, da, db, emulator());
    require_near(rda, da, "d input1");
    require_near(rdb, db, "d input2");
  }
}

TEST_CASE_TEMPLATE("emulated class_mean_embeddings", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const int64_t d : {5, 100, 300}) {
    CAPTURE(d);
    // Class 3 of 4 is absent: its mean is a zero row.
    const Tensor z = uniform_values({37, d}, 81, dtype, -1, 1);
    const Tensor labels = labels_of(cycling_labels(37, 3, 2));
    const Tensor z_leaf = leaf(z);
    const Tensor ref = class_mean_embeddings(z_leaf, labels, 4);
    const Tensor w = uniform_values({4, d}, 82, dtype, -1, 1);
    sum(ref * w).backward();
    const std::vector<Tensor> mc = launch_class_means({z}, {labels}, 4);
    require_near(ref.detach(), mc[0].select(0, 0), "means");
    require_near(Tensor::from_vector({13, 12, 12, 0}, {4}, dtype), mc[1].select(0, 0), "counts");
    const Tensor dz = Tensor::full({37, d}, -7, dtype);
    kern::run_class_means_backward(z, labels, mc[1].select(0, 0), w, dz, emulator());
    require_near(z_leaf.grad(), dz, "dz");
  }
}

TEST_CASE_TEMPLATE("emulated embedding_similarity_loss", T, float, double) {
  const DType dtype = dtype_v<T>;
  check_similarity(dtype, {2, 5, cycling_labels(12, 2), cycling_labels(9, 2), cycling_labels(7, 2)});
  check_similarity(dtype, {3, 100, cycling_labels(33, 3), {0, 0, 1, 1}, {2, 2, 2, 0, 1}});
  // Class 2 absent from the adult batch, class 0 from the pediatric one, class 3 from all.
  check_similarity(dtype, {4, 300, cycling_labels(10, 3), {0, 1, 1, 0}, {1, 2, 2}});
  // No class shared with the common path: the loss is 0 and so are the gradients.
  check_similarity(dtype, {3, 7, {0, 0}, {1, 2}, {1}});
}

TEST_CASE_TEMPLATE("emulated embedding_dissimilarity_loss", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const bool hinge : {true, false}) {
    for (const Reduction reduction : {Reduction::Mean, Reduction::Sum}) {
      check_dissimilarity(dtype, 2, 5, cycling_labels(12, 2), hinge, reduction);
      check_dissimilarity(dtype, 5, 100, cycling_labels(40, 4, 3), hinge, reduction);  // class 4 absent
      check_dissimilarity(dtype, 3, 300, {0, 1, 2, 2, 1, 0, 2}, hinge, reduction);
      check_dissimilarity(dtype, 3, 4, {1, 1, 1}, hinge, reduction);  // one class present: 0
    }
  }
}

TEST_CASE_TEMPLATE("emulated dice_loss", T, float, double) {
  const DType dtype = dtype_v<T>;
  check_dice(dtype, {3, 1, 7, 9}, 1.0, false);
  check_dice(dtype, {2, 700}, 0.5, true);
  check_dice(dtype, {1, 1, 5, 5}, 0.0, false);
  // Features split into several forward blocks per sample (16384 each), the last one partial.
  check_dice(dtype, {2, 1, 130, 257}, 1.0, false);
}

TEST_CASE("emulated dice_loss: chunks and bad sizes") {
  CHECK(kl::dice_chunks(0) == 1);
  CHECK(kl::dice_chunks(16384) == 1);
  CHECK(kl::dice_chunks(16385) == 2);
  const kl::DiceParams<float> p{LossReduction::Mean, -1, 4, 1, 1.0f};
  float out = 0;
  CHECK_THROWS_AS(kl::launch_dice_forward<float>(p, nullptr, nullptr, nullptr, &out, nullptr, emulator()),
                  std::invalid_argument);
}

}  // TEST_SUITE
