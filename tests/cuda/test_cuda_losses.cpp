// Every loss on CUDA tensors (the fused kernels of kernels/losses/, cuBLAS for the contrastive
// family's similarity GEMMs) against the same loss on the CPU: values and gradients, float32 and
// float64. Skipped without a GPU.
#include <doctest/doctest.h>

#include <exception>
#include <string>
#include <vector>

#include "tests/cuda/cuda_parity.h"

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;
using pneuma::testing::require_close_to;

namespace {

constexpr DType kDtypes[] = {DType::Float32, DType::Float64};
constexpr Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

Tensor labels_of(const std::vector<int64_t>& v) { return Tensor::from_indices(v, {static_cast<int64_t>(v.size())}); }

// A constant (weights, class weights) on the device of the call's first input: check_cuda_parity
// gives every float input requires_grad, which these refuse.
Tensor beside(const Tensor& constant, const std::vector<Tensor>& inputs) {
  return constant.defined() ? constant.to(inputs[0].device()) : constant;
}

// The contrastive losses divide similarities by temperatures down to 0.05: float32 sums of
// exponentials added in another order on the GPU need a looser bound.
double contrastive_tolerance(DType dtype) { return dtype == DType::Float32 ? 2e-4 : 1e-10; }

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("parity cuda binary_cross_entropy_with_logits") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    for (const Reduction r : kReductions) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(reduction_name(r));
      const Tensor weight = parity_input({5}, 3, dtype, 0.5, 2), pos_weight = parity_input({5}, 4, dtype, 0.2, 3);
      check_cuda_parity(
          [&](const auto& t) {
            return binary_cross_entropy_with_logits(t[0], t[1], beside(weight, t), r, beside(pos_weight, t));
          },
          {parity_input({7, 5}, 1, dtype, -60, 60), parity_input({7, 5}, 2, dtype, 0, 1)});
      check_cuda_parity([&](const auto& t) { return binary_cross_entropy_with_logits(t[0], t[1], Tensor(), r); },
                        {parity_input({300}, 5, dtype, -8, 8), parity_input({300}, 6, dtype, 0, 1)});
    }
  }
}

TEST_CASE("parity cuda sigmoid_focal_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    for (const Reduction r : kReductions) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(reduction_name(r));
      for (const double alpha : {0.25, -1.0}) {
        check_cuda_parity([&](const auto& t) { return sigmoid_focal_loss(t[0], t[1], alpha, 2.0, r); },
                          {parity_input({9, 70}, 7, dtype, -60, 60), parity_input({9, 70}, 8, dtype, 0, 1)});
      }
      check_cuda_parity([&](const auto& t) { return sigmoid_focal_loss(t[0], t[1], 0.7, 1.5, r); },
                        {parity_input({33}, 9, dtype, -5, 5), parity_input({33}, 10, dtype, 0, 1)});
    }
  }
}

TEST_CASE("parity cuda cross_entropy") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    for (const Reduction r : kReductions) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(reduction_name(r));
      const Tensor weight = parity_input({4}, 11, dtype, 0.2, 2);
      const Tensor target = labels_of({0, 3, -100, 2, 1, 1, 3});
      check_cuda_parity([&](const auto& t) { return cross_entropy(t[0], t[1], beside(weight, t), -100, r, 0.1); },
                        {parity_input({7, 4}, 12, dtype, -8, 8), target});
      // [N, C, d] with rows wider than a block, no weights.
      check_cuda_parity([&](const auto& t) { return cross_entropy(t[0], t[1], Tensor(), -100, r); },
                        {parity_input({2, 300, 3}, 13, dtype, -8, 8), labels_of({0, 299, 17, 150, 42, 1}).reshape({2, 3})});
      // Class-probability targets (composed from ops).
      check_cuda_parity([&](const auto& t) { return cross_entropy(t[0], t[1], beside(weight, t), -100, r, 0.2); },
                        {parity_input({5, 4}, 14, dtype, -4, 4), parity_input({5, 4}, 15, dtype, 0, 1)});
    }
  }
}

TEST_CASE("parity cuda softmax_focal_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    for (const Reduction r : kReductions) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(reduction_name(r));
      const Tensor alpha = parity_input({3}, 16, dtype, 0.2, 1);
      check_cuda_parity([&](const auto& t) { return softmax_focal_loss(t[0], t[1], beside(alpha, t), 2.0, r); },
                        {parity_input({11, 3}, 17, dtype, -6, 6), labels_of({0, 1, 2, 2, 1, 0, 0, 0, 1, 2, 1})});
      check_cuda_parity([&](const auto& t) { return softmax_focal_loss(t[0], t[1], Tensor(), 0.5, r); },
                        {parity_input({2, 3, 4}, 18, dtype, -6, 6), labels_of({0, 1, 2, 2, 1, 0, 0, 1}).reshape({2, 4})});
    }
  }
}

