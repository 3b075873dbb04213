// pneuma-inspect and pneuma-predict end to end, and the Python converters.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/io/checkpoint.h"
#include "engine/pneuma.h"
#include "models/registry.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using pneuma::testing::run_command;
using pneuma::testing::TempDir;

namespace {

std::string tool(const std::string& name) { return std::string(PNEUMA_BINARY_DIR) + "/bin/pneuma-" + name; }
std::string source(const std::string& path) { return std::string(PNEUMA_SOURCE_DIR) + "/" + path; }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

data::Image test_image(int64_t channels, int64_t height, int64_t width, uint64_t seed) {
  data::Image image(channels, height, width);
  const std::vector<double> v = Tensor::rand({channels * height * width}, seed, DType::Float64).to_vector();
  // smooth structure plus noise, quantized to 8 bits as the PNG stores it
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x) {
        const double base = 0.5 + 0.3 * std::sin(0.2 * static_cast<double>(x + 2 * c)) * std::cos(0.15 * static_cast<double>(y));
        const double value = std::clamp(base + 0.2 * (v[static_cast<size_t>((c * height + y) * width + x)] - 0.5), 0.0, 1.0);
        image.at(c, y, x) = static_cast<float>(std::round(value * 255.0) / 255.0);
      }
  return image;
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-inspect lists names and shapes and the issue's totals") {
    std::string out;
    REQUIRE(run_command(tool("inspect") + " --model resnet18 --num-classes 1", &out) == 0);
    const std::vector<std::string> lines = lines_of(out);
    REQUIRE(lines.size() == 123);  // 122 state_dict entries + total
    CHECK(lines.front() == "conv1.weight\t64,3,7,7");
    CHECK(lines[5] == "bn1.num_batches_tracked\t");
    CHECK(lines[lines.size() - 2] == "fc.bias\t1");
    CHECK(lines.back() == "total 11177025");
    struct Row {
      const char* model;
      int classes;
      const char* total;
    };
    for (const Row& r : {Row{"resnet50", 1, "total 23510081"}, Row{"densenet161", 1, "total 26474209"},
                         Row{"resnet18", 1000, "total 11689512"}, Row{"resnet50", 1000, "total 25557032"},
                         Row{"resnet101", 1000, "total 44549160"}, Row{"densenet161", 1000, "total 28681000"}}) {
      INFO(r.model, " ", r.classes);
      REQUIRE(run_command(tool("inspect") + " --model " + r.model + " --num-classes " + std::to_string(r.classes), &out) == 0);
      CHECK(lines_of(out).back() == r.total);
    }
  }

  TEST_CASE("pneuma-inspect --weights reports differences and bad arguments exit 1") {
    TempDir dir("inspect");
    const auto model = models::create_model("resnet18", 2);
    io::save_checkpoint(*model, dir / "r18.safetensors");
    std::string out;
    CHECK(run_command(tool("inspect") + " --model resnet18 --num-classes 2 --weights " + (dir / "r18.safetensors") +
                      " 2>&1 >/dev/null", &out) == 0);
    CHECK(out.find("matches resnet18") != std::string::npos);
    CHECK(run_command(tool("inspect") + " --model resnet18 --num-classes 3 --weights " + (dir / "r18.safetensors") +
                      " 2>&1 >/dev/null", &out) == 1);
    CHECK(out.find("mismatch\tfc.weight\tmodel 3,512\tcheckpoint 2,512") != std::string::npos);
    CHECK(out.find("0 missing, 0 unexpected, 2 shape mismatches") != std::string::npos);
    CHECK(run_command(tool("inspect") + " --model resnet34 --num-classes 2 --weights " + (dir / "r18.safetensors") +
                      " 2>&1 >/dev/null", &out) == 1);
    CHECK(out.find("missing\tlayer1.2.conv1.weight") != std::string::npos);
    CHECK(run_command(tool("inspect") + " --model nope 2>&1", &out) == 1);
    CHECK(lines_of(out).size() == 1);
    CHECK(out.find("unknown model 'nope'") != std::string::npos);
    CHECK(run_command(tool("inspect") + " --bogus 2>&1", &out) == 1);
    CHECK(lines_of(out).size() == 1);
    CHECK(run_command(tool("inspect") + " --help >/dev/null") == 0);
    CHECK(run_command(tool("inspect") + " --model resnet18 --weights " + (dir / "absent.safetensors") + " 2>&1 >/dev/null", &out) == 1);
    CHECK(out.find("cannot open") != std::string::npos);
  }

  TEST_CASE("pneuma-predict: errors are one line and exit 1") {
    TempDir dir("predict-bad");
    io::save_checkpoint(*models::create_model("simplecnn", 1), dir / "cnn.safetensors", {{"model", "simplecnn"}, {"num_classes", "1"}});
    std::string out;
    CHECK(run_command(tool("predict") + " --weights " + (dir / "cnn.safetensors") + " --image " + (dir / "none.png") + " 2>&1", &out) == 1);
    CHECK(lines_of(out).size() == 1);
    CHECK(out.find("none.png") != std::string::npos);
    data::write_png(test_image(1, 40, 40, 1), dir / "x.png");
    CHECK(run_command(tool("predict") + " --model resnet18 --num-classes 1 --weights " + (dir / "cnn.safetensors") +
                      " --image " + (dir / "x.png") + " 2>&1", &out) == 1);
    CHECK(out.find("missing key(s)") != std::string::npos);
    CHECK(lines_of(out).size() == 1);
    // model and class count from the checkpoint's metadata
    REQUIRE(run_command(tool("predict") + " --weights " + (dir / "cnn.safetensors") + " --image " + (dir / "x.png") +
                        " --img-size 32 --json", &out) == 0);
    const nlohmann::json j = nlohmann::json::parse(out);
    CHECK(j.at("logits").size() == 1);
    CHECK(j.at("probabilities")[0].get<double>() == doctest::Approx(1 / (1 + std::exp(-j.at("logits")[0].get<double>()))));
    CHECK(run_command(tool("predict") + " --help >/dev/null") == 0);
    CHECK(run_command(tool("predict") + " --image x.png 2>/dev/null") == 1);
  }
}

