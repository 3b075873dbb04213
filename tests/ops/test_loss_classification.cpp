// Sigmoid focal, BCE with logits, cross-entropy, softmax focal and class weights: gradient
// checks, PyTorch goldens (tests/parity/cases_loss.py) and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

namespace {

constexpr Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

Tensor constant(const std::vector<double>& v, const Shape& shape, DType dtype = DType::Float64) {
  return Tensor::from_vector(v, shape, dtype);
}

// Goldens in float64 (tight) and float32 (as the engine trains).
template <class Fn>
void golden(const std::string& name, Fn f, double f32_rtol = 1e-4, double f32_atol = 1e-5) {
  check_parity(name, f, DType::Float64, 1e-9, 1e-11);
  check_parity(name, f, DType::Float32, f32_rtol, f32_atol);
}

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck sigmoid_focal_loss") {
    for (Reduction r : kReductions)
      for (double alpha : {0.25, -1.0})
        for (double gamma : {2.0, 0.0, 1.5, 0.5}) {
          CAPTURE(reduction_name(r));
          CAPTURE(alpha);
          CAPTURE(gamma);
          gradcheck([&](const auto& x) { return sigmoid_focal_loss(x[0], x[1], alpha, gamma, r); },
                    {random_input({3, 4}, 1, -3, 3), random_input({3, 4}, 2, 0.05, 0.95)});
        }
  }

  TEST_CASE("gradcheck binary_cross_entropy_with_logits") {
    const Tensor w = random_input({3, 1}, 3, 0.5, 1.5, false);
    const Tensor pw = random_input({4}, 4, 0.2, 3.0, false);
    for (Reduction r : kReductions) {
      CAPTURE(reduction_name(r));
      gradcheck([&](const auto& x) { return binary_cross_entropy_with_logits(x[0], x[1], w, r, pw); },
                {random_input({3, 4}, 5, -4, 4), random_input({3, 4}, 6, 0, 1)});
      gradcheck([&](const auto& x) { return binary_cross_entropy_with_logits(x[0], x[1], Tensor(), r); },
                {random_input({5}, 7, -4, 4), random_input({5}, 8, 0, 1)});
    }
  }

  TEST_CASE("gradcheck cross_entropy") {
    const Tensor y = Tensor::from_indices({0, 2, -100, 1, 2, 3}, {6});
    const Tensor w = random_input({4}, 9, 0.2, 2.0, false);
    for (Reduction r : kReductions)
      for (double eps : {0.0, 0.2})
        for (bool weighted : {false, true}) {
          CAPTURE(reduction_name(r));
          CAPTURE(eps);
          CAPTURE(weighted);
          gradcheck([&](const auto& x) { return cross_entropy(x[0], y, weighted ? w : Tensor(), -100, r, eps); },
                    {random_input({6, 4}, 10, -3, 3)});
        }
    // [N, C, d1, d2] with a class-index map, and an unbatched row.
    const Tensor y4 = Tensor::from_indices({0, 1, 2, 1, 0, 2, 2, 2, 1, 0, 1, 1}, {2, 2, 3});
    gradcheck([&](const auto& x) { return cross_entropy(x[0], y4, w.slice(0, 0, 3), 1, Reduction::Mean, 0.1); },
              {random_input({2, 3, 2, 3}, 11, -2, 2)});
    gradcheck([&](const auto& x) { return cross_entropy(x[0], Tensor::from_indices({2}, {})); },
              {random_input({4}, 12, -2, 2)});
    // Class probabilities: the gradient reaches the target too.
    for (Reduction r : kReductions)
      gradcheck([&](const auto& x) { return cross_entropy(x[0], x[1], w, -100, r, 0.1); },
                {random_input({3, 4}, 13, -2, 2), random_input({3, 4}, 14, 0, 1)});
  }

  TEST_CASE("gradcheck softmax_focal_loss") {
    const Tensor y = Tensor::from_indices({0, 2, 1, 1, 2}, {5});
    const Tensor alpha = random_input({3}, 15, 0.2, 1.0, false);
    for (Reduction r : kReductions)
      for (double gamma : {0.0, 0.5, 2.0}) {
        CAPTURE(reduction_name(r));
        CAPTURE(gamma);
        gradcheck([&](const auto& x) { return softmax_focal_loss(x[0], y, alpha, gamma, r); },
                  {random_input({5, 3}, 16, -3, 3)});
        gradcheck([&](const auto& x) { return softmax_focal_loss(x[0], y, Tensor(), gamma, r); },
                  {random_input({5, 3}, 17, -3, 3)});
      }
  }
}

