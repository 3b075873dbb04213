// pneuma-train end to end on a tiny synthetic set: outputs, metadata read by
// pneuma-predict, bit-identical resume, multi-class + --init + --freeze, and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/data/manifest.h"
#include "engine/io/safetensors.h"
#include "tests/data/data_util.h"
#include "tests/e2e/tools_util.h"

using namespace pneuma;
using pneuma::testing::run_command;
using pneuma::testing::same_tensors;
using pneuma::testing::TempDir;

namespace {

std::string tool(const std::string& name) { return std::string(PNEUMA_BINARY_DIR) + "/bin/pneuma-" + name; }

// 48 synthetic 32x32 images (two domains, both classes) in dir/data; returns the manifest.
std::string make_data(const TempDir& dir) {
  REQUIRE(run_command(tool("synth") + " --n 48 --size 32 --seed 5 --out " + (dir / "data") + " >/dev/null") == 0);
  return dir / "data/train.csv";
}

// Small and quick: one compute thread (resume is bit-identical for the same thread count).
std::string train_command(const std::string& data, const std::string& out, const std::string& extra = "") {
  return tool("train") + " --model simplecnn --data " + data + " --img-size 32 --batch 8 --threads 1 --out " + out +
         " " + extra;
}

// Exit status and stderr (stdout dropped).
int run_stderr(const std::string& command, std::string* err) { return run_command(command + " 2>&1 >/dev/null", err); }

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}


}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-train writes best/last checkpoints and metrics - pneuma-predict reads them") {
    TempDir dir("train-e2e");
    const std::string data = make_data(dir);
    std::string out;
    REQUIRE(run_command(
                train_command(data, dir / "run", "--epochs 3 --scheduler cosine --class-weights auto") + " 2>/dev/null",
                &out) == 0);
    for (const char* file : {"best.safetensors", "last.safetensors", "train_state.safetensors", "metrics.jsonl"})
      CHECK(std::filesystem::exists(dir / ("run/" + std::string(file))));
    const auto lines = read_jsonl(dir / "run/metrics.jsonl");
    REQUIRE(lines.size() == 3);
    for (size_t i = 0; i < lines.size(); ++i) {
      CHECK(lines[i].at("epoch") == i + 1);
      for (const char* key : {"lr", "train_loss", "val_loss", "val_auroc", "val_accuracy", "seconds"})
        CHECK_MESSAGE(lines[i].at(key).is_number(), key);
      CHECK(lines[i].at("val_auroc").get<double>() >= 0.0);
      CHECK(lines[i].at("val_auroc").get<double>() <= 1.0);
    }
    CHECK(lines[1].at("lr").get<double>() < lines[0].at("lr").get<double>());  // cosine
    // stdout: the metric lines, then a summary.
    CHECK(count_lines(out) == 4);
    const nlohmann::json summary = nlohmann::json::parse(out.substr(out.rfind('\n', out.size() - 2) + 1));
    CHECK(summary.at("done") == true);

    const io::SafetensorsHeader best = io::read_safetensors_header(dir / "run/best.safetensors");
    CHECK(best.metadata.at("model") == "simplecnn");
    CHECK(best.metadata.at("num_classes") == "1");
    CHECK(best.metadata.at("img_size") == "32");
    CHECK(best.metadata.at("mean") == "0.485,0.456,0.406");
    const double threshold = std::stod(best.metadata.at("threshold"));
    CHECK(std::stoi(best.metadata.at("epoch")) == summary.at("best_epoch").get<int>());

    data::Manifest m = data::read_manifest(data);
    REQUIRE(run_command(tool("predict") + " --json --weights " + (dir / "run/best.safetensors") + " --image " +
                            m.records.front().file,
                        &out) == 0);
    const nlohmann::json prediction = nlohmann::json::parse(out);
    CHECK(prediction.at("threshold").get<double>() == threshold);
    const double p = prediction.at("probabilities").at(0).get<double>();
    CHECK(prediction.at("label") == (p >= threshold ? 1 : 0));
  }

  TEST_CASE("pneuma-train --resume gives the uninterrupted run's weights bit for bit") {
    TempDir dir("train-resume");
    const std::string data = make_data(dir);
    // Adam, a step schedule, the focal loss with class weights, augmentation, dropout (the
    // generator) and two loader workers all take part.
    const std::string settings =
        "--optimizer adam --lr 0.003 --scheduler step --step-size 1 --gamma 0.5 "
        "--loss focal --class-weights auto --workers 2";
    REQUIRE(run_command(train_command(data, dir / "full", settings + " --epochs 3 --seed 11") + " >/dev/null 2>&1") ==
            0);

    // Interrupted after epoch 1, resumed with the saved settings.
    REQUIRE(run_command(train_command(data, dir / "cut", settings + " --epochs 3 --seed 11 --stop-after 1") +
                        " >/dev/null 2>&1") == 0);
    CHECK(read_jsonl(dir / "cut/metrics.jsonl").size() == 1);
    std::string err;
    REQUIRE(run_stderr(tool("train") + " --resume " + (dir / "cut"), &err) == 0);
    CHECK(err.find("resuming") != std::string::npos);
    CHECK(same_tensors(dir / "full/last.safetensors", dir / "cut/last.safetensors"));
    CHECK(same_tensors(dir / "full/train_state.safetensors", dir / "cut/train_state.safetensors"));
    CHECK(same_tensors(dir / "full/best.safetensors", dir / "cut/best.safetensors"));
    const auto full_lines = read_jsonl(dir / "full/metrics.jsonl"), cut_lines = read_jsonl(dir / "cut/metrics.jsonl");
    REQUIRE(cut_lines.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      CHECK(cut_lines[i].at("epoch") == i + 1);
      CHECK(cut_lines[i].at("train_loss") == full_lines[i].at("train_loss"));
      CHECK(cut_lines[i].at("val_auroc") == full_lines[i].at("val_auroc"));
      CHECK(cut_lines[i].at("lr") == full_lines[i].at("lr"));
    }

    // A run of 1 epoch extended to 3 with --resume --epochs 3, another worker count.
    REQUIRE(run_command(train_command(data, dir / "short", settings + " --epochs 1 --seed 11") + " >/dev/null 2>&1") ==
            0);
    REQUIRE(run_command(tool("train") + " --resume " + (dir / "short") + " --epochs 3 --workers 0 >/dev/null 2>&1") ==
            0);
    CHECK(same_tensors(dir / "full/last.safetensors", dir / "short/last.safetensors"));

    // The same weights differ from a run with another seed (the comparison can fail).
    REQUIRE(run_command(train_command(data, dir / "other", settings + " --epochs 1 --seed 12") + " >/dev/null 2>&1") ==
            0);
    CHECK_FALSE(same_tensors(dir / "short/last.safetensors", dir / "other/last.safetensors"));

    // Settings of a resumed run cannot change; repeating them is fine.
    CHECK(run_stderr(tool("train") + " --resume " + (dir / "cut") + " --lr 0.1", &err) == 1);
    CHECK(count_lines(err) == 1);
    CHECK(err.find("--lr 0.1 differs") != std::string::npos);
    CHECK(run_command(tool("train") + " --resume " + (dir / "cut") + " --lr 0.003 --epochs 3 >/dev/null 2>&1") == 0);
    // A finished run's folder is not overwritten by a new run.
    CHECK(run_stderr(train_command(data, dir / "cut", "--epochs 1"), &err) == 1);
    CHECK(err.find("already holds a run") != std::string::npos);
  }

  TEST_CASE("pneuma-train --channels-last and --precision bf16") {
    TempDir dir("train-compute");
    const std::string data = make_data(dir);
    // SGD: its steps are proportional to the gradients, so the runs' differences stay the size
    // of the gradients' (Adam's normalized steps would turn sign flips of tiny gradients into lr).
    const std::string settings = "--optimizer sgd --lr 0.01 --epochs 2 --seed 3 --workers 0";
    REQUIRE(run_command(train_command(data, dir / "nchw", settings) + " >/dev/null 2>&1") == 0);
    REQUIRE(run_command(train_command(data, dir / "nhwc", settings + " --channels-last") + " >/dev/null 2>&1") == 0);
    REQUIRE(run_command(train_command(data, dir / "bf16", settings + " --precision bf16") + " >/dev/null 2>&1") == 0);

    // Channels-last changes only the order of float32 sums; bf16 changes the numbers. The
    // checkpoints hold the same tensors in logical order, float weights in float32 either way.
    const io::Safetensors nchw = io::load_safetensors(dir / "nchw/last.safetensors");
    const io::Safetensors nhwc = io::load_safetensors(dir / "nhwc/last.safetensors");
    const io::Safetensors bf16 = io::load_safetensors(dir / "bf16/last.safetensors");
    REQUIRE(nchw.tensors.size() == nhwc.tensors.size());
    REQUIRE(nchw.tensors.size() == bf16.tensors.size());
    double norm = 0, layout_diff = 0, precision_diff = 0;  // squared L2 over all float weights
    for (size_t i = 0; i < nchw.tensors.size(); ++i) {
      const Tensor& reference = nchw.tensors[i].second;
      CHECK(nhwc.tensors[i].second.dtype() == reference.dtype());
      CHECK(bf16.tensors[i].second.dtype() == reference.dtype());
      if (reference.dtype() != DType::Float32) continue;
      const std::vector<double> a = reference.to_vector(), b = nhwc.tensors[i].second.to_vector(),
                                c = bf16.tensors[i].second.to_vector();
      for (size_t j = 0; j < a.size(); ++j) {
        norm += a[j] * a[j];
        layout_diff += (a[j] - b[j]) * (a[j] - b[j]);
        precision_diff += (a[j] - c[j]) * (a[j] - c[j]);
      }
    }
    layout_diff = std::sqrt(layout_diff / norm);
    precision_diff = std::sqrt(precision_diff / norm);
    MESSAGE("relative L2 distance of the weights from the NCHW float32 run: channels-last ", layout_diff, ", bf16 ",
            precision_diff);
    CHECK(layout_diff < 1e-5);
    CHECK(precision_diff > 0);
    CHECK(precision_diff < 0.02);
    const auto nchw_lines = read_jsonl(dir / "nchw/metrics.jsonl"), bf16_lines = read_jsonl(dir / "bf16/metrics.jsonl");
    REQUIRE(bf16_lines.size() == 2);
    CHECK(std::abs(bf16_lines[1].at("train_loss").get<double>() - nchw_lines[1].at("train_loss").get<double>()) <
          0.05);

    // A channels-last run cut after one epoch and resumed ends bit for bit where the straight
    // run does: the optimizer state comes back in the parameters' layout.
    REQUIRE(run_command(train_command(data, dir / "cut", settings + " --channels-last --stop-after 1") +
                        " >/dev/null 2>&1") == 0);
    REQUIRE(run_command(tool("train") + " --resume " + (dir / "cut") + " >/dev/null 2>&1") == 0);
    CHECK(same_tensors(dir / "nhwc/last.safetensors", dir / "cut/last.safetensors"));
    CHECK(same_tensors(dir / "nhwc/train_state.safetensors", dir / "cut/train_state.safetensors"));
  }

  TEST_CASE("pneuma-train multi-class with --loss ce - --init from a binary run - --freeze") {
    TempDir dir("train-multiclass");
    const std::string data = make_data(dir);
    REQUIRE(run_command(train_command(data, dir / "binary", "--epochs 1 --no-augment") + " >/dev/null 2>&1") == 0);
    // normal / bacterial / viral as classes 0 / 1 / 2.
    data::Manifest m = data::read_manifest(data);
    for (data::Record& r : m.records) r.label = r.subtype == "normal" ? 0 : (r.subtype == "bacterial" ? 1 : 2);
    data::write_manifest(m, dir / "data/three.csv");
    std::string err;
    REQUIRE(
        run_stderr(
            train_command(
                dir / "data/three.csv", dir / "three",
                "--epochs 2 --loss ce --num-classes 3 --class-weights 1,2,2 --optimizer sgd --sampler balanced-class "
                "--lr 0.01 --freeze features.0 features.1 --init " +
                    (dir / "binary/best.safetensors") + " --folds 4 --fold 0"),
            &err) == 0);
    CHECK(err.find("--init loaded") != std::string::npos);
    CHECK(err.find("classifier.3") != std::string::npos);  // the 1-class output layer was skipped
    const auto lines = read_jsonl(dir / "three/metrics.jsonl");
    REQUIRE(lines.size() == 2);
    CHECK_FALSE(lines[0].contains("val_threshold"));
    const io::Safetensors best = io::load_safetensors(dir / "three/best.safetensors");
    CHECK(best.metadata.at("num_classes") == "3");
    // The frozen first conv kept the binary run's weights.
    const io::Safetensors init = io::load_safetensors(dir / "binary/best.safetensors");
    const Tensor a = best.find("features.0.weight"), b = init.find("features.0.weight");
    REQUIRE(a.defined());
    CHECK(std::memcmp(a.raw_data(), b.raw_data(), static_cast<size_t>(a.numel()) * 4) == 0);
  }

  TEST_CASE("pneuma-train bad input: one line on stderr and exit 1") {
    TempDir dir("train-bad");
    const std::string data = make_data(dir);
    std::string err;
    CHECK(run_command(tool("train") + " --help >/dev/null") == 0);
    struct Case {
      std::string command, expected;
    };
    std::filesystem::create_directories(dir / "normal_only/NORMAL");
    std::filesystem::copy_file(data::read_manifest(data).records.front().file, dir / "normal_only/NORMAL/a.jpeg");
    for (const Case& c : {
             Case{tool("train") + " --model resnet7 --data " + data + " --out " + (dir / "o1"),
                  "unknown model 'resnet7'"},
             Case{tool("train") + " --model simplecnn --data " + (dir / "missing.csv") + " --out " + (dir / "o2"),
                  "no such file or folder"},
             Case{tool("train") + " --model simplecnn --data " + (dir / "normal_only") + " --out " + (dir / "o3"),
                  "class 1 has no images"},
             Case{tool("train") + " --resume " + (dir / "nothing"), "has no train_state.safetensors"},
             Case{train_command(data, dir / "o5", "--loss bce --num-classes 3"), "--loss ce"},
             Case{train_command(data, dir / "o6", "--class-weights 1,x"), "--class-weights"},
             Case{train_command(data, dir / "o7", "--epochs 0"), "--epochs"},
         }) {
      INFO(c.command);
      CHECK(run_stderr(c.command, &err) == 1);
      CHECK(count_lines(err) == 1);
      CHECK(err.rfind("pneuma-train: ", 0) == 0);
      CHECK(err.find(c.expected) != std::string::npos);
    }
  }

  TEST_CASE("pneuma-train stops on a non-finite loss with the step number and keeps the last checkpoint") {
    TempDir dir("train-nan");
    const std::string data = make_data(dir);
    // Epoch 1 trains normally; a step schedule with gamma 1e30 then makes the rate absurd
    // and the weights overflow within a few steps of epoch 2.
    std::string err;
    CHECK(run_stderr(train_command(data, dir / "run",
                                   "--epochs 3 --optimizer sgd --lr 0.001 --scheduler step --step-size 1 "
                                   "--gamma 1e30 --no-augment"),
                     &err) == 1);
    INFO(err);
    const std::string last_line = err.substr(err.rfind('\n', err.size() - 2) + 1);
    CHECK(last_line.rfind("pneuma-train: loss is ", 0) == 0);
    CHECK(last_line.find(" at step ") != std::string::npos);
    CHECK(last_line.find("; kept the checkpoint of epoch 1 in ") != std::string::npos);
    // The step number counts from 1 over the run: epoch 2 starts at step 6 (5 batches per epoch).
    const int64_t step = std::stoll(last_line.substr(last_line.find(" at step ") + 9));
    CHECK(step >= 6);
    CHECK(step <= 10);
    // Epoch 1's checkpoint and state are intact and resumable.
    const io::SafetensorsHeader last = io::read_safetensors_header(dir / "run/last.safetensors");
    CHECK(last.metadata.at("epoch") == "1");
    CHECK(read_jsonl(dir / "run/metrics.jsonl").size() == 1);
    // An absurd rate from the start: nothing to keep, said so.
    CHECK(run_stderr(train_command(data, dir / "run0", "--epochs 1 --optimizer sgd --lr 1e30 --no-augment"), &err) ==
          1);
    CHECK(err.find("; kept nothing (the first epoch had not finished)") != std::string::npos);
  }
}
