// Grad-CAM (models/gradcam.h) against a PyTorch Grad-CAM on a resnet18 with the same
// weights, the jet colours against matplotlib's, and the DenseNet / single-logit path.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "engine/core/generator.h"
#include "engine/io/checkpoint.h"
#include "engine/pneuma.h"
#include "models/gradcam.h"
#include "models/registry.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using pneuma::testing::run_command;
using pneuma::testing::TempDir;

namespace {

std::string source(const std::string& path) { return std::string(PNEUMA_SOURCE_DIR) + "/" + path; }

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// max |a - b| / max(|b|) over two tensors of one shape.
double relative_error(const Tensor& actual, const Tensor& expected) {
  REQUIRE(actual.shape() == expected.shape());
  const std::vector<double> a = actual.to_vector(), b = expected.to_vector();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst / std::max(max_abs(b), 1e-30);
}

}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("parity Grad-CAM equals a PyTorch Grad-CAM on resnet18 (weights and map and heatmap)") {
    TempDir dir("gradcam");
    const std::string weights = dir / "r18.safetensors";
    REQUIRE(run_command("/usr/bin/python3 " + source("tools/torch2safetensors.py") +
                        " --torchvision resnet18 --num-classes 3 --seed 11 " + weights + " >/dev/null") == 0);
    const Tensor input = Tensor::randn({1, 3, 64, 64}, 21);
    io::save_safetensors(dir / "input.safetensors", {{"input", input}});
    REQUIRE(run_command("/usr/bin/python3 " + source("tests/models/gradcam_reference.py") + " " + weights + " " +
                        (dir / "input.safetensors") + " 3 " + (dir / "expected.safetensors")) == 0);
    const io::Safetensors expected = io::load_safetensors(dir / "expected.safetensors");

    const auto model = models::create_classifier("resnet18", 3);
    io::load_checkpoint(*model, weights);
    model->eval();
    struct Case {
      std::optional<int64_t> target;
      std::optional<std::array<int64_t, 2>> size;
    };
    const std::vector<Case> cases{{std::nullopt, std::nullopt}, {0, std::nullopt}, {std::nullopt, {{40, 56}}}};
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO("case ", i);
      const std::string key = "case" + std::to_string(i);
      const models::GradCam cam = models::grad_cam(*model, input, cases[i].target, cases[i].size);
      CHECK(std::to_string(cam.target) == expected.metadata.at(key + ".target"));
      CHECK(relative_error(Tensor::from_vector(cam.logits, {3}), expected.find("logits")) < 1e-4);
      CHECK(relative_error(Tensor::from_vector(cam.weights, {static_cast<int64_t>(cam.weights.size())}),
                           expected.find(key + ".weights")) < 1e-4);
      CHECK(relative_error(cam.activation, expected.find(key + ".activation")) < 1e-4);
      const Tensor heat = expected.find(key + ".heatmap");
      CHECK(cam.heatmap.shape() == heat.shape());
      CHECK(relative_error(cam.heatmap, heat) < 1e-4);
    }
    // the predicted class differs from class 0 here, so case 1 explained another logit
    CHECK(expected.metadata.at("case0.target") != "0");

    // jet colours as matplotlib's
    const std::vector<double> x = expected.find("jet_x").to_vector(), jet = expected.find("jet").to_vector();
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const std::array<float, 3> c = models::jet_color(x[i]);
      for (size_t k = 0; k < 3; ++k) worst = std::max(worst, std::abs(static_cast<double>(c[k]) - jet[i * 3 + k]));
    }
    CHECK(worst < 1e-6);
  }
}

TEST_CASE("Grad-CAM: DenseNet single logit leaves the model untouched and blends the overlay") {
  manual_seed(3);
  const auto model = models::create_classifier("densenet121", 1);
  model->eval();
  const Tensor input = Tensor::randn({1, 3, 64, 64}, 5);  // a 2x2 feature map
  const std::vector<Tensor> parameters = model->parameters();
  const models::GradCam cam = models::grad_cam(*model, input, std::nullopt, std::array<int64_t, 2>{24, 20});
  CHECK(cam.target == 0);
  CHECK(cam.logits.size() == 1);
  CHECK(cam.weights.size() == static_cast<size_t>(model->feature_dim()));
  REQUIRE(cam.heatmap.shape() == Shape{24, 20});
  const std::vector<double> heat = cam.heatmap.to_vector();
  CHECK(*std::min_element(heat.begin(), heat.end()) == doctest::Approx(0.0));
  CHECK(*std::max_element(heat.begin(), heat.end()) == doctest::Approx(1.0));
  for (const Tensor& p : parameters) {
    CHECK(p.requires_grad());
    CHECK_FALSE(p.grad().defined());
  }
  CHECK(autograd::grad_enabled());
  // the same logits as a plain forward
  {
    NoGradGuard no_grad;
    CHECK(model->forward(input).item() == doctest::Approx(cam.logits[0]).epsilon(1e-5));
  }
  CHECK_THROWS_WITH_AS(models::grad_cam(*model, input, 1), doctest::Contains("target class 1"), Error);
  CHECK_THROWS_AS(models::grad_cam(*model, Tensor::randn({2, 3, 64, 64}, 1)), Error);

  data::Image gray(1, 24, 20, 0.5f);
  const data::Image overlay = models::gradcam_overlay(gray, cam.heatmap, 0.25);
  REQUIRE(overlay.channels == 3);
  for (int64_t y = 0; y < 24; ++y)
    for (int64_t x = 0; x < 20; ++x) {
      const std::array<float, 3> c = models::jet_color(heat[static_cast<size_t>(y * 20 + x)]);
      for (int64_t k = 0; k < 3; ++k)
        CHECK(overlay.at(k, y, x) == doctest::Approx(0.75 * 0.5 + 0.25 * c[static_cast<size_t>(k)]));
    }
  CHECK_THROWS_AS(models::gradcam_overlay(data::Image(1, 10, 10), cam.heatmap), Error);
  // jet's ends: dark blue at 0, dark red at 1
  CHECK(models::jet_color(0)[2] == doctest::Approx(0.5));
  CHECK(models::jet_color(1)[0] == doctest::Approx(0.5));
}
