// pneuma-bench end to end at tiny sizes: its JSON keys and sane values, the per-op split adding
// up, clear errors for what the engine cannot do, and the PyTorch twin's same keys.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tests/data/data_util.h"
#include "tests/support/cuda.h"

using nlohmann::json;
using pneuma::testing::run_command;

namespace {

std::string bench() { return std::string(PNEUMA_BINARY_DIR) + "/bin/pneuma-bench"; }

json run_json(const std::string& arguments) {
  std::string out;
  const int status = run_command(bench() + " " + arguments + " --threads 1 --json", &out);
  INFO("pneuma-bench ", arguments, " printed: ", out);
  REQUIRE(status == 0);
  return json::parse(out);
}

// What every result carries, whatever the workload.
void check_common(const json& r, int steps) {
  for (const char* key : {"framework", "workload", "images_per_second", "peak_memory_bytes", "baseline_memory_bytes",
                          "seconds_per_step", "seconds_per_step_median", "seconds_per_step_min",
                          "seconds_per_step_max", "profile", "value"})
    CHECK_MESSAGE(r.contains(key), key);
  CHECK(r["framework"] == "pneuma");
  CHECK(r["seconds_per_step"].size() == static_cast<size_t>(steps));
  const double median = r["seconds_per_step_median"];
  CHECK(median > 0);
  CHECK(r["seconds_per_step_min"].get<double>() <= median);
  CHECK(r["seconds_per_step_max"].get<double>() >= median);
  CHECK(r["images_per_second"].get<double>() > 0);
  CHECK(std::isfinite(r["value"].get<double>()));
  const int64_t peak = r["peak_memory_bytes"], baseline = r["baseline_memory_bytes"];
  CHECK(baseline > 1 << 20);
  CHECK(peak >= baseline);
  CHECK(peak < (int64_t{16} << 30));
}

// The ops' self times add up to the regions' totals (every op scope runs inside a region), and
// the regions to no more than a step.
void check_profile_adds_up(const json& r) {
  const json& p = r["profile"];
  double self = 0, regions = 0, kinds = 0;
  for (const json& op : p["ops"]) {
    CHECK(op["self_seconds_per_step"].get<double>() >= -1e-9);
    CHECK(op["total_seconds_per_step"].get<double>() >= op["self_seconds_per_step"].get<double>() - 1e-9);
    self += op["self_seconds_per_step"].get<double>();
  }
  for (const auto& [phase, seconds] : p["phases"].items()) regions += seconds.get<double>();
  for (const auto& [kind, k] : p["kinds"].items()) kinds += k["total"].get<double>();
  CHECK(self == doctest::Approx(regions).epsilon(1e-6));
  CHECK(kinds == doctest::Approx(regions).epsilon(1e-6));
  double mean_step = 0;
  for (const json& s : r["seconds_per_step"]) mean_step += s.get<double>();
  mean_step /= static_cast<double>(r["seconds_per_step"].size());
  CHECK(regions <= mean_step * 1.0001);
  CHECK(regions >= mean_step * 0.5);
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-bench: resnet18 train step - JSON keys - per-op split") {
    const json r = run_json("--model resnet18 --batch 2 --img-size 32 --warmup 1 --steps 2");
    check_common(r, 2);
    CHECK(r["model"] == "resnet18");
    CHECK(r["mode"] == "train");
    CHECK(r["batch"] == 2);
    CHECK(r["images_per_second"].get<double>() == doctest::Approx(2.0 / r["seconds_per_step_median"].get<double>()));
    const json& p = r["profile"];
    for (const char* phase : {"forward", "loss", "backward", "optimizer"}) CHECK_MESSAGE(p["phases"].contains(phase), phase);
    CHECK(p["kinds"]["conv"]["forward"].get<double>() > 0);
    CHECK(p["kinds"]["conv"]["backward"].get<double>() > 0);
    CHECK(p["kinds"]["batch_norm"]["total"].get<double>() > 0);
    CHECK(p["kinds"]["optimizer"]["optimizer"].get<double>() > 0);
    bool conv_calls = false;
    for (const json& op : p["ops"])
      if (op["name"] == "conv2d" && op["phase"] == "forward") conv_calls = op["calls_per_step"] == 20.0;  // ResNet-18's convs
    CHECK(conv_calls);
    check_profile_adds_up(r);
  }

