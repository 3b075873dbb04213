// Cosine embedding loss, the three-branch class-wise embedding losses, soft Dice (+ BCE) and the
// loss registry: gradient checks, PyTorch goldens, edge cases, errors.
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

Tensor labels_of(const std::vector<int64_t>& v) { return Tensor::from_indices(v, {static_cast<int64_t>(v.size())}); }

template <class Fn>
void golden(const std::string& name, Fn f, double f32_rtol = 1e-4, double f32_atol = 1e-5) {
  check_parity(name, f, DType::Float64, 1e-9, 1e-11);
  check_parity(name, f, DType::Float32, f32_rtol, f32_atol);
}

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck cosine_embedding_loss") {
    const Tensor t = Tensor::from_vector({1, -1, -1, 1, -1}, {5}, DType::Float64);
    for (Reduction r : kReductions)
      for (double margin : {0.0, -0.3}) {
        CAPTURE(reduction_name(r));
        CAPTURE(margin);
        gradcheck([&](const auto& x) { return cosine_embedding_loss(x[0], x[1], t, margin, r); },
                  {random_input({5, 4}, 1), random_input({5, 4}, 2)});
      }
    gradcheck([](const auto& x) { return cosine_embedding_loss(x[0], x[1], Tensor::scalar(1.0, DType::Float64)); },
              {random_input({4}, 3), random_input({4}, 4)});
  }

  TEST_CASE("gradcheck embedding_similarity_loss") {
    const Tensor yc = labels_of({0, 1, 2, 0, 1, 2}), ya = labels_of({0, 0, 1}), yp = labels_of({2, 1, 1, 2});
    gradcheck([&](const auto& x) { return embedding_similarity_loss(x[0], yc, x[1], ya, x[2], yp, 3); },
              {random_input({6, 4}, 5), random_input({3, 4}, 6), random_input({4, 4}, 7)});
  }

  TEST_CASE("gradcheck embedding_dissimilarity_loss") {
    const Tensor y = labels_of({0, 1, 2, 0, 1, 2, 3});
    for (bool hinge : {false, true})
      for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
        CAPTURE(hinge);
        gradcheck([&](const auto& x) { return embedding_dissimilarity_loss(x[0], y, 5, hinge, r); },
                  {random_input({7, 4}, 8, 0.1, 1.0)});
      }
  }

  TEST_CASE("gradcheck class_mean_embeddings") {
    gradcheck([](const auto& x) { return class_mean_embeddings(x[0], labels_of({1, 1, 0, 3}), 4); },
              {random_input({4, 3}, 9)});
  }

  TEST_CASE("gradcheck dice_loss") {
    for (Reduction r : kReductions)
      gradcheck([&](const auto& x) { return dice_loss(x[0], x[1], 1.0, r); },
                {random_input({2, 1, 3, 3}, 10, -3, 3), random_input({2, 1, 3, 3}, 11, 0, 1)});
    gradcheck([](const auto& x) { return dice_bce_loss(x[0], x[1], 0.5, 2.0, 0.5); },
              {random_input({3, 4}, 12, -3, 3), random_input({3, 4}, 13, 0, 1)});
  }
}