TEST_CASE("parity cuda nt_xent_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    CAPTURE(dtype_name(dtype));
    const double tol = contrastive_tolerance(dtype);
    for (const double tau : {0.05, 0.1, 1.0}) {
      CAPTURE(tau);
      check_cuda_parity([&](const auto& t) { return nt_xent_loss(t[0], tau); }, {parity_input({18, 8}, 19, dtype)},
                        tol);
    }
    check_cuda_parity([&](const auto& t) { return nt_xent_loss(t[0], t[1], 0.1); },
                      {parity_input({150, 32}, 20, dtype), parity_input({150, 32}, 21, dtype)}, tol);
  }
}

TEST_CASE("parity cuda multi_pos_con_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    CAPTURE(dtype_name(dtype));
    const double tol = contrastive_tolerance(dtype);
    std::vector<int64_t> labels(40);
    for (int64_t i = 0; i < 40; ++i) labels[static_cast<size_t>(i)] = (i * 7) % 3;
    check_cuda_parity([&](const auto& t) { return multi_pos_con_loss(t[0], t[1], 0.1); },
                      {parity_input({40, 16}, 22, dtype), labels_of(labels)}, tol);
    // One class; no positives at all; anchors with and without positives.
    check_cuda_parity([&](const auto& t) { return multi_pos_con_loss(t[0], t[1], 0.05); },
                      {parity_input({12, 5}, 23, dtype), labels_of(std::vector<int64_t>(12, 4))}, tol);
    check_cuda_parity([&](const auto& t) { return multi_pos_con_loss(t[0], t[1], 0.5); },
                      {parity_input({7, 5}, 24, dtype), labels_of({0, 1, 2, 3, 4, 5, 6})}, tol);
    check_cuda_parity([&](const auto& t) { return multi_pos_con_loss(t[0], t[1], 1.0); },
                      {parity_input({8, 5}, 25, dtype), labels_of({0, 1, 1, 2, 3, 3, 3, 9})}, tol);
  }
}

TEST_CASE("parity cuda supcon_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    CAPTURE(dtype_name(dtype));
    const double tol = contrastive_tolerance(dtype);
    check_cuda_parity([&](const auto& t) { return supcon_loss(t[0], t[1], 0.1, 0.07); },
                      {parity_input({6, 2, 16}, 26, dtype), labels_of({0, 1, 0, 2, 1, 3})}, tol);
    check_cuda_parity([&](const auto& t) { return supcon_loss(t[0], Tensor(), 0.5, 0.5); },
                      {parity_input({130, 2, 8}, 27, dtype)}, tol);
  }
}

TEST_CASE("parity cuda contrastive loss backward twice through one graph") {
  PNEUMA_REQUIRE_GPU();
  // The CUDA backward overwrites the kept S with its gradient; a second backward forms S again.
  Tensor z = parity_input({10, 6}, 28, DType::Float64).to(Device::cuda());
  z.set_requires_grad(true);
  const Tensor loss = multi_pos_con_loss(z, labels_of({0, 1, 0, 1, 2, 2, 0, 1, 2, 0}).to(Device::cuda()), 0.2);
  loss.backward(Tensor(), /*retain_graph=*/true);
  const Tensor first = z.grad().clone();
  z.set_grad(Tensor());
  loss.backward();
  require_close_to(first.to(Device::cpu()), z.grad().to(Device::cpu()), 1e-12, "second backward");
}

TEST_CASE("parity cuda cosine_embedding_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    for (const Reduction r : kReductions) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(reduction_name(r));
      const Tensor target = labels_of({1, -1, -1, 1, -1, 1, -1, -1, 1});
      check_cuda_parity([&](const auto& t) { return cosine_embedding_loss(t[0], t[1], t[2], -0.1, r); },
                        {parity_input({9, 300}, 29, dtype), parity_input({9, 300}, 30, dtype), target});
    }
  }
}

TEST_CASE("parity cuda class_mean_embeddings") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    CAPTURE(dtype_name(dtype));
    check_cuda_parity([&](const auto& t) { return class_mean_embeddings(t[0], t[1], 4); },
                      {parity_input({9, 130}, 31, dtype), labels_of({0, 2, 2, 1, 0, 0, 2, 1, 0})});
  }
}

