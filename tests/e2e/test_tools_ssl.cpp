// pneuma-simclr, pneuma-features and pneuma-train-mlp end to end on tiny synthetic data:
// the SimCLR backbone feeds pneuma-train --init; features of a checkpoint feed the
// normal / viral / bacterial MLP.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "engine/data/dataset.h"
#include "engine/data/transforms.h"
#include "engine/core/generator.h"
#include "engine/io/checkpoint.h"
#include "engine/pneuma.h"
#include "engine/train/checkpointing.h"
#include "models/registry.h"
#include "tests/e2e/tools_util.h"

using namespace pneuma;
using namespace pneuma::testing;
namespace fs = std::filesystem;

namespace {

// A fast SimCLR run: resnet18 on 32-pixel views, one compute thread (bit-reproducible).
std::string simclr_command(const std::string& data, const std::string& out_flag, int epochs) {
  return tool_path("simclr") + " --model resnet18 --data " + data + " " + out_flag + " --img-size 32 --epochs " +
         std::to_string(epochs) + " --batch 16 --proj-dim 32 --threads 1 --workers 1 --seed 3";
}

// A resnet18 classifier checkpoint with the metadata pneuma-train writes.
std::string classifier_checkpoint(const TempDir& dir, int64_t num_classes) {
  manual_seed(5);
  const auto model = models::create_classifier("resnet18", num_classes);
  const std::string path = dir / ("r18-" + std::to_string(num_classes) + ".safetensors");
  io::save_checkpoint(*model, path,
                      train::checkpoint_metadata("resnet18", num_classes, 32, data::Normalization::imagenet(), 1));
  return path;
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-simclr: backbone without classifier for pneuma-train --init and a resumed run equals one run") {
    const std::string data = synthetic_set(48, 32) + "/train.csv";
    TempDir dir("simclr");
    std::string out;
    // interrupted after epoch 1, then resumed
    REQUIRE(run_command(simclr_command(data, "--out " + (dir / "a"), 2) + " --stop-after 1 2>/dev/null", &out) == 0);
    CHECK(read_json_lines(dir / "a/metrics.jsonl").size() == 1);
    REQUIRE(run_command(tool_path("simclr") + " --resume " + (dir / "a") + " --threads 1 2>/dev/null", &out) == 0);
    const nlohmann::json done = last_json_line(out);
    CHECK(done.at("done") == true);
    const std::vector<nlohmann::json> lines = read_json_lines(dir / "a/metrics.jsonl");
    REQUIRE(lines.size() == 2);
    for (size_t e = 0; e < lines.size(); ++e) {
      CHECK(lines[e].at("epoch") == e + 1);
      CHECK(std::isfinite(lines[e].at("loss").get<double>()));
      // NT-Xent over 2N = 32 rows is at most a little above log(2N - 1) for random embeddings
      CHECK(lines[e].at("loss").get<double>() > 0);
      CHECK(lines[e].at("loss").get<double>() < 2 * std::log(31.0));
      const double accuracy = lines[e].at("contrastive_accuracy");
      CHECK((accuracy >= 0 && accuracy <= 1));
    }
    // cosine schedule over 2 epochs: the second epoch runs at half the base rate
    CHECK(lines[1].at("lr").get<double>() == doctest::Approx(lines[0].at("lr").get<double>() / 2));

    // the backbone: every resnet18 tensor but the classifier, torchvision names
    const std::string backbone = dir / "a/backbone.safetensors";
    const io::SafetensorsHeader header = io::read_safetensors_header(backbone);
    CHECK(io::compare_state_dict(*models::create_classifier("resnet18", 0), header).clean());
    CHECK(header.metadata.at("model") == "resnet18");
    CHECK(header.metadata.at("epoch") == "2");
    // the full model: backbone and projection head
    const io::Safetensors full = io::load_safetensors(dir / "a/last.safetensors");
    CHECK(full.find("backbone.conv1.weight").defined());
    CHECK(full.find("head.0.weight").shape() == Shape{512, 512});
    CHECK(full.find("head.3.weight").shape() == Shape{32, 512});

    // an uninterrupted run gives the same weights bit for bit
    REQUIRE(run_command(simclr_command(data, "--out " + (dir / "b"), 2) + " 2>/dev/null") == 0);
    const io::Safetensors resumed = io::load_safetensors(backbone);
    const io::Safetensors straight = io::load_safetensors(dir / "b/backbone.safetensors");
    REQUIRE(resumed.tensors.size() == straight.tensors.size());
    for (size_t i = 0; i < resumed.tensors.size(); ++i) {
      INFO(resumed.tensors[i].first);
      CHECK(resumed.tensors[i].second.to_vector() == straight.tensors[i].second.to_vector());
    }

    // pneuma-train fine-tunes from it (the classifier is the only thing not loaded)
    REQUIRE(run_command(tool_path("train") + " --model resnet18 --data " + data + " --init " + backbone + " --out " +
                        (dir / "ft") + " --img-size 32 --epochs 1 --batch 16 --threads 1 --workers 1 2>&1", &out) == 0);
    CHECK(out.find("--init loaded 120 tensors") != std::string::npos);
    CHECK(out.find("missing key(s): \"fc.weight\", \"fc.bias\"") != std::string::npos);
    CHECK(fs::exists(dir / "ft/best.safetensors"));
  }

