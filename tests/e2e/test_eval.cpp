// pneuma-eval end to end (predictions CSV and checkpoint + images; values against
// scikit-learn, the ROC CSV and PNG, the threshold written to the checkpoint, bad input)
// and train::predict, the inference helper under it.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/image.h"
#include "engine/data/loader.h"
#include "engine/data/manifest.h"
#include "engine/data/rng.h"
#include "engine/data/sampler.h"
#include "engine/io/checkpoint.h"
#include "engine/metrics/classification.h"
#include "engine/train/predict.h"
#include "models/registry.h"
#include "tests/data/data_util.h"
#include "tests/metrics/sklearn.h"

using namespace pneuma;
using nlohmann::json;
using pneuma::testing::read_bytes;
using pneuma::testing::run_command;
using pneuma::testing::TempDir;
using pneuma::testing::write_text;

namespace {

std::string eval_tool() { return std::string(PNEUMA_BINARY_DIR) + "/bin/pneuma-eval"; }

// Runs pneuma-eval; returns the exit code and the parsed stdout JSON (null when none).
int run_eval(const std::string& args, json* out = nullptr) {
  std::string text;
  const int code = run_command(eval_tool() + " " + args + " 2>/dev/null", &text);
  if (out) *out = code == 0 ? json::parse(text) : json();
  return code;
}

// A failing run: exit code and stderr, which must be one line "pneuma-eval: ...".
int run_eval_error(const std::string& args, std::string* error) {
  return run_command(eval_tool() + " " + args + " 2>&1 >/dev/null", error);
}

void check_one_line_error(const std::string& args, const std::string& expected) {
  std::string error;
  INFO("pneuma-eval ", args);
  CHECK(run_eval_error(args, &error) == 1);
  INFO("stderr: ", error);
  CHECK(error.rfind("pneuma-eval: ", 0) == 0);
  CHECK(std::count(error.begin(), error.end(), '\n') == 1);
  CHECK(error.find(expected) != std::string::npos);
}

struct Scored {
  std::vector<double> scores;
  std::vector<int64_t> labels;
};

// Binary scores with ties (two decimals) and a weak signal, as a predictions CSV.
Scored write_binary_predictions(const std::string& path, int64_t n, uint64_t seed) {
  data::Rng rng(seed);
  Scored s;
  std::string text = "path,label,score\n";
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i < 2 ? i : (rng.bernoulli(0.4) ? 1 : 0);
    const double z = 1.2 * static_cast<double>(label) + rng.normal();
    const double score = std::round(100.0 / (1.0 + std::exp(-z))) / 100.0;
    s.scores.push_back(score);
    s.labels.push_back(label);
    char line[96];
    std::snprintf(line, sizeof line, "images/%03lld.png,%lld,%.2f\n", static_cast<long long>(i),
                  static_cast<long long>(label), score);
    text += line;
  }
  write_text(path, text);
  return s;
}

void check_metrics_json(const json& actual, const json& expected) {
  for (const char* key : {"tp", "fp", "tn", "fn"}) CHECK_MESSAGE(actual[key] == expected[key], key);
  for (const char* key : {"accuracy", "precision", "recall", "specificity", "f1"})
    CHECK_MESSAGE(actual[key].get<double>() == doctest::Approx(expected[key].get<double>()).epsilon(1e-12), key);
  CHECK(actual["sensitivity"] == actual["recall"]);
  CHECK(actual["confusion_matrix"] == json{{expected["tn"], expected["fp"]}, {expected["fn"], expected["tp"]}});
}

// 32x32 gray images: class 1 has a bright blob (a crude "opacity"), so an untrained
// network's scores still differ by class.
data::Manifest write_images(const TempDir& dir, int64_t n, uint64_t seed) {
  std::filesystem::create_directories(dir / "images");
  data::Rng rng(seed);
  std::string csv = "path,label\n";
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i % 2;
    data::Image image(1, 32, 32);
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 32; ++x) {
        const double blob = label ? 0.5 * std::exp(-((x - 16.0) * (x - 16.0) + (y - 14.0) * (y - 14.0)) / 40.0) : 0.0;
        image.at(0, y, x) = static_cast<float>(std::clamp(0.3 + blob + 0.1 * rng.normal(), 0.0, 1.0));
      }
    const std::string name = "images/" + std::to_string(i) + ".png";
    data::write_png(image, dir / name);
    csv += name + "," + std::to_string(label) + "\n";
  }
  write_text(dir / "data.csv", csv);
  return data::read_manifest(dir / "data.csv");
}

