// The training tools' --device and --resume: pneuma-train-unet and pneuma-train-mlp resumed
// after an interruption give the uninterrupted run's weights bit for bit (CPU, one thread);
// every tool refuses --device cuda with one clear line where no GPU is visible; and on a
// machine with a GPU (tools/gpu-check) the training tools train on it.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/io/safetensors.h"
#include "tests/e2e/tools_util.h"
#include "tests/support/cuda.h"

using namespace pneuma;
using namespace pneuma::testing;
namespace fs = std::filesystem;

namespace {

// Exit status and stderr (stdout dropped).
int run_stderr(const std::string& command, std::string* err) { return run_command(command + " 2>&1 >/dev/null", err); }

// 60 feature vectors in three noisy clusters (normal / viral / bacterial), 20 patients.
std::string cluster_features(const TempDir& dir) {
  const int64_t n = 60, d = 8;
  std::vector<double> values;
  std::vector<int64_t> subtypes;
  nlohmann::json paths = nlohmann::json::array(), patients = nlohmann::json::array();
  const std::vector<double> noise = Tensor::randn({n, d}, 23, DType::Float64).to_vector();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % 3;
    subtypes.push_back(c);
    paths.push_back("img" + std::to_string(i) + ".png");
    patients.push_back("p" + std::to_string(i / 3));
    for (int64_t k = 0; k < d; ++k)
      values.push_back((k % 3 == c ? 1.0 : 0.0) + 0.8 * noise[static_cast<size_t>(i * d + k)]);
  }
  const std::string path = dir / "clusters.safetensors";
  io::save_safetensors(path,
                       {{"features", Tensor::from_vector(values, {n, d})},
                        {"labels", Tensor::from_indices(std::vector<int64_t>(n, 0), {n})},
                        {"subtypes", Tensor::from_indices(subtypes, {n})}},
                       {{"subtype_names", "normal,viral,bacterial"}, {"paths", paths.dump()},
                        {"patients", patients.dump()}});
  return path;
}

std::string mlp_command(const std::string& features, const std::string& out, const std::string& extra) {
  // SGD with momentum, a step schedule, dropout (the generator) and class weights all take part.
  return tool_path("train-mlp") + " --features " + features + " --out " + out +
         " --hidden 16,8 --batch 8 --lr 0.05 --scheduler step --step-size 1 --gamma 0.7 --threads 1 " + extra;
}

std::string unet_command(const std::string& data, const std::string& out, const std::string& extra) {
  return tool_path("train-unet") + " --data " + data + " --out " + out +
         " --img-size 32 --batch 8 --lr 1e-2 --base-width 4 --threads 1 --workers 2 " + extra;
}

// A run cut after one epoch and resumed, and a run of one epoch extended by --resume
// --epochs, end with the uninterrupted run's checkpoints and metrics.
using CommandFor = std::function<std::string(const std::string& out, const std::string& extra_flags)>;