TEST_CASE("sigmoid focal and BCE agree where the focal terms vanish") {
  // gamma 0 and no alpha term: the focal loss is BCE with logits.
  const Tensor x = random_input({4, 3}, 20, -5, 5, false), t = random_input({4, 3}, 21, 0, 1, false);
  check_close(sigmoid_focal_loss(x, t, -1.0, 0.0, Reduction::Mean), binary_cross_entropy_with_logits(x, t), 1e-14,
              1e-15);
  // Softmax focal with gamma 0, alpha 1 is the cross-entropy.
  const Tensor logits = random_input({4, 5}, 22, -5, 5, false);
  const Tensor y = Tensor::from_indices({4, 0, 3, 3}, {4});
  check_close(softmax_focal_loss(logits, y, Tensor(), 0.0), cross_entropy(logits, y), 1e-14, 1e-15);
}

TEST_CASE("classification losses stay finite for extreme logits in float32") {
  const Tensor x = constant({-100, -60, 60, 100, 88, -88}, {2, 3}, DType::Float32);
  const Tensor t = constant({1, 0, 1, 0, 1, 0}, {2, 3}, DType::Float32);
  for (const Tensor& loss : {sigmoid_focal_loss(x, t, 0.25, 2.0, Reduction::Sum),
                             binary_cross_entropy_with_logits(x, t, Tensor(), Reduction::Sum),
                             cross_entropy(x, Tensor::from_indices({0, 2}, {2})),
                             softmax_focal_loss(x, Tensor::from_indices({0, 2}, {2}))})
    CHECK(std::isfinite(loss.item()));
  // BCE of a confident wrong logit is the logit itself.
  CHECK(binary_cross_entropy_with_logits(constant({80}, {1}), constant({0}, {1})).item() == doctest::Approx(80));
}

TEST_CASE("class weights from labels are inverse frequencies") {
  const Tensor labels = Tensor::from_indices({0, 1, 1, 2, 2, 2, 2, 2}, {8});
  const std::vector<double> w = class_weights_from_labels(labels, 3, DType::Float64).to_vector();
  REQUIRE(w.size() == 3);
  CHECK(w[0] == doctest::Approx(8.0 / 3.0));
  CHECK(w[1] == doctest::Approx(8.0 / 6.0));
  CHECK(w[2] == doctest::Approx(8.0 / 15.0));
  CHECK(class_weights_from_counts({10, 30}).dtype() == DType::Float32);
  CHECK(class_weights_from_counts({10, 30}).to_vector()[1] == doctest::Approx(40.0 / 60.0));
  CHECK_THROWS_WITH_AS(class_weights_from_labels(labels, 4),
                       "class_weights_from_counts: class 3 has 0 samples; its inverse-frequency weight would be "
                       "infinite",
                       Error);
  CHECK_THROWS_WITH_AS(class_weights_from_labels(labels, 2),
                       "class_weights_from_labels: label 2 at index 3 is out of range for 2 classes", Error);
}

TEST_CASE("classification loss errors name the loss and the value") {
  const Tensor x = Tensor::zeros({4, 3});
  CHECK_THROWS_WITH_AS(cross_entropy(x, Tensor::from_indices({0, 1, 3, 2}, {4})),
                       "cross_entropy: target 3 at index 2 is out of range for 3 classes (ignore_index -100)", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, Tensor::from_indices({0, 1, 2}, {3})),
                       "cross_entropy: expected target of shape [4] for input float32[4, 3] on cpu, got int64[3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, Tensor::from_indices({0, 1, 2, 0}, {4}), Tensor(), -100, Reduction::Mean, 1.5),
                       "cross_entropy: label_smoothing must be between 0.0 and 1.0, got 1.5", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, Tensor::from_indices({0, 1, 2, 0}, {4}), Tensor::ones({4})),
                       "cross_entropy: weight must be 1-d with one entry per class (3), got float32[4] on cpu", Error);
  CHECK_THROWS_WITH_AS(softmax_focal_loss(x, Tensor::from_indices({0, -1, 2, 0}, {4})),
                       "softmax_focal_loss: target -1 at index 1 is out of range for 3 classes", Error);
  CHECK_THROWS_WITH_AS(softmax_focal_loss(x, Tensor::from_indices({0, 1, 2, 0}, {4}), Tensor(), -1.0),
                       "softmax_focal_loss: gamma must be non-negative and finite, got -1", Error);
  CHECK_THROWS_WITH_AS(sigmoid_focal_loss(x, Tensor::zeros({3, 4})),
                       "sigmoid_focal_loss: target float32[3, 4] on cpu must have the input's shape (float32[4, 3] on "
                       "cpu)",
                       Error);
  CHECK_THROWS_WITH_AS(sigmoid_focal_loss(x, Tensor::zeros({4, 3}), 1.5),
                       "sigmoid_focal_loss: alpha must be in [0, 1] (or negative to disable it), got 1.5", Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, Tensor::zeros({4, 3}), Tensor::ones({2})),
                       "binary_cross_entropy_with_logits: shapes [2] and [4, 3] cannot be broadcast together",
                       Error);
  Tensor w = Tensor::ones({3});
  w.set_requires_grad(true);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, Tensor::zeros({4, 3}), w),
                       "binary_cross_entropy_with_logits: the derivative for 'weight' is not implemented (float32[3] on "
                       "cpu requires grad)",
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, Tensor::zeros({4, 3}, DType::Float64)),
                       "binary_cross_entropy_with_logits: dtype mismatch: float32[4, 3] on cpu vs float64[4, 3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(reduction_from_string("avg", "cross_entropy"),
                       "cross_entropy: reduction must be 'none', 'mean' or 'sum', got 'avg'", Error);
}