TEST_CASE("parity cuda embedding_similarity_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    CAPTURE(dtype_name(dtype));
    check_cuda_parity(
        [&](const auto& t) { return embedding_similarity_loss(t[0], t[1], t[2], t[3], t[4], t[5], 2); },
        {parity_input({16, 64}, 32, dtype), labels_of({0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0}),
         parity_input({8, 64}, 33, dtype), labels_of({0, 0, 1, 1, 0, 1, 0, 1}), parity_input({8, 64}, 34, dtype),
         labels_of({1, 1, 1, 0, 0, 0, 1, 0})});
    // A class absent from the adult batch and one from every batch.
    check_cuda_parity(
        [&](const auto& t) { return embedding_similarity_loss(t[0], t[1], t[2], t[3], t[4], t[5], 4); },
        {parity_input({6, 300}, 35, dtype), labels_of({0, 1, 2, 0, 1, 2}), parity_input({3, 300}, 36, dtype),
         labels_of({0, 0, 1}), parity_input({4, 300}, 37, dtype), labels_of({2, 1, 0, 2})});
  }
}

TEST_CASE("parity cuda embedding_dissimilarity_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    for (const bool hinge : {true, false}) {
      for (const Reduction r : {Reduction::Mean, Reduction::Sum}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(hinge);
        CAPTURE(reduction_name(r));
        check_cuda_parity([&](const auto& t) { return embedding_dissimilarity_loss(t[0], t[1], 5, hinge, r); },
                          {parity_input({12, 40}, 38, dtype, -1, 1.5), labels_of({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 0})});
        check_cuda_parity([&](const auto& t) { return embedding_dissimilarity_loss(t[0], t[1], 3, hinge, r); },
                          {parity_input({4, 8}, 39, dtype), labels_of({1, 1, 1, 1})});
      }
    }
  }
}

TEST_CASE("parity cuda dice_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    for (const Reduction r : kReductions) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(reduction_name(r));
      check_cuda_parity([&](const auto& t) { return dice_loss(t[0], t[1], 1.0, r); },
                        {parity_input({3, 1, 17, 19}, 40, dtype, -6, 6), parity_input({3, 1, 17, 19}, 41, dtype, 0, 1)});
      // Several forward blocks per sample.
      check_cuda_parity([&](const auto& t) { return dice_loss(t[0], t[1], 0.5, r); },
                        {parity_input({2, 1, 160, 160}, 42, dtype, -6, 6),
                         parity_input({2, 1, 160, 160}, 43, dtype, 0, 1)});
    }
  }
}

TEST_CASE("parity cuda dice_bce_loss") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : kDtypes) {
    CAPTURE(dtype_name(dtype));
    check_cuda_parity([&](const auto& t) { return dice_bce_loss(t[0], t[1], 1.0, 0.7, 1.3); },
                      {parity_input({4, 1, 32, 32}, 44, dtype, -6, 6), parity_input({4, 1, 32, 32}, 45, dtype, 0, 1)});
  }
}

TEST_CASE("parity cuda losses: class weights on the labels' device and mixed devices refused") {
  PNEUMA_REQUIRE_GPU();
  const Tensor labels = labels_of({0, 1, 1, 2, 2, 2});
  const Tensor weights = class_weights_from_labels(labels.to(Device::cuda()), 3);
  CHECK(weights.device() == Device::cuda());
  require_close_to(class_weights_from_labels(labels, 3), weights.to(Device::cpu()), 1e-7, "class weights");

  const Tensor features = parity_input({6, 4}, 46, DType::Float32).to(Device::cuda());
  auto message_of = [](auto&& call) {
    try {
      call();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string contrastive = message_of([&] { multi_pos_con_loss(features, labels, 0.1); });
  CHECK(contrastive.find("multi_pos_con_loss") != std::string::npos);
  CHECK(contrastive.find("cuda") != std::string::npos);
  CHECK(contrastive.find("cpu") != std::string::npos);
  const std::string ce = message_of([&] { cross_entropy(features, labels); });
  CHECK(ce.find("cross_entropy") != std::string::npos);
  CHECK(ce.find("cpu") != std::string::npos);
  const std::string dice = message_of([&] { dice_loss(features, parity_input({6, 4}, 47, DType::Float32)); });
  CHECK(dice.find("dice_loss") != std::string::npos);
  CHECK(dice.find("cpu") != std::string::npos);
}

}  // TEST_SUITE