  TEST_CASE("pneuma-simclr --precision bf16 --channels-last trains and keeps float32 weights") {
    const std::string data = synthetic_set(48, 32) + "/train.csv";
    TempDir dir("simclr-compute");
    std::string out;
    REQUIRE(run_command(simclr_command(data, "--out " + (dir / "fp32"), 1) + " 2>/dev/null", &out) == 0);
    REQUIRE(run_command(simclr_command(data, "--out " + (dir / "mixed"), 1) +
                            " --precision bf16 --channels-last 2>/dev/null",
                        &out) == 0);
    const double fp32_loss = read_json_lines(dir / "fp32/metrics.jsonl").at(0).at("loss");
    const double mixed_loss = read_json_lines(dir / "mixed/metrics.jsonl").at(0).at("loss");
    MESSAGE("epoch-1 NT-Xent: float32 ", fp32_loss, ", bf16 channels-last ", mixed_loss);
    CHECK(mixed_loss != fp32_loss);  // bf16 did compute
    CHECK(std::abs(mixed_loss - fp32_loss) < 0.02 * fp32_loss);
    const io::Safetensors backbone = io::load_safetensors(dir / "mixed/backbone.safetensors");
    CHECK(backbone.find("conv1.weight").dtype() == DType::Float32);
    CHECK(backbone.find("conv1.weight").is_contiguous());  // checkpoints hold logical order
  }