void check_resume(const std::string& tool, const std::string& dir, const CommandFor& command) {
  const std::string full = dir + "/full", cut = dir + "/cut", short_run = dir + "/short";
  REQUIRE(run_command(command(full, "--epochs 3") + " >/dev/null 2>&1") == 0);
  REQUIRE(run_command(command(cut, "--epochs 3 --stop-after 1") + " >/dev/null 2>&1") == 0);
  CHECK(read_json_lines(cut + "/metrics.jsonl").size() == 1);
  std::string err;
  REQUIRE(run_stderr(tool_path(tool) + " --resume " + cut, &err) == 0);
  CHECK(err.find("resuming " + cut + " after epoch 1") != std::string::npos);
  for (const char* file : {"last.safetensors", "best.safetensors", "train_state.safetensors"}) {
    INFO(tool, " ", file);
    CHECK(same_tensors(full + "/" + file, cut + "/" + file));
  }
  const std::vector<nlohmann::json> full_lines = read_json_lines(full + "/metrics.jsonl");
  const std::vector<nlohmann::json> cut_lines = read_json_lines(cut + "/metrics.jsonl");
  REQUIRE(full_lines.size() == 3);
  REQUIRE(cut_lines.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(cut_lines[i].at("epoch") == i + 1);
    CHECK(cut_lines[i].at("train_loss") == full_lines[i].at("train_loss"));
    CHECK(cut_lines[i].at("val_loss") == full_lines[i].at("val_loss"));
    CHECK(cut_lines[i].at("lr") == full_lines[i].at("lr"));
  }

  REQUIRE(run_command(command(short_run, "--epochs 1") + " >/dev/null 2>&1") == 0);
  REQUIRE(run_command(tool_path(tool) + " --resume " + short_run + " --epochs 3 >/dev/null 2>&1") == 0);
  CHECK(same_tensors(full + "/last.safetensors", short_run + "/last.safetensors"));
  // The comparison can fail: one epoch fewer gives other weights.
  REQUIRE(run_command(command(dir + "/two", "--epochs 2") + " >/dev/null 2>&1") == 0);
  CHECK_FALSE(same_tensors(full + "/last.safetensors", dir + "/two/last.safetensors"));

  // A resumed run keeps its settings; a finished run's folder is not started over.
  CHECK(run_stderr(tool_path(tool) + " --resume " + cut + " --lr 0.5", &err) == 1);
  CHECK(text_lines(err).size() == 1);
  CHECK(err.find("--lr 0.5 differs") != std::string::npos);
  CHECK(run_stderr(command(cut, "--epochs 1"), &err) == 1);
  CHECK(text_lines(err).size() == 1);
  CHECK(err.find("already holds a run") != std::string::npos);
  CHECK(run_stderr(tool_path(tool) + " --resume " + (dir + "/nothing"), &err) == 1);
  CHECK(err.find("has no train_state.safetensors") != std::string::npos);
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-train-mlp --resume gives the uninterrupted run's weights bit for bit") {
    TempDir dir("mlp-resume");
    const std::string features = cluster_features(dir);
    check_resume("train-mlp", dir.str(), [&](const std::string& out, const std::string& extra) {
      return mlp_command(features, out, extra);
    });
  }

  TEST_CASE("pneuma-train-unet --resume gives the uninterrupted run's weights bit for bit") {
    TempDir dir("unet-resume");
    const std::string data = synthetic_set(48, 32) + "/train.csv";
    check_resume("train-unet", dir.str(), [&](const std::string& out, const std::string& extra) {
      return unet_command(data, out, extra);
    });
  }

  TEST_CASE("the tools refuse --device cuda with one line when no GPU is visible") {
    if (cuda_available()) {
      MESSAGE("a GPU is visible: the tools run on it (see the cuda tests)");
      return;
    }
#ifdef PNEUMA_WITH_CUDA
    const std::string expected = ": --device cuda: no CUDA device is visible";
#else
    const std::string expected = ": --device cuda: this build of Pneuma was built without CUDA";
#endif
    TempDir dir("device");
    const std::string missing = dir / "missing";  // never read: the device is checked first
    const std::vector<std::pair<std::string, std::string>> commands = {
        {"train", "--model simplecnn --data " + missing + " --out " + (dir / "a")},
        {"train-3branch", "--data " + missing + " --backbone simplecnn --out " + (dir / "b")},
        {"simclr", "--model simplecnn --data " + missing + " --out " + (dir / "c")},
        {"features", "--weights " + missing + " --data " + missing + " --out " + (dir / "d.safetensors")},
        {"train-mlp", "--features " + missing + " --out " + (dir / "e")},
        {"train-unet", "--data " + missing + " --out " + (dir / "f")},
        {"eval", "--weights " + missing + " --data " + missing},
        {"predict", "--weights " + missing + " --image " + missing},
    };
    for (const auto& [tool, arguments] : commands) {
      const std::string command = tool_path(tool) + " " + arguments + " --device cuda";
      INFO(command);
      std::string err;
      CHECK(run_stderr(command, &err) == 1);
      CHECK(text_lines(err).size() == 1);
      CHECK(err.rfind("pneuma-" + tool + expected, 0) == 0);
      CHECK_FALSE(fs::exists(dir / "a"));
    }
    std::string err;
    CHECK(run_stderr(tool_path("train") + " --model simplecnn --data " + missing + " --out " + (dir / "a") +
                         " --device tpu",
                     &err) == 1);
    CHECK(err.find("pneuma-train: unknown device 'tpu' (cpu, cuda, cuda:N)") == 0);
  }
}