TEST_CASE("three-branch losses: agreeing paths give zero similarity loss - absent classes are skipped") {
  const Tensor z = random_input({6, 5}, 20, -1, 1, false);
  const Tensor y = labels_of({0, 1, 0, 1, 1, 0});
  // Identical paths: every cos is 1.
  CHECK(embedding_similarity_loss(z, y, z, y, z, y, 2).item() == doctest::Approx(0.0).epsilon(1e-12));
  // Opposite adult path: cos -1 for both classes, 2 per class.
  CHECK(embedding_similarity_loss(z, y, -z, y, z, y, 2).item() == doctest::Approx(4.0));
  // Class 1 absent from the adult batch: only class 0 has an adult term.
  const Tensor a = random_input({2, 5}, 21, -1, 1, false);
  const double with_absent = embedding_similarity_loss(z, y, a, labels_of({0, 0}), z, y, 2).item();
  const Tensor wc = class_mean_embeddings(z, y, 2), wa = class_mean_embeddings(a, labels_of({0, 0}), 2);
  const std::vector<double> c = wc.to_vector(), av = wa.to_vector();
  double dot = 0, nc = 0, na = 0;
  for (int k = 0; k < 5; ++k) {
    dot += c[k] * av[k];
    nc += c[k] * c[k];
    na += av[k] * av[k];
  }
  CHECK(with_absent == doctest::Approx(1.0 - dot / std::sqrt(nc * na)));
  // Absent classes have zero rows in the class means.
  CHECK(av[5] == 0.0);
  // One class only: no pair for the dissimilarity loss, a zero that still backpropagates.
  Tensor zc = random_input({3, 4}, 22);
  const Tensor zero = embedding_dissimilarity_loss(zc, labels_of({1, 1, 1}), 3);
  CHECK(zero.item() == 0.0);
  zero.backward();
  for (double g : zc.grad().to_vector()) CHECK(g == 0.0);
}

TEST_CASE("dice: perfect prediction gives zero loss - smooth keeps empty masks finite") {
  const Tensor logits = Tensor::from_vector({60, -60, 60, -60}, {1, 4}, DType::Float64);
  const Tensor target = Tensor::from_vector({1, 0, 1, 0}, {1, 4}, DType::Float64);
  CHECK(dice_loss(logits, target).item() == doctest::Approx(0.0).epsilon(1e-12));
  const Tensor empty = Tensor::zeros({1, 4}, DType::Float64);
  CHECK(dice_loss(-abs(logits), empty, 1.0).item() == doctest::Approx(0.0).epsilon(1e-12));
}