TEST_SUITE("parity") {
  TEST_CASE("parity pneuma-predict gives PyTorch's logits for a saved torchvision model") {
    TempDir dir("predict");
    const std::string weights = dir / "r18.safetensors";
    std::string out;
    REQUIRE(run_command("/usr/bin/python3 " + source("tools/torch2safetensors.py") +
                        " --torchvision resnet18 --num-classes 3 --seed 5 " + weights, &out) == 0);
    data::write_png(test_image(1, 64, 64, 2), dir / "gray.png");
    data::write_png(test_image(3, 80, 96, 3), dir / "rgb.png");
    struct Case {
      std::string image;
      double tolerance;  // relative to the largest |logit|
    };
    // the resized image: stb's and PIL's bilinear filters agree only approximately
    for (const Case& c : {Case{"gray.png", 1e-4}, Case{"rgb.png", 2e-2}}) {
      INFO(c.image);
      REQUIRE(run_command("/usr/bin/python3 " + source("tests/models/predict_parity.py") + " resnet18 3 " + weights +
                          " " + (dir / c.image) + " 64", &out) == 0);
      const std::vector<double> expected = nlohmann::json::parse(out).at("logits");
      REQUIRE(run_command(tool("predict") + " --model resnet18 --num-classes 3 --weights " + weights + " --image " +
                          (dir / c.image) + " --img-size 64 --json", &out) == 0);
      const nlohmann::json j = nlohmann::json::parse(out);
      const std::vector<double> logits = j.at("logits"), probabilities = j.at("probabilities");
      REQUIRE(logits.size() == 3);
      double scale = 0, sum_p = 0;
      for (double v : expected) scale = std::max(scale, std::abs(v));
      for (size_t k = 0; k < 3; ++k) {
        CHECK_MESSAGE(std::abs(logits[k] - expected[k]) <= c.tolerance * scale, logits[k], " vs ", expected[k]);
        sum_p += probabilities[k];
      }
      CHECK(sum_p == doctest::Approx(1.0));
      MESSAGE(c.image, ": pneuma ", j.at("logits").dump(), " torch ", nlohmann::json(expected).dump());
    }
  }

  TEST_CASE("parity safetensors written by Pneuma load in PyTorch and back") {
    TempDir dir("convert");
    nn::NamedTensors tensors{{"w", Tensor::randn({3, 4}, 1)},
                             {"d", Tensor::randn({2}, 2, DType::Float64)},
                             {"n", Tensor::from_indices({42}, {})},
                             {"b", Tensor::from_vector({1, 0}, {2}, DType::Bool)},
                             {"h", Tensor::from_vector({0.5, -1}, {2}).to(DType::BFloat16)}};
    io::save_safetensors(dir / "a.safetensors", tensors, {{"note", "hi"}});
    std::string out;
    REQUIRE(run_command("/usr/bin/python3 " + source("tools/safetensors2torch.py") + " " + (dir / "a.safetensors") + " " +
                        (dir / "a.pth"), &out) == 0);
    CHECK(nlohmann::json::parse(out).at("metadata").at("note") == "hi");
    REQUIRE(run_command("/usr/bin/python3 " + source("tools/torch2safetensors.py") + " " + (dir / "a.pth") + " " +
                        (dir / "b.safetensors") + " --metadata note=back", &out) == 0);
    const io::Safetensors back = io::load_safetensors(dir / "b.safetensors");
    CHECK(back.metadata.at("note") == "back");
    REQUIRE(back.tensors.size() == tensors.size());
    for (const auto& [name, t] : tensors) {
      INFO(name);
      const Tensor b = back.find(name);
      REQUIRE(b.defined());
      CHECK(b.dtype() == t.dtype());
      CHECK(b.shape() == t.shape());
      CHECK(b.to_vector() == t.to_vector());
    }
    CHECK(run_command("/usr/bin/python3 " + source("tools/torch2safetensors.py") + " " + (dir / "missing.pth") + " " +
                      (dir / "c.safetensors") + " 2>/dev/null") == 1);
  }
}