std::vector<std::vector<std::string>> read_csv_rows(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::stringstream fields_in(line);
    for (std::string f; std::getline(fields_in, f, ',');) fields.push_back(f);
    rows.push_back(fields);
  }
  return rows;
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-eval --predictions: binary metrics equal scikit-learn and the ROC CSV and PNG") {
    TempDir dir("eval-binary");
    const Scored s = write_binary_predictions(dir / "p.csv", 120, 5);
    json youden, sensitivity, fixed;
    REQUIRE(run_eval("--predictions " + (dir / "p.csv") + " --roc-csv " + (dir / "roc.csv") + " --roc-png " +
                         (dir / "roc.png") + " --out " + (dir / "out.json") + " --bootstrap 300 --seed 4",
                     &youden) == 0);
    REQUIRE(run_eval("--predictions " + (dir / "p.csv") + " --choose-threshold sensitivity --target-sensitivity 0.8 "
                     "--bootstrap 50",
                     &sensitivity) == 0);
    REQUIRE(run_eval("--predictions " + (dir / "p.csv") + " --threshold 0.42 --bootstrap 50", &fixed) == 0);

    const json expected = testing::sklearn_results(json::array({{{"kind", "binary"},
                                                                 {"scores", s.scores},
                                                                 {"labels", s.labels},
                                                                 {"thresholds", {0.5, 0.42}},
                                                                 {"targets", {0.8}}}}))[0];
    CHECK(youden["task"] == "binary");
    CHECK(youden["n"] == 120);
    CHECK(youden["positives"] == std::count(s.labels.begin(), s.labels.end(), int64_t{1}));
    const double auroc = youden["auroc"];
    CHECK(auroc == doctest::Approx(expected["auroc"].get<double>()).epsilon(1e-12));
    const double low = youden["auroc_ci95"][0], high = youden["auroc_ci95"][1];
    CHECK(low < auroc);
    CHECK(auroc < high);
    CHECK(high - low < 0.4);
    check_metrics_json(youden["at_0_5"], expected["at"][0]);

    CHECK(youden["threshold_source"] == "chosen_here");
    CHECK(youden["threshold_method"] == "youden");
    CHECK(youden["threshold"].get<double>() == expected["youden"].get<double>());
    CHECK(sensitivity["threshold"].get<double>() == expected["for_sensitivity"][0].get<double>());
    CHECK(sensitivity["at_threshold"]["recall"].get<double>() >= 0.8);
    CHECK(fixed["threshold_source"] == "argument");
    check_metrics_json(fixed["at_threshold"], expected["at"][1]);

    // The --out file holds the same object as stdout.
    std::ifstream out_file(dir / "out.json");
    CHECK(json::parse(out_file) == youden);

    // ROC CSV: sklearn's curve, point by point.
    const auto rows = read_csv_rows(dir / "roc.csv");
    REQUIRE(rows.size() == expected["fpr"].size() + 1);
    CHECK(rows[0] == std::vector<std::string>{"fpr", "tpr", "threshold"});
    for (size_t i = 1; i < rows.size(); ++i) {
      CHECK(std::stod(rows[i][0]) == expected["fpr"][i - 1].get<double>());
      CHECK(std::stod(rows[i][1]) == expected["tpr"][i - 1].get<double>());
      CHECK(std::stod(rows[i][2]) == expected["thresholds"][i - 1].get<double>());
    }
    // The PNG: a real PNG file of a sensible size.
    const std::vector<uint8_t> png = read_bytes(dir / "roc.png");
    REQUIRE(png.size() > 5000);
    CHECK(std::vector<uint8_t>(png.begin(), png.begin() + 8) ==
          std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
    const data::Image drawn = data::read_image(dir / "roc.png");
    CHECK(drawn.width >= 300);
    CHECK(drawn.height >= 300);
  }

  TEST_CASE("pneuma-eval --predictions: multi-class one-vs-rest metrics equal scikit-learn") {
    TempDir dir("eval-multi");
    data::Rng rng(9);
    std::vector<std::vector<double>> probabilities;
    std::vector<int64_t> labels;
    std::string text = "path,label,score_0,score_1,score_2\n";
    for (int i = 0; i < 60; ++i) {
      const int64_t label = i < 3 ? i : rng.integer(0, 2);
      std::vector<double> p(3);
      double sum = 0;
      for (int64_t c = 0; c < 3; ++c) sum += p[c] = std::exp(std::round(rng.normal()) + (c == label ? 0.8 : 0.0));
      char line[160];
      std::snprintf(line, sizeof line, "x%d.png,%lld,%.17g,%.17g,%.17g\n", i, static_cast<long long>(label),
                    p[0] / sum, p[1] / sum, p[2] / sum);
      text += line;
      probabilities.push_back({p[0] / sum, p[1] / sum, p[2] / sum});
      labels.push_back(label);
    }
    write_text(dir / "p.csv", text);
    json report;
    REQUIRE(run_eval("--predictions " + (dir / "p.csv") + " --roc-csv " + (dir / "roc.csv"), &report) == 0);
    const json expected = testing::sklearn_results(
        json::array({{{"kind", "multiclass"}, {"probabilities", probabilities}, {"labels", labels}}}))[0];
    CHECK(report["task"] == "multiclass");
    CHECK(report["num_classes"] == 3);
    CHECK(report["macro_auroc"].get<double>() == doctest::Approx(expected["macro_auroc"].get<double>()).epsilon(1e-12));
    for (size_t c = 0; c < 3; ++c)
      CHECK(report["per_class_auroc"][c].get<double>() ==
            doctest::Approx(expected["per_class_auroc"][c].get<double>()).epsilon(1e-12));
    CHECK(report["confusion_matrix"] == expected["confusion"]);
    CHECK(report["accuracy"].get<double>() == doctest::Approx(expected["accuracy"].get<double>()));
    CHECK(report["macro_f1"].get<double>() == doctest::Approx(expected["macro_f1"].get<double>()));
    const auto rows = read_csv_rows(dir / "roc.csv");
    REQUIRE(rows.size() > 4);
    CHECK(rows[0] == std::vector<std::string>{"class", "fpr", "tpr", "threshold"});
    CHECK(rows.back()[0] == "2");
  }

  TEST_CASE("pneuma-eval --weights: a checkpoint on images and its predictions CSV and the threshold written to it") {
    TempDir dir("eval-ckpt");
    const data::Manifest manifest = write_images(dir, 24, 3);
    const auto model = models::create_classifier("simplecnn", 1);
    const std::string weights = dir / "model.safetensors";
    io::save_checkpoint(*model, weights, {{"model", "simplecnn"}, {"num_classes", "1"}, {"img_size", "32"}});

    json first;
    REQUIRE(run_eval("--weights " + weights + " --data " + (dir / "data.csv") + " --batch 5 --workers 1 --threads 1 " +
                         "--save-predictions " + (dir / "pred.csv") + " --bootstrap 100",
                     &first) == 0);
    CHECK(first["n"] == 24);
    CHECK(first["positives"] == 12);
    CHECK(first["threshold_source"] == "chosen_here");
    CHECK(first["source"]["weights"] == weights);

    // The saved scores are the model's: sigmoid of its logit on each image, preprocessed
    // as documented (gray -> 3 channels, 32x32 already, ImageNet mean/std).
    train::Predictions saved = train::read_predictions_csv(dir / "pred.csv");
    REQUIRE(saved.size() == 24);
    model->eval();
    for (int64_t i = 0; i < 24; ++i) {
      const data::Record& r = manifest.records[static_cast<size_t>(i)];
      const data::Image image = data::to_channels(data::read_image(r.file, 1), 3);
      const Tensor x = data::to_tensor(image, 3, data::Normalization::imagenet()).unsqueeze(0);
      const double logit = models::forward_any(*model, x).item();
      CHECK(saved.labels[static_cast<size_t>(i)] == r.label);
      CHECK(saved.probabilities[static_cast<size_t>(i)][0] == doctest::Approx(1 / (1 + std::exp(-logit))).epsilon(1e-5));
    }
    // ... and --predictions on that file gives the same report.
    json again;
    REQUIRE(run_eval("--predictions " + (dir / "pred.csv") + " --bootstrap 100", &again) == 0);
    CHECK(again["auroc"] == first["auroc"]);
    CHECK(again["auroc_ci95"] == first["auroc_ci95"]);
    CHECK(again["at_threshold"] == first["at_threshold"]);

    // --write-threshold stores the threshold chosen here; later runs use it.
    json written;
    REQUIRE(run_eval("--weights " + weights + " --data " + (dir / "data.csv") + " --workers 0 --bootstrap 50 " +
                         "--choose-threshold sensitivity --target-sensitivity 1 --write-threshold",
                     &written) == 0);
    CHECK(written["threshold_written"] == weights);
    const io::SafetensorsHeader header = io::read_safetensors_header(weights);
    REQUIRE(header.metadata.count("threshold"));
    CHECK(std::stod(header.metadata.at("threshold")) == written["threshold"].get<double>());
    CHECK(header.metadata.at("threshold_method") == "sensitivity>=1");
    CHECK(header.metadata.at("model") == "simplecnn");  // the rest of the metadata is kept
    // (Run from the data's folder with bare file names, as a user would type them.)
    std::string reused_text;
    REQUIRE(run_command("cd " + dir.str() + " && " + eval_tool() + " --weights model.safetensors --data data.csv " +
                            "--workers 0 --bootstrap 50 --save-predictions bare.csv 2>/dev/null",
                        &reused_text) == 0);
    const json reused = json::parse(reused_text);
    CHECK(read_csv_rows(dir / "bare.csv").at(1).at(0) == "images/0.png");
    CHECK(reused["threshold_source"] == "checkpoint");
    CHECK(reused["threshold"] == written["threshold"]);
    CHECK(reused["at_threshold"]["recall"].get<double>() == 1.0);
    // The weights themselves are unchanged.
    const auto reloaded = models::create_classifier("simplecnn", 1);
    io::load_checkpoint(*reloaded, weights);
    const auto a = model->state_dict(), b = reloaded->state_dict();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].second.to_vector() == b[i].second.to_vector());
  }

  TEST_CASE("train::predict: model outputs per sample in order and training flags restored and the CSV round trip") {
    TempDir dir("predict");
    const data::Manifest manifest = write_images(dir, 10, 4);
    const auto model = models::create_classifier("simplecnn", 3);
    model->train();
    // A frozen BatchNorm held in eval inside a training model must stay so.
    nn::Module* held = nullptr;
    for (const auto& [name, module] : model->named_modules())
      if (name == "features.1") held = module;
    REQUIRE(held != nullptr);
    held->eval();

    auto dataset = std::make_shared<data::ImageDataset>(manifest, data::Pipeline::eval(32));
    data::LoaderOptions options;
    options.batch_size = 4;
    options.workers = 2;
    data::DataLoader loader(dataset, std::make_shared<data::SequentialSampler>(10), options);
    std::vector<int64_t> progress;
    const train::Predictions p = train::predict(*model, loader, 0, [&](int64_t done, int64_t total) {
      progress.push_back(done);
      CHECK(total == 3);
    });
    CHECK(progress == std::vector<int64_t>{1, 2, 3});
    CHECK(model->is_training());
    CHECK_FALSE(held->is_training());
    for (const auto& [name, module] : model->named_modules()) CHECK_MESSAGE(module->is_training() == (module != held), name);

    REQUIRE(p.size() == 10);
    CHECK(p.num_outputs() == 3);
    CHECK(p.indices == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(p.labels == manifest.labels());
    CHECK_THROWS_WITH_AS(p.positive_scores(), doctest::Contains("1 or 2 outputs"), Error);
    model->eval();
    for (int64_t i = 0; i < 10; ++i) {
      const Tensor x = dataset->get(i, 0).views[0].unsqueeze(0);
      const std::vector<double> logits = models::forward_any(*model, x).to_vector();
      double sum = 0;
      for (double l : logits) sum += std::exp(l);
      for (size_t c = 0; c < 3; ++c)
        CHECK(p.probabilities[static_cast<size_t>(i)][c] == doctest::Approx(std::exp(logits[c]) / sum).epsilon(1e-5));
    }

    // Written relative to the CSV's folder, read back bit-exactly.
    std::filesystem::create_directories(dir / "out");
    train::write_predictions_csv(p, manifest, dir / "out/pred.csv");
    data::Manifest as_manifest;
    const train::Predictions back = train::read_predictions_csv(dir / "out/pred.csv", &as_manifest);
    CHECK(back.labels == p.labels);
    CHECK(back.probabilities == p.probabilities);
    REQUIRE(as_manifest.size() == 10);
    CHECK(as_manifest.records[3].path == "../images/3.png");
    CHECK(as_manifest.records[3].file == manifest.records[3].file);
    CHECK(as_manifest.extra_columns == std::vector<std::string>{"score_0", "score_1", "score_2"});
  }

  TEST_CASE("pneuma-eval: bad input is one line on stderr and exit code 1") {
    TempDir dir("eval-bad");
    write_binary_predictions(dir / "p.csv", 30, 2);
    CHECK(run_command(eval_tool() + " --help >/dev/null 2>&1") == 0);
    check_one_line_error("", "give --predictions CSV, or --weights CKPT");
    check_one_line_error("--predictions " + (dir / "missing.csv"), "missing.csv': no such file");
    write_text(dir / "one_class.csv", "path,label,score\na.png,1,0.2\nb.png,1,0.7\n");
    check_one_line_error("--predictions " + (dir / "one_class.csv"), "AUROC needs both classes");
    write_text(dir / "label2.csv", "path,label,score\na.png,0,0.2\nb.png,1,0.7\nc.png,2,0.5\n");
    check_one_line_error("--predictions " + (dir / "label2.csv"), "line 4: label 2 does not fit 1 score column(s)");
    write_text(dir / "bad_score.csv", "path,label,score\na.png,0,0.2\nb.png,1,abc\n");
    check_one_line_error("--predictions " + (dir / "bad_score.csv"), "line 3: score 'abc' is not a finite number");
    write_text(dir / "no_score.csv", "path,label,prob\na.png,0,0.2\nb.png,1,0.3\n");
    check_one_line_error("--predictions " + (dir / "no_score.csv"), "needs a 'score' column");
    write_text(dir / "short_row.csv", "path,label,score\na.png,0,0.2\nb.png,1\n");
    check_one_line_error("--predictions " + (dir / "short_row.csv"), "line 3: expected 3 fields, got 2");
    check_one_line_error("--predictions " + (dir / "p.csv") + " --roc-png " + (dir / "r.png") +
                             " --python /nonexistent/python3",
                         "--roc-png draws with matplotlib through /nonexistent/python3");
    check_one_line_error("--predictions " + (dir / "p.csv") + " --weights x.safetensors", "excludes");
    check_one_line_error("--predictions " + (dir / "p.csv") + " --device tpu", "unknown device 'tpu'");
    check_one_line_error("--weights " + (dir / "missing.safetensors") + " --data " + (dir / "p.csv"),
                         "missing.safetensors");
    const auto model = models::create_classifier("simplecnn", 1);
    io::save_checkpoint(*model, dir / "m.safetensors", {{"model", "simplecnn"}, {"num_classes", "1"}});
    check_one_line_error("--weights " + (dir / "m.safetensors") + " --data " + (dir / "nothing"),
                         "nothing': no such file or folder");
    // Every missing image is listed, on the one line.
    check_one_line_error("--weights " + (dir / "m.safetensors") + " --data " + (dir / "label2.csv"),
                         "a.png: line 2: image file does not exist; ");
    check_one_line_error("--weights " + (dir / "m.safetensors") + " --data " + (dir / "label2.csv") + " --skip-bad",
                         "label2.csv': no images");
  }
}