  TEST_CASE("pneuma-simclr: bad input is one line on stderr and exit code 1") {
    const std::string data = synthetic_set(48, 32) + "/train.csv";
    TempDir dir("simclr-bad");
    std::string out;
    CHECK(run_command(tool_path("simclr") + " --model nope --data " + data + " --out " + (dir / "x") + " 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(out.find("pneuma-simclr: unknown model 'nope'") != std::string::npos);
    CHECK(run_command(tool_path("simclr") + " --data " + (dir / "none.csv") + " --out " + (dir / "x") + " 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(out.find("none.csv: no such file or folder") != std::string::npos);
    CHECK(run_command(tool_path("simclr") + " --resume " + (dir / "nothing") + " 2>&1", &out) == 1);
    CHECK(out.find("has no train_state.safetensors") != std::string::npos);
    CHECK(run_command(tool_path("simclr") + " --help >/dev/null") == 0);
  }

  TEST_CASE("pneuma-features: penultimate features with labels and subtypes and paths of a checkpoint") {
    const std::string data = synthetic_set(48, 32) + "/train.csv";
    TempDir dir("features");
    const std::string weights = classifier_checkpoint(dir, 1);
    std::string out;
    REQUIRE(run_command(tool_path("features") + " --weights " + weights + " --data " + data + " --out " +
                        (dir / "f/train.safetensors") + " --batch 20 --threads 1 --workers 1 2>/dev/null", &out) == 0);
    CHECK(last_json_line(out).at("samples") == 48);
    const io::Safetensors file = io::load_safetensors(dir / "f/train.safetensors");
    const Tensor features = file.find("features"), labels = file.find("labels"), subtypes = file.find("subtypes");
    REQUIRE(features.defined());
    CHECK(features.dtype() == DType::Float32);
    CHECK(features.shape() == Shape{48, 512});
    CHECK(labels.dtype() == DType::Int64);
    CHECK(labels.shape() == Shape{48});
    CHECK(subtypes.shape() == Shape{48});
    CHECK(file.metadata.at("subtype_names") == "normal,viral,bacterial");
    CHECK(file.metadata.at("model") == "resnet18");
    CHECK(file.metadata.at("img_size") == "32");
    const auto paths = nlohmann::json::parse(file.metadata.at("paths")).get<std::vector<std::string>>();
    REQUIRE(paths.size() == 48);

    // row i is image i of the manifest through the eval pipeline and the backbone
    const data::Manifest manifest = data::read_manifest(data);
    const std::vector<std::string> names{"normal", "viral", "bacterial"};
    const std::vector<int64_t> label_values = labels.to_indices(), subtype_values = subtypes.to_indices();
    for (size_t i = 0; i < 48; ++i) {
      CHECK(paths[i] == manifest.records[i].path);
      CHECK(label_values[i] == manifest.records[i].label);
      CHECK(names.at(static_cast<size_t>(subtype_values[i])) == manifest.records[i].subtype);
    }
    const auto model = models::create_classifier("resnet18", 1);
    io::load_checkpoint(*model, weights);
    model->eval();
    const data::ImageDataset dataset(manifest, data::Pipeline::eval(32));
    NoGradGuard no_grad;
    for (int64_t i : {0, 47}) {
      const std::vector<double> expected = model->features(dataset.get(i, 0).views[0].unsqueeze(0)).to_vector();
      const std::vector<double> actual = features.select(0, i).to_vector();
      double worst = 0;
      for (size_t k = 0; k < expected.size(); ++k) worst = std::max(worst, std::abs(actual[k] - expected[k]));
      CHECK(worst < 1e-4);
    }

    // a backbone without classifier (pneuma-simclr's) works as well
    const std::string backbone = dir / "backbone.safetensors";
    io::save_checkpoint(*models::create_classifier("resnet18", 0), backbone, {{"model", "resnet18"}, {"img_size", "32"}});
    CHECK(run_command(tool_path("features") + " --weights " + backbone + " --data " + data + " --out " +
                      (dir / "f/backbone.safetensors") + " --threads 1 --workers 0 2>/dev/null >/dev/null") == 0);
    CHECK(io::load_safetensors(dir / "f/backbone.safetensors").find("features").shape() == Shape{48, 512});

    // bad input
    CHECK(run_command(tool_path("features") + " --weights " + weights + " --model resnet34 --data " + data +
                      " --out " + (dir / "x.safetensors") + " 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(out.find("does not fit resnet34") != std::string::npos);
    CHECK(run_command(tool_path("features") + " --weights " + (dir / "none.safetensors") + " --data " + data +
                      " --out " + (dir / "x.safetensors") + " 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(run_command(tool_path("features") + " --weights " + weights + " --data " + (dir / "none") + " --out " +
                      (dir / "x.safetensors") + " 2>&1", &out) == 1);
    CHECK(out.find("no such file or folder") != std::string::npos);
    CHECK(run_command(tool_path("features") + " --help >/dev/null") == 0);
  }

  TEST_CASE("pneuma-train-mlp: normal-viral-bacterial MLP on features with per-class and macro AUROC") {
    const std::string data = synthetic_set(48, 32) + "/train.csv";
    TempDir dir("mlp");
    std::string out;
    REQUIRE(run_command(tool_path("features") + " --weights " + classifier_checkpoint(dir, 1) + " --data " + data +
                        " --out " + (dir / "train.safetensors") + " --threads 1 --workers 1 2>/dev/null >/dev/null") == 0);
    REQUIRE(run_command(tool_path("train-mlp") + " --features " + (dir / "train.safetensors") + " --out " +
                        (dir / "m") + " --epochs 4 --batch 8 --optimizer adam --lr 1e-3 --hidden 32,16 --threads 1 "
                        "2>/dev/null", &out) == 0);
    const nlohmann::json done = last_json_line(out);
    CHECK(done.at("classes") == nlohmann::json({"normal", "viral", "bacterial"}));
    const std::vector<nlohmann::json> lines = read_json_lines(dir / "m/metrics.jsonl");
    REQUIRE(lines.size() == 4);
    for (const nlohmann::json& line : lines) {
      const nlohmann::json& per_class = line.at("val_auroc");
      REQUIRE(per_class.size() == 3);
      double sum = 0;
      for (const char* name : {"normal", "viral", "bacterial"}) {
        const double auc = per_class.at(name);
        CHECK((auc >= 0 && auc <= 1));
        sum += auc;
      }
      CHECK(line.at("val_macro_auroc").get<double>() == doctest::Approx(sum / 3));
      CHECK(std::isfinite(line.at("train_loss").get<double>()));
      CHECK(std::isfinite(line.at("val_loss").get<double>()));
    }
    // best = lowest validation loss
    double lowest = 1e300;
    int64_t best_epoch = 0;
    for (const nlohmann::json& line : lines)
      if (line.at("val_loss").get<double>() < lowest) lowest = line.at("val_loss"), best_epoch = line.at("epoch");
    CHECK(done.at("best_epoch") == best_epoch);
    const io::Safetensors best = io::load_safetensors(dir / "m/best.safetensors");
    CHECK(best.find("0.weight").shape() == Shape{32, 512});
    CHECK(best.find("6.weight").shape() == Shape{3, 16});  // Linear, Sigmoid, Dropout, Linear, Sigmoid, Dropout, Linear
    CHECK(best.metadata.at("class_names") == "normal,viral,bacterial");
    CHECK(best.metadata.at("epoch") == std::to_string(best_epoch));
    CHECK(best.metadata.at("features_model") == "resnet18");

    // a separate validation file and the binary label as target
    REQUIRE(run_command(tool_path("train-mlp") + " --features " + (dir / "train.safetensors") + " --val-features " +
                        (dir / "train.safetensors") + " --target label --monitor val_auroc --out " + (dir / "m2") +
                        " --epochs 2 --hidden 8 --threads 1 2>/dev/null", &out) == 0);
    CHECK(read_json_lines(dir / "m2/metrics.jsonl").back().at("val_auroc").size() == 2);

    // features that separate the subtypes (a noisy cluster per class): the MLP learns them
    {
      const int64_t n = 90, d = 12;
      std::vector<double> values;
      std::vector<int64_t> subtypes;
      nlohmann::json paths = nlohmann::json::array();
      const std::vector<double> noise = Tensor::randn({n, d}, 17, DType::Float64).to_vector();
      for (int64_t i = 0; i < n; ++i) {
        const int64_t c = i % 3;
        subtypes.push_back(c);
        paths.push_back("img" + std::to_string(i) + ".png");
        for (int64_t k = 0; k < d; ++k)
          values.push_back((k % 3 == c ? 2.0 : 0.0) + 0.5 * noise[static_cast<size_t>(i * d + k)]);
      }
      io::save_safetensors(dir / "clusters.safetensors",
                           {{"features", Tensor::from_vector(values, {n, d})},
                            {"labels", Tensor::from_indices(std::vector<int64_t>(n, 0), {n})},
                            {"subtypes", Tensor::from_indices(subtypes, {n})}},
                           {{"subtype_names", "normal,viral,bacterial"}, {"paths", paths.dump()}});
      REQUIRE(run_command(tool_path("train-mlp") + " --features " + (dir / "clusters.safetensors") + " --out " +
                          (dir / "m3") + " --epochs 30 --optimizer adam --lr 1e-2 --hidden 16 --batch 16 --threads 1 "
                          "2>/dev/null", &out) == 0);
      CHECK(last_json_line(out).at("val").at("macro_auroc").get<double>() > 0.95);
      const std::vector<nlohmann::json> m3 = read_json_lines(dir / "m3/metrics.jsonl");
      CHECK(m3.back().at("val_loss").get<double>() < m3.front().at("val_loss").get<double>());
    }

    // bad input: no subtypes, missing file, unknown target
    io::save_safetensors(dir / "nosub.safetensors", {{"features", Tensor::randn({6, 4}, 1)},
                                                     {"labels", Tensor::from_indices({0, 1, 0, 1, 0, 1}, {6})}});
    CHECK(run_command(tool_path("train-mlp") + " --features " + (dir / "nosub.safetensors") + " --out " + (dir / "x") +
                      " 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(out.find("no 'subtypes' tensor") != std::string::npos);
    CHECK(run_command(tool_path("train-mlp") + " --features " + (dir / "none.safetensors") + " --out " + (dir / "x") +
                      " 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(run_command(tool_path("train-mlp") + " --features " + (dir / "train.safetensors") + " --target kind --out " +
                      (dir / "x") + " 2>&1", &out) == 1);
    CHECK(out.find("unknown --target 'kind'") != std::string::npos);
    CHECK(run_command(tool_path("train-mlp") + " --help >/dev/null") == 0);
  }
}