TEST_CASE("cross_entropy with every target ignored is NaN - as in torch") {
  const Tensor x = random_input({3, 4}, 30, -1, 1, false);
  CHECK(std::isnan(cross_entropy(x, Tensor::from_indices({-100, -100, -100}, {3})).item()));
  CHECK(cross_entropy(x, Tensor::from_indices({-100, -100, -100}, {3}), Tensor(), -100, Reduction::Sum).item() == 0.0);
}

TEST_SUITE("parity") {
  TEST_CASE("golden sigmoid_focal_loss") {
    golden("loss_sigmoid_focal_none", [](const auto& x) { return sigmoid_focal_loss(x[0], x[1]); });
    golden("loss_sigmoid_focal_mean_soft_targets",
           [](const auto& x) { return sigmoid_focal_loss(x[0], x[1], 0.6, 1.5, Reduction::Mean); });
    golden("loss_sigmoid_focal_sum_no_alpha",
           [](const auto& x) { return sigmoid_focal_loss(x[0], x[1], -1.0, 3.0, Reduction::Sum); });
    golden("loss_sigmoid_focal_extreme",
           [](const auto& x) { return sigmoid_focal_loss(x[0], x[1], 0.25, 2.0, Reduction::Mean); });
  }

  TEST_CASE("golden binary_cross_entropy_with_logits") {
    golden("loss_bce_mean", [](const auto& x) { return binary_cross_entropy_with_logits(x[0], x[1]); });
    golden("loss_bce_weight_pos_weight_sum",
           [](const auto& x) { return binary_cross_entropy_with_logits(x[0], x[1], x[2], Reduction::Sum, x[3]); });
    golden("loss_bce_none_extreme", [](const auto& x) {
      return binary_cross_entropy_with_logits(x[0], x[1], Tensor(), Reduction::None, x[2]);
    });
  }

  TEST_CASE("golden cross_entropy") {
    golden("loss_ce_mean", [](const auto& x) { return cross_entropy(x[0], x[1]); });
    golden("loss_ce_weight_ignore_smoothing",
           [](const auto& x) { return cross_entropy(x[0], x[1], x[2], -100, Reduction::Mean, 0.1); });
    golden("loss_ce_smoothing_ignore_mean",
           [](const auto& x) { return cross_entropy(x[0], x[1], Tensor(), 5, Reduction::Mean, 0.25); });
    golden("loss_ce_none_smoothing_ignore",
           [](const auto& x) { return cross_entropy(x[0], x[1], x[2], -1, Reduction::None, 0.3); });
    golden("loss_ce_sum_weight", [](const auto& x) { return cross_entropy(x[0], x[1], x[2], -100, Reduction::Sum); });
    golden("loss_ce_4d_weighted",
           [](const auto& x) { return cross_entropy(x[0], x[1], x[2], -100, Reduction::Mean, 0.05); });
    golden("loss_ce_unbatched", [](const auto& x) { return cross_entropy(x[0], x[1]); });
    golden("loss_ce_prob_targets",
           [](const auto& x) { return cross_entropy(x[0], x[1], x[2], -100, Reduction::Mean, 0.2); });
    golden("loss_ce_extreme", [](const auto& x) { return cross_entropy(x[0], x[1], Tensor(), -100, Reduction::Mean, 0.1); });
    golden("loss_ce_all_one_class", [](const auto& x) { return cross_entropy(x[0], x[1], x[2]); });
    // The golden's weights are torch's inverse frequencies of [0, 1, 1, 2, 2, 2, 2, 2].
    check_parity("loss_ce_all_one_class", [](const auto& x) {
      const Tensor w = class_weights_from_labels(Tensor::from_indices({0, 1, 1, 2, 2, 2, 2, 2}, {8}), 3, DType::Float64);
      check_close(w, x[2], 1e-15, 0);
      return cross_entropy(x[0], x[1], w);
    });
  }

  TEST_CASE("golden softmax_focal_loss") {
    golden("loss_softmax_focal_alpha_mean", [](const auto& x) { return softmax_focal_loss(x[0], x[1], x[2], 2.0); });
    golden("loss_softmax_focal_none_gamma",
           [](const auto& x) { return softmax_focal_loss(x[0], x[1], Tensor(), 1.5, Reduction::None); });
    golden("loss_softmax_focal_extreme_sum",
           [](const auto& x) { return softmax_focal_loss(x[0], x[1], x[2], 2.0, Reduction::Sum); });
  }
}