TEST_SUITE("cuda") {
  TEST_CASE("parity cuda pneuma-train") {
    PNEUMA_REQUIRE_GPU();
    const std::string set = synthetic_set(48, 32);
    TempDir dir("cuda-train");
    std::string out;
    REQUIRE(run_command(tool_path("train") + " --model simplecnn --data " + set + "/train.csv --img-size 32 --batch 8"
                        " --epochs 4 --lr 3e-3 --class-weights auto --threads 1 --device cuda --out " +
                            (dir / "run") + " 2>/dev/null",
                        &out) == 0);
    CHECK(last_json_line(out).at("done") == true);
    const std::vector<nlohmann::json> lines = read_json_lines(dir / "run/metrics.jsonl");
    REQUIRE(lines.size() == 4);
    for (const nlohmann::json& line : lines) CHECK(std::isfinite(line.at("train_loss").get<double>()));
    CHECK(lines.back().at("train_loss").get<double>() < lines.front().at("train_loss").get<double>());
    for (const char* file : {"best.safetensors", "last.safetensors", "train_state.safetensors"})
      CHECK(fs::exists(dir / ("run/" + std::string(file))));
    CHECK(io::read_safetensors_header(dir / "run/best.safetensors").metadata.at("model") == "simplecnn");
    // The GPU-trained checkpoint predicts on the CPU, and a GPU run resumes on the GPU.
    REQUIRE(run_command(tool_path("eval") + " --weights " + (dir / "run/best.safetensors") + " --data " + set +
                        "/train.csv --threads 1 >/dev/null 2>&1") == 0);
    REQUIRE(run_command(tool_path("train") + " --resume " + (dir / "run") + " --epochs 5 >/dev/null 2>&1") == 0);
    CHECK(read_json_lines(dir / "run/metrics.jsonl").size() == 5);
  }

  TEST_CASE("parity cuda pneuma-train-unet and pneuma-train-mlp") {
    PNEUMA_REQUIRE_GPU();
    TempDir dir("cuda-unet-mlp");
    const std::string data = synthetic_set(48, 32) + "/train.csv";
    REQUIRE(run_command(unet_command(data, dir / "u", "--epochs 6 --device cuda --predict-masks " + (dir / "p")) +
                        " >/dev/null 2>&1") == 0);
    const std::vector<nlohmann::json> unet = read_json_lines(dir / "u/metrics.jsonl");
    REQUIRE(unet.size() == 6);
    CHECK(unet.back().at("train_loss").get<double>() < unet.front().at("train_loss").get<double>());
    CHECK(fs::exists(dir / "p/train.csv"));

    const std::string features = cluster_features(dir);
    REQUIRE(run_command(mlp_command(features, dir / "m", "--epochs 6 --device cuda --stop-after 3") +
                        " >/dev/null 2>&1") == 0);
    REQUIRE(run_command(tool_path("train-mlp") + " --resume " + (dir / "m") + " >/dev/null 2>&1") == 0);
    const std::vector<nlohmann::json> mlp = read_json_lines(dir / "m/metrics.jsonl");
    REQUIRE(mlp.size() == 6);
    CHECK(mlp.back().at("train_loss").get<double>() < mlp.front().at("train_loss").get<double>());
  }
}