  TEST_CASE("pneuma-bench: resnet18 train step and inference under bf16 autocast") {
    // The same first step in bfloat16 lands near the float32 value but not on it. (Batch 4 at
    // 64x64: with batch 2 at 32x32, layer4's train-mode BN normalizes two values per channel
    // and rounding flips its signs, so the losses need not be close.)
    for (const char* workload : {"--mode train --batch 4 --img-size 64", "--mode infer --batch 2 --img-size 32"}) {
      CAPTURE(workload);
      const std::string shape = std::string("--model resnet18 ") + workload + " --warmup 0 --steps 1 --seed 3";
      const json fp32 = run_json(shape);
      const json bf16 = run_json(shape + " --precision bf16");
      check_common(bf16, 1);
      CHECK(bf16["precision"] == "bf16");
      const double value32 = fp32["value"], value16 = bf16["value"];
      CHECK(value16 != value32);
      CHECK(std::abs(value16 - value32) <= 0.02 * std::abs(value32));
    }
  }

  TEST_CASE("pneuma-bench: resnet18 channels last train step and inference") {
    const std::string shape = "--model resnet18 --batch 2 --img-size 32 --warmup 0 --steps 1 --seed 5";
    const json train = run_json(shape + " --channels-last");
    check_common(train, 1);
    CHECK(train["channels_last"] == true);
    CHECK(train["profile"]["kinds"]["optimizer"]["optimizer"].get<double>() > 0);
    // Same seed, same weights and input: the inference in NHWC equals the NCHW one up to float32
    // reordering. (Not the train step's loss at this size: layer4's train-mode batch norm
    // normalizes two values per channel, which amplifies rounding; tests/models covers training.)
    const json nchw = run_json(shape + " --mode infer");
    const json nhwc = run_json(shape + " --mode infer --channels-last");
    CHECK(nchw["channels_last"] == false);
    const double value_nchw = nchw["value"], value_nhwc = nhwc["value"];
    CHECK(std::abs(value_nhwc - value_nchw) <= 1e-4 * std::abs(value_nchw));
    std::string out;
    const std::string twin = "/usr/bin/python3 " + std::string(PNEUMA_SOURCE_DIR) + "/benchmarks/bench.py " + shape +
                             " --channels-last --threads 1 --profile-steps 0 --json";
    REQUIRE(run_command(twin, &out) == 0);
    const json torch = json::parse(out);
    CHECK(torch["channels_last"] == true);
    CHECK(torch["images_per_second"].get<double>() > 0);
  }

  TEST_CASE("pneuma-bench: U-Net train step (Dice + BCE) and inference") {
    const json train = run_json("--model unet --batch 2 --img-size 16 --warmup 0 --steps 1");
    check_common(train, 1);
    CHECK(train["profile"]["kinds"].contains("upsample") == false);  // transposed-conv U-Net
    CHECK(train["profile"]["kinds"]["index"]["forward"].get<double>() > 0);  // the skip concatenations
    CHECK(train["profile"]["kinds"]["loss"]["forward"].get<double>() > 0);
    const json infer = run_json("--model resnet18 --mode infer --batch 2 --img-size 32 --warmup 0 --steps 2 --no-profile");
    check_common(infer, 2);
    CHECK(infer["profile"].is_null());
  }