TEST_CASE("embedding loss errors name the loss and the value") {
  const Tensor z = Tensor::zeros({4, 3});
  CHECK_THROWS_WITH_AS(embedding_dissimilarity_loss(z, labels_of({0, 1, 2, 3}), 3),
                       "embedding_dissimilarity_loss: labels_common 3 at index 3 is out of range for 3 classes", Error);
  CHECK_THROWS_WITH_AS(embedding_similarity_loss(z, labels_of({0, 1, 1, 0}), z, labels_of({0, 1}), z,
                                                 labels_of({0, 1, 1, 0}), 2),
                       "embedding_similarity_loss: 2 labels_adult for a batch of 4 (float32[4, 3] on cpu)", Error);
  CHECK_THROWS_WITH_AS(embedding_dissimilarity_loss(z, labels_of({0, 1, 1, 0}), 0),
                       "embedding_dissimilarity_loss: num_classes must be positive, got 0", Error);
  CHECK_THROWS_WITH_AS(cosine_embedding_loss(z, z, Tensor::ones({3})),
                       "cosine_embedding_loss: 3 targets for 4 input pairs (float32[4, 3] on cpu)", Error);
  CHECK_THROWS_WITH_AS(cosine_embedding_loss(z, z, Tensor::ones({})),
                       "cosine_embedding_loss: a 0-d target expects 1-d inputs, got float32[4, 3] on cpu and float32[4, "
                       "3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(dice_loss(z, z, -1.0), "dice_loss: smooth must be non-negative and finite, got -1", Error);
  CHECK_THROWS_WITH_AS(dice_loss(Tensor::zeros({4}), Tensor::zeros({4})),
                       "dice_loss: expected input [N, ...] with at least 2 dims, got float32[4] on cpu", Error);
}

TEST_CASE("loss registry: every loss by name - options checked") {
  CHECK(loss_registry().size() == 12);
  const Tensor x = random_input({4, 3}, 30, -2, 2, false);
  const Tensor t = random_input({4, 3}, 31, 0, 1, false);
  check_close(compute_loss("sigmoid_focal", {x, t}, {{"gamma", "1.5"}, {"reduction", "sum"}}),
              sigmoid_focal_loss(x, t, 0.25, 1.5, Reduction::Sum), 0, 0);
  check_close(compute_loss("cross_entropy", {x, labels_of({0, 2, -1, 1})}, {{"ignore_index", "-1"}}),
              cross_entropy(x, labels_of({0, 2, -1, 1}), Tensor(), -1), 0, 0);
  check_close(compute_loss("supcon", {x}, {{"temperature", "0.5"}}), supcon_loss(x, Tensor(), 0.5), 0, 0);
  check_close(compute_loss("bce_with_logits", {x, t, Tensor(), Tensor::ones({3}, DType::Float64)}),
              binary_cross_entropy_with_logits(x, t), 0, 0);
  check_close(compute_loss("embedding_dissimilarity", {x, labels_of({0, 1, 2, 1})}, {{"num_classes", "3"}, {"hinge", "false"}}),
              embedding_dissimilarity_loss(x, labels_of({0, 1, 2, 1}), 3, false), 0, 0);
  for (const LossSpec& spec : loss_registry()) CHECK(&find_loss(spec.name) == &spec);
  CHECK_THROWS_WITH_AS(find_loss("focal"),
                       "loss: unknown loss 'focal' (known: sigmoid_focal, softmax_focal, bce_with_logits, cross_entropy, "
                       "nt_xent, multi_pos_con, supcon, cosine_embedding, embedding_similarity, "
                       "embedding_dissimilarity, dice, dice_bce)",
                       Error);
  CHECK_THROWS_WITH_AS(compute_loss("nt_xent", {x}, {{"tau", "0.1"}}),
                       "nt_xent: unknown option 'tau' (options: temperature)", Error);
  CHECK_THROWS_WITH_AS(compute_loss("nt_xent", {x}, {{"temperature", "fast"}}),
                       "nt_xent: option temperature must be a number, got 'fast'", Error);
  CHECK_THROWS_WITH_AS(compute_loss("cross_entropy", {x}), "cross_entropy: expected 2 to 3 tensors, got 1", Error);
}

TEST_SUITE("parity") {
  TEST_CASE("golden cosine_embedding_loss") {
    golden("loss_cosine_embedding_mean_margin", [](const auto& x) { return cosine_embedding_loss(x[0], x[1], x[2], -0.2); });
    golden("loss_cosine_embedding_none",
           [](const auto& x) { return cosine_embedding_loss(x[0], x[1], x[2], 0.1, Reduction::None); });
    golden("loss_cosine_embedding_sum",
           [](const auto& x) { return cosine_embedding_loss(x[0], x[1], x[2], 0.0, Reduction::Sum); });
    golden("loss_cosine_embedding_1d", [](const auto& x) { return cosine_embedding_loss(x[0], x[1], x[2], -0.5); });
  }

  TEST_CASE("golden embedding_similarity_loss") {
    golden("loss_embedding_similarity_binary",
           [](const auto& x) { return embedding_similarity_loss(x[0], x[1], x[2], x[3], x[4], x[5], 2); });
    golden("loss_embedding_similarity_absent_classes",
           [](const auto& x) { return embedding_similarity_loss(x[0], x[1], x[2], x[3], x[4], x[5], 4); });
  }

  TEST_CASE("golden embedding_dissimilarity_loss") {
    golden("loss_embedding_dissimilarity_hinge_mean",
           [](const auto& x) { return embedding_dissimilarity_loss(x[0], x[1], 3, true, Reduction::Mean); });
    golden("loss_embedding_dissimilarity_plain_sum",
           [](const auto& x) { return embedding_dissimilarity_loss(x[0], x[1], 4, false, Reduction::Sum); });
    golden("loss_embedding_dissimilarity_one_class",
           [](const auto& x) { return embedding_dissimilarity_loss(x[0], x[1], 2); });
  }

  TEST_CASE("golden dice_loss") {
    golden("loss_dice_mean", [](const auto& x) { return dice_loss(x[0], x[1], 1.0); });
    golden("loss_dice_none_soft", [](const auto& x) { return dice_loss(x[0], x[1], 0.5, Reduction::None); });
    golden("loss_dice_bce", [](const auto& x) { return dice_bce_loss(x[0], x[1], 1.0, 2.0, 0.5); });
  }
}
