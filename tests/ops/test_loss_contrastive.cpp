// NT-Xent, multi-positive contrastive (StableRep) and SupCon: gradient checks, PyTorch goldens
// against the reference implementations composed in tests/parity/cases_loss.py, edge cases, errors.
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

Tensor labels_of(const std::vector<int64_t>& v) { return Tensor::from_indices(v, {static_cast<int64_t>(v.size())}); }

template <class Fn>
void golden(const std::string& name, Fn f, double f32_rtol = 1e-4, double f32_atol = 1e-5) {
  check_parity(name, f, DType::Float64, 1e-9, 1e-11);
  check_parity(name, f, DType::Float32, f32_rtol, f32_atol);
}

void check_all_finite(const Tensor& t) {
  for (double v : t.to_vector()) REQUIRE(std::isfinite(v));
}

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck nt_xent_loss") {
    for (double tau : {0.05, 0.1, 0.5, 1.0}) {
      CAPTURE(tau);
      gradcheck([&](const auto& x) { return nt_xent_loss(x[0], tau); }, {random_input({6, 4}, 1)});
    }
    gradcheck([](const auto& x) { return nt_xent_loss(x[0], x[1], 0.2); },
              {random_input({3, 5}, 2), random_input({3, 5}, 3)});
    gradcheck([](const auto& x) { return nt_xent_loss(x[0]); }, {random_input({2, 3}, 4)});
  }

  TEST_CASE("gradcheck multi_pos_con_loss") {
    const std::vector<std::vector<int64_t>> label_sets = {
        {0, 1, 0, 2, 1, 1, 2, 0}, {4, 4, 4, 4, 4, 4, 4, 4}, {0, 1, 2, 3, 4, 5, 6, 7}, {0, 1, 1, 2, 3, 3, 3, 9}};
    for (const auto& labels : label_sets)
      for (double tau : {0.05, 0.1, 1.0}) {
        CAPTURE(tau);
        const Tensor y = labels_of(labels);
        gradcheck([&](const auto& x) { return multi_pos_con_loss(x[0], y, tau); }, {random_input({8, 5}, 5)});
      }
  }

  TEST_CASE("gradcheck supcon_loss") {
    const Tensor y = labels_of({0, 1, 0, 2});
    for (double tau : {0.07, 0.5}) {
      CAPTURE(tau);
      gradcheck([&](const auto& x) { return supcon_loss(x[0], y, tau, 0.07); }, {random_input({4, 2, 5}, 6)});
      gradcheck([&](const auto& x) { return supcon_loss(x[0], Tensor(), tau, 0.1); }, {random_input({4, 3, 5}, 7)});
      gradcheck([&](const auto& x) { return supcon_loss(x[0], y, tau); }, {random_input({4, 6}, 8)});
    }
  }
}

TEST_CASE("contrastive losses: anchors without positives contribute zero - never NaN") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    CAPTURE(dtype_name(dtype));
    Tensor z = random_input({5, 4}, 10).to(dtype).detach();
    z.set_requires_grad(true);
    const Tensor none = multi_pos_con_loss(z, labels_of({0, 1, 2, 3, 4}));
    CHECK(none.item() == 0.0);
    none.backward();
    for (double g : z.grad().to_vector()) CHECK(g == 0.0);

    z.set_grad(Tensor());
    const Tensor sup = supcon_loss(z, labels_of({0, 1, 2, 3, 4}));
    CHECK(sup.item() == 0.0);
    sup.backward();
    for (double g : z.grad().to_vector()) CHECK(g == 0.0);

    // One sample only: no candidate at all.
    Tensor one = random_input({1, 4}, 11).to(dtype).detach();
    one.set_requires_grad(true);
    const Tensor single = multi_pos_con_loss(one, labels_of({7}));
    CHECK(single.item() == 0.0);
    single.backward();
    check_all_finite(one.grad());
  }
}

TEST_CASE("contrastive losses: NT-Xent is the multi-positive loss with pair labels") {
  const Tensor z = random_input({8, 6}, 12, -1, 1, false);
  check_close(nt_xent_loss(z, 0.3), multi_pos_con_loss(z, labels_of({0, 1, 2, 3, 0, 1, 2, 3}), 0.3), 1e-13, 1e-14);
  // SupCon on normalized features with one positive per anchor: the same up to tau / base_tau.
  const Tensor zn = normalize(z, 2.0, 1);
  check_close(supcon_loss(zn, labels_of({0, 1, 2, 3, 0, 1, 2, 3}), 0.3, 0.6), nt_xent_loss(z, 0.3) * 0.5, 1e-13,
              1e-14);
}