  TEST_CASE("pneuma-bench: loss workload reports calls/s and rows/s") {
    const json r = run_json("--workload loss --loss multi_pos --n 64 --dim 16 --warmup 1 --steps 3");
    check_common(r, 3);
    CHECK(r["loss"] == "multi_pos");
    const double calls = r["calls_per_second"];
    CHECK(r["images_per_second"].get<double>() == doctest::Approx(64 * calls));
    CHECK(r["profile"]["kinds"]["loss"]["backward"].get<double>() > 0);
    check_profile_adds_up(r);
  }

  TEST_CASE("pneuma-bench: every loss workload runs") {
    for (const char* loss : {"focal", "bce", "nt_xent", "multi_pos", "supcon", "cross_entropy", "cosine_embedding"}) {
      CAPTURE(loss);
      const json r = run_json(std::string("--workload loss --loss ") + loss + " --n 32 --dim 5 --warmup 0 --steps 1");
      check_common(r, 1);
      CHECK(r["loss"] == loss);
    }
  }

  TEST_CASE("pneuma-bench: loader workload on the Kermany JPEGs") {
    PNEUMA_REQUIRE_KERMANY();
    const json r = run_json("--workload loader --batch 4 --img-size 64 --workers 1 --warmup 1 --steps 2 --manifest " +
                            pneuma::testing::kermany_csv());
    check_common(r, 2);
    CHECK(r["workers"] == 1);
  }

  TEST_CASE("pneuma-bench: what the engine cannot do is one line and exit 1") {
    struct Case {
      const char* arguments;
      const char* message;
    };
    std::vector<Case> cases = {Case{"--precision tf32", "pneuma-bench: --precision tf32: "},
                               Case{"--model resnet7", "pneuma-bench: unknown model 'resnet7'"},
                               Case{"--batch 0", "pneuma-bench: --batch: "},
                               Case{"--mode fly", "pneuma-bench: --mode: "},
                               Case{"--workload loss --loss nt_xent --n 5", "pneuma-bench: --loss nt_xent: --n must be even"},
                               Case{"--workload loader --manifest /nonexistent/m.csv", "pneuma-bench: "}};
    // Without a GPU (or without the CUDA backend) --device cuda itself is the error; with one,
    // the data loader, which runs on the CPU only.
    if (pneuma::testing::cuda_available())
      cases.push_back({"--device cuda --workload loader", "pneuma-bench: --workload loader: "});
    else
      cases.push_back({"--device cuda", "pneuma-bench: --device cuda: "});
    for (const Case& c : cases) {
      INFO(c.arguments);
      std::string err;
      CHECK(run_command(bench() + " " + c.arguments + " --steps 1 --warmup 0 2>&1 >/dev/null", &err) == 1);
      CHECK(err.rfind(c.message, 0) == 0);
      CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    }
    std::string help;
    CHECK(run_command(bench() + " --help", &help) == 0);
    CHECK(help.find("--precision") != std::string::npos);
  }

  TEST_CASE("pneuma-bench and its PyTorch twin print the same keys") {
    const json pneuma = run_json("--workload loss --loss focal --n 32 --dim 8 --warmup 0 --steps 2");
    std::string out;
    const std::string twin = "/usr/bin/python3 " + std::string(PNEUMA_SOURCE_DIR) +
                             "/benchmarks/bench.py --workload loss --loss focal --n 32 --dim 8 --warmup 0 --steps 2 "
                             "--threads 1 --profile-steps 1 --json";
    REQUIRE(run_command(twin, &out) == 0);
    const json torch = json::parse(out);
    CHECK(torch["framework"] == "pytorch");
    std::set<std::string> missing;
    for (const auto& [key, value] : pneuma.items())
      if (!torch.contains(key)) missing.insert(key);
    CHECK_MESSAGE(missing.empty(), "keys pneuma-bench prints and bench.py does not: ", json(missing).dump());
    for (const char* key : {"phases", "kinds", "ops", "steps"}) CHECK(torch["profile"].contains(key));
    CHECK(torch["calls_per_second"].get<double>() > 0);
    CHECK(torch["images_per_second"].get<double>() == doctest::Approx(32 * torch["calls_per_second"].get<double>()));
  }
}