TEST_CASE("contrastive losses: float32 at low temperature and many anchors stays finite and close to float64") {
  const Tensor z = random_input({64, 32}, 13, -1, 1, false);
  std::vector<int64_t> labels(64);
  for (int64_t i = 0; i < 64; ++i) labels[static_cast<size_t>(i)] = (i * 7) % 5;
  for (double tau : {0.05, 1.0}) {
    CAPTURE(tau);
    Tensor z32 = z.to(DType::Float32).detach();
    z32.set_requires_grad(true);
    Tensor z64 = z.detach().clone();
    z64.set_requires_grad(true);
    const Tensor l32 = multi_pos_con_loss(z32, labels_of(labels), tau);
    const Tensor l64 = multi_pos_con_loss(z64, labels_of(labels), tau);
    check_close(l32.to(DType::Float64), l64, 1e-5, 1e-6);
    l32.backward();
    l64.backward();
    check_all_finite(z32.grad());
    check_close(z32.grad().to(DType::Float64), z64.grad(), 1e-3, 1e-5);
  }
}

TEST_CASE("contrastive loss errors name the loss and the value") {
  const Tensor z = Tensor::zeros({6, 4});
  CHECK_THROWS_WITH_AS(multi_pos_con_loss(z, labels_of({0, 1, 2, 3})),
                       "multi_pos_con_loss: 4 labels for a batch of 6 (float32[6, 4] on cpu)", Error);
  CHECK_THROWS_WITH_AS(multi_pos_con_loss(z, labels_of({0, 1, 2, 3, 4, 5}), 0.0),
                       "multi_pos_con_loss: temperature must be positive and finite, got 0", Error);
  CHECK_THROWS_WITH_AS(multi_pos_con_loss(z, Tensor::zeros({6})),
                       "multi_pos_con_loss: labels must be an int64 tensor, got float32[6] on cpu", Error);
  CHECK_THROWS_WITH_AS(nt_xent_loss(z, -0.1), "nt_xent_loss: temperature must be positive and finite, got -0.1", Error);
  CHECK_THROWS_WITH_AS(nt_xent_loss(Tensor::zeros({5, 4})),
                       "nt_xent_loss: z must stack two views of the same batch ([2N, d]), got an odd batch float32[5, 4] "
                       "on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(nt_xent_loss(Tensor::zeros({3, 4}), Tensor::zeros({3, 5})),
                       "nt_xent_loss: the two views must have the same shape, got float32[3, 4] on cpu and float32[3, 5] "
                       "on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(supcon_loss(Tensor::zeros({3, 2, 4}), labels_of({0, 1})),
                       "supcon_loss: 2 labels for a batch of 3 (float32[3, 2, 4] on cpu)", Error);
  CHECK_THROWS_WITH_AS(supcon_loss(Tensor::zeros({3, 2, 4}), Tensor(), 0.1, 0.0),
                       "supcon_loss: base_temperature must be positive and finite, got 0", Error);
  CHECK_THROWS_WITH_AS(multi_pos_con_loss(Tensor::zeros({6}), labels_of({0})),
                       "multi_pos_con_loss: expected features of shape [batch, dim], got float32[6] on cpu", Error);
}

TEST_SUITE("parity") {
  TEST_CASE("golden nt_xent_loss") {
    golden("loss_nt_xent_tau0.1", [](const auto& x) { return nt_xent_loss(x[0], 0.1); });
    golden("loss_nt_xent_tau0.05", [](const auto& x) { return nt_xent_loss(x[0], 0.05); }, 1e-4, 1e-4);
    golden("loss_nt_xent_tau0.5", [](const auto& x) { return nt_xent_loss(x[0], 0.5); });
    golden("loss_nt_xent_tau1", [](const auto& x) { return nt_xent_loss(x[0], 1.0); });
    golden("loss_nt_xent_one_pair", [](const auto& x) { return nt_xent_loss(x[0], 0.1); });
  }

  TEST_CASE("golden multi_pos_con_loss") {
    golden("loss_multipos_random", [](const auto& x) { return multi_pos_con_loss(x[0], x[1], 0.1); });
    golden("loss_multipos_all_one_class", [](const auto& x) { return multi_pos_con_loss(x[0], x[1], 0.05); }, 1e-4,
           1e-4);
    golden("loss_multipos_singletons", [](const auto& x) { return multi_pos_con_loss(x[0], x[1], 1.0); });
    golden("loss_multipos_no_positives", [](const auto& x) { return multi_pos_con_loss(x[0], x[1], 0.1); });
    golden("loss_multipos_binary_tau0.5", [](const auto& x) { return multi_pos_con_loss(x[0], x[1], 0.5); });
  }

  TEST_CASE("golden supcon_loss") {
    golden("loss_supcon_labels", [](const auto& x) { return supcon_loss(x[0], x[1], 0.07, 0.07); }, 1e-4, 1e-4);
    golden("loss_supcon_unsupervised", [](const auto& x) { return supcon_loss(x[0], Tensor(), 0.1, 0.07); }, 1e-4, 1e-4);
    golden("loss_supcon_2d_singletons", [](const auto& x) { return supcon_loss(x[0], x[1], 0.5, 0.07); }, 1e-4, 1e-4);
    golden("loss_supcon_all_one_class_tau1", [](const auto& x) { return supcon_loss(x[0], x[1], 1.0, 1.0); });
  }
}
