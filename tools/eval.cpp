// pneuma-eval: classification metrics of a model on a labelled image set, or of a
// predictions CSV, as one JSON object (equal to scikit-learn's; see
// engine/metrics/classification.h).
//
// Binary (one score per sample, or two softmax columns): AUROC with a percentile
// bootstrap 95% interval, and accuracy / precision / recall (sensitivity) / specificity /
// F1 / confusion matrix at 0.5 and at the calibrated threshold. That threshold is
// --threshold when given, else the checkpoint's metadata "threshold" (chosen on the
// validation set when the model was trained), else one chosen on THIS data
// (--choose-threshold youden|sensitivity), which the output says; --write-threshold
// chooses one on this data and stores it in the checkpoint's metadata.
// Multi-class (three or more columns): one-vs-rest AUROC per class and their macro mean,
// accuracy, confusion matrix, per-class precision / recall / F1 (prediction = argmax).
// --roc-csv writes the curve(s); --roc-png draws them with matplotlib through
// tools/plot_roc.py.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/cpu/parallel.h"
#include "engine/data/dataset.h"
#include "engine/data/image.h"
#include "engine/data/loader.h"
#include "engine/data/manifest.h"
#include "engine/data/sampler.h"
#include "engine/io/checkpoint.h"
#include "engine/metrics/classification.h"
#include "engine/train/predict.h"
#include "engine/train/progress.h"
#include "models/registry.h"
#include "models/unet.h"
#include "tools/common/checkpoint_metadata.h"
#include "tools/common/cli.h"
#include "tools/common/device.h"
#include "tools/common/error_line.h"

using namespace pneuma;
namespace fs = std::filesystem;

namespace {

#ifdef PNEUMA_SOURCE_DIR
const char* const kDefaultPlotScript = PNEUMA_SOURCE_DIR "/tools/plot_roc.py";
#else
const char* const kDefaultPlotScript = "";
#endif

struct Options {
  std::string predictions_csv;
  std::string weights, model, data;
  int64_t num_classes = 0, img_size = 224, batch = 32;
  bool img_size_given = false;
  int threads = 0, workers = 2;
  std::string device = "cpu";
  bool skip_bad = false;
  std::string save_predictions;
  std::optional<double> threshold;
  std::string choose_threshold = "youden";
  double target_sensitivity = 0.9;
  bool write_threshold = false;
  int64_t bootstrap = 1000;
  uint64_t seed = 0;
  std::string out_json, roc_csv, roc_png, title;
  std::string plot_script = kDefaultPlotScript, python = "/usr/bin/python3";
};

// Scores and labels with where each row came from, for error messages.
struct Evaluation {
  train::Predictions predictions;
  data::Manifest manifest;  // rows in prediction order (index i -> record i)
  std::string source;       // "predictions 'x.csv'" or "data 'dir'"
  std::optional<double> checkpoint_threshold;
  int64_t num_outputs = 0;  // K: score columns / model outputs
  int64_t skipped = 0;      // bad files left out (--skip-bad)
};

std::string exact_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

void write_text(const std::string& path, const std::string& text) {
  data::write_file_bytes(path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

// "predictions 'p.csv': line 7" or "data 'dir': images/x.png" for sample i.
std::string where(const Evaluation& e, size_t i) {
  const int64_t index = e.predictions.indices.at(i);
  const data::Record& r = e.manifest.records.at(static_cast<size_t>(index));
  if (r.line > 0) return detail::concat(e.source, ": line ", r.line);
  return detail::concat(e.source, ": ", r.path);
}

// Labels must fit the score columns: 0/1 for a binary task, 0..K-1 for K classes.
void check_labels(const Evaluation& e) {
  const int64_t k = e.num_outputs;
  const int64_t classes = k == 1 ? 2 : k;
  for (size_t i = 0; i < e.predictions.labels.size(); ++i) {
    const int64_t label = e.predictions.labels[i];
    PNEUMA_CHECK(label < classes, where(e, i), ": label ", label, " does not fit ", k, " score column(s) (classes 0..",
                 classes - 1, ")");
  }
}

std::string short_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", v);
  return text;
}

Evaluation from_predictions_csv(const Options& o) {
  Evaluation e;
  e.source = "predictions '" + o.predictions_csv + "'";
  e.predictions = train::read_predictions_csv(o.predictions_csv, &e.manifest);
  e.num_outputs = e.predictions.num_outputs();
  return e;
}

// A folder in the Kermany layout (NORMAL/, PNEUMONIA/) or a CSV manifest. Every bad row
// or file is reported at once, or left out and counted with --skip-bad.
data::Manifest open_eval_data(const Options& o, int64_t* skipped) {
  std::error_code ec;
  PNEUMA_CHECK(fs::exists(o.data, ec), "--data '", o.data, "': no such file or folder");
  data::Manifest manifest = fs::is_directory(o.data, ec) ? data::scan_folder(o.data) : data::read_manifest(o.data, true);
  // Headers only: a missing or unreadable file is reported now, by path and line, and a
  // file corrupt past its header is reported by the loader when it is decoded.
  data::ScanOptions scan;
  scan.decode = false;
  scan.threads = std::max(1, o.threads);
  manifest = data::check_manifest(std::move(manifest), o.skip_bad, scan, skipped);
  PNEUMA_CHECK(manifest.size() > 0, "--data '", o.data, "': no images");
  return manifest;
}

Evaluation from_checkpoint(const Options& o, Device device) {
  Evaluation e;
  e.source = "data '" + o.data + "'";
  const io::SafetensorsHeader header = io::read_safetensors_header(o.weights);
  const tools::ClassifierSpec spec =
      tools::classifier_spec(header.metadata, o.weights, o.model, o.num_classes,
                             o.img_size_given ? std::optional<int64_t>(o.img_size) : std::nullopt);
  e.checkpoint_threshold = spec.threshold;
  e.num_outputs = spec.num_classes;
  const auto model = models::create_model(spec.model, spec.num_classes);
  PNEUMA_CHECK(!dynamic_cast<const models::UNet*>(model.get()), spec.model,
               " is a segmentation model; pneuma-eval takes classifiers");
  io::load_checkpoint(*model, o.weights);
  model->to(device);  // train::predict uploads each batch to the model's device

  e.manifest = open_eval_data(o, &e.skipped);
  // The same label check as after prediction (check_labels), before spending the time.
  for (size_t i = 0; i < e.manifest.records.size(); ++i) {
    e.predictions.labels.push_back(e.manifest.records[i].label);
    e.predictions.indices.push_back(static_cast<int64_t>(i));
  }
  check_labels(e);
  data::Pipeline pipeline = data::Pipeline::eval(spec.img_size);
  pipeline.normalize(spec.normalization);
  auto dataset = std::make_shared<data::ImageDataset>(e.manifest, pipeline);
  auto sampler = std::make_shared<data::SequentialSampler>(dataset->size());
  data::LoaderOptions loader_options;
  loader_options.batch_size = o.batch;
  loader_options.workers = o.workers;
  loader_options.pin_memory = device.is_cuda();
  data::DataLoader loader(dataset, sampler, loader_options);
  train::ProgressBar progress("pneuma-eval", loader.batches_per_epoch());
  e.predictions = train::predict(*model, loader, 0, [&](int64_t done, int64_t) { progress.update(done); });
  progress.finish();
  if (!o.save_predictions.empty()) train::write_predictions_csv(e.predictions, e.manifest, o.save_predictions);
  return e;
}

// ---- ROC files

std::string roc_csv_text(const std::vector<metrics::RocCurve>& curves, bool with_class) {
  std::string text = with_class ? "class,fpr,tpr,threshold\n" : "fpr,tpr,threshold\n";
  for (size_t c = 0; c < curves.size(); ++c)
    for (size_t i = 0; i < curves[c].fpr.size(); ++i)
      text += (with_class ? std::to_string(c) + "," : std::string()) + exact_number(curves[c].fpr[i]) + "," +
              exact_number(curves[c].tpr[i]) + "," + exact_number(curves[c].thresholds[i]) + "\n";
  return text;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// Runs tools/plot_roc.py on a ROC CSV; any failure is one line naming what is missing.
void draw_roc_png(const Options& o, const std::string& csv_text, const std::vector<std::string>& extra_args) {
  PNEUMA_CHECK(access(o.python.c_str(), X_OK) == 0, "--roc-png draws with matplotlib through ", o.python,
               ", which is not an executable here (install python3-matplotlib or pass --python)");
  std::error_code ec;
  PNEUMA_CHECK(!o.plot_script.empty() && fs::is_regular_file(o.plot_script, ec), "--roc-png: plot script '",
               o.plot_script, "' not found (pass --plot-script PATH to tools/plot_roc.py)");
  std::string csv = o.roc_csv;
  std::optional<fs::path> temporary;
  if (csv.empty()) {
    temporary = fs::path(o.roc_png + ".roc" + std::to_string(getpid()) + ".csv");
    csv = temporary->string();
    write_text(csv, csv_text);
  }
  std::string command = shell_quote(o.python) + " " + shell_quote(o.plot_script) + " " + shell_quote(csv) + " " +
                        shell_quote(o.roc_png);
  for (const std::string& a : extra_args) command += " " + shell_quote(a);
  command += " 2>&1";
  std::string output;
  int status = -1;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    while (size_t got = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, got);
    status = pclose(pipe);
  }
  if (temporary) fs::remove(*temporary, ec);
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  const std::string last_line = output.substr(output.find_last_of('\n') == std::string::npos
                                                  ? 0
                                                  : output.find_last_of('\n') + 1);
  const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  PNEUMA_CHECK(code != 3, "--roc-png needs matplotlib for ", o.python, " (python3-matplotlib): ", last_line);
  PNEUMA_CHECK(code == 0, "--roc-png: ", o.plot_script, " failed (exit ", code, "): ", last_line);
}

std::string default_title(const Options& o) {
  const std::string& from = o.predictions_csv.empty() ? o.weights : o.predictions_csv;
  return "ROC - " + fs::path(from).filename().string();
}

// ---- reports

nlohmann::json binary_report(const Options& o, const Evaluation& e) {
  const std::vector<double> scores = e.predictions.positive_scores();
  const std::vector<int64_t>& labels = e.predictions.labels;
  const int64_t positives = std::count(labels.begin(), labels.end(), int64_t{1});
  const int64_t n = static_cast<int64_t>(labels.size());
  PNEUMA_CHECK(positives > 0 && positives < n, e.source, ": AUROC needs both classes, but all ", n,
               " labels are ", positives > 0 ? 1 : 0);

  nlohmann::json out = {{"task", "binary"}, {"n", n}, {"positives", positives}, {"negatives", n - positives}};
  const double auroc = metrics::roc_auc(scores, labels);
  out["auroc"] = auroc;
  out["auroc_ci95"] = metrics::to_json(metrics::bootstrap_roc_auc(scores, labels, o.bootstrap, 0.95, o.seed));
  out["bootstrap"] = {{"resamples", o.bootstrap}, {"seed", o.seed}, {"method", "percentile"}};
  out["at_0_5"] = metrics::to_json(metrics::binary_metrics(scores, labels, 0.5));

  double threshold = 0;
  if (o.threshold) {
    threshold = *o.threshold;
    out["threshold_source"] = "argument";
  } else if (e.checkpoint_threshold && !o.write_threshold) {
    threshold = *e.checkpoint_threshold;
    out["threshold_source"] = "checkpoint";
  } else {
    // Chosen on the data being evaluated: optimistic as a test result, which the
    // output says; a threshold chosen on validation data belongs in the checkpoint.
    out["threshold_source"] = "chosen_here";
    out["threshold_method"] = o.choose_threshold;
    if (o.choose_threshold == "youden") {
      threshold = metrics::youden_threshold(scores, labels);
    } else {
      threshold = metrics::threshold_for_sensitivity(scores, labels, o.target_sensitivity);
      out["target_sensitivity"] = o.target_sensitivity;
    }
  }
  out["threshold"] = threshold;
  const metrics::BinaryMetrics calibrated = metrics::binary_metrics(scores, labels, threshold);
  out["at_threshold"] = metrics::to_json(calibrated);

  const metrics::RocCurve curve = metrics::roc_curve(scores, labels);
  const std::string csv_text = roc_csv_text({curve}, false);
  if (!o.roc_csv.empty()) write_text(o.roc_csv, csv_text);
  if (!o.roc_png.empty())
    draw_roc_png(o, csv_text,
                 {"--title", o.title.empty() ? default_title(o) : o.title, "--auroc", exact_number(auroc),
                  "--point", exact_number(1 - calibrated.specificity) + "," + exact_number(calibrated.recall),
                  "--point-label", "threshold " + short_number(threshold)});

  if (o.write_threshold) {
    io::Safetensors checkpoint = io::load_safetensors(o.weights);
    checkpoint.metadata["threshold"] = exact_number(threshold);
    checkpoint.metadata["threshold_method"] =
        o.choose_threshold == "youden" ? "youden" : "sensitivity>=" + exact_number(o.target_sensitivity);
    io::save_safetensors(o.weights, checkpoint.tensors, checkpoint.metadata);
    out["threshold_written"] = o.weights;
  }
  return out;
}

nlohmann::json multiclass_report(const Options& o, const Evaluation& e) {
  const metrics::MulticlassMetrics m = metrics::multiclass_metrics(e.predictions.probabilities, e.predictions.labels);
  nlohmann::json out = {{"task", "multiclass"},
                        {"n", e.predictions.size()},
                        {"num_classes", e.num_outputs}};
  std::vector<int64_t> counts(static_cast<size_t>(e.num_outputs), 0);
  for (int64_t label : e.predictions.labels) ++counts[static_cast<size_t>(label)];
  out["class_counts"] = counts;
  out.update(metrics::to_json(m));
  if (!o.roc_csv.empty() || !o.roc_png.empty()) {
    std::vector<metrics::RocCurve> curves;
    std::vector<double> column;
    std::vector<int64_t> is_class;
    for (int64_t c = 0; c < e.num_outputs; ++c) {
      column.clear();
      is_class.clear();
      for (size_t i = 0; i < e.predictions.labels.size(); ++i) {
        column.push_back(e.predictions.probabilities[i][static_cast<size_t>(c)]);
        is_class.push_back(e.predictions.labels[i] == c);
      }
      curves.push_back(metrics::roc_curve(column, is_class));
    }
    const std::string csv_text = roc_csv_text(curves, true);
    if (!o.roc_csv.empty()) write_text(o.roc_csv, csv_text);
    if (!o.roc_png.empty())
      draw_roc_png(o, csv_text, {"--title", o.title.empty() ? default_title(o) + " (one-vs-rest)" : o.title});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Evaluate a classifier (checkpoint + images, or a predictions CSV): AUROC with bootstrap CI, "
               "metrics at 0.5 and at a calibrated threshold, ROC curve; JSON on stdout",
               "pneuma-eval"};
  Options o;
  auto* predictions_option =
      app.add_option("--predictions", o.predictions_csv, "CSV with path,label,score or path,label,score_0..score_{K-1}");
  auto* weights_option = app.add_option("--weights", o.weights, "classifier checkpoint (safetensors)");
  auto* data_option = app.add_option("--data", o.data, "images to evaluate: a folder (NORMAL/, PNEUMONIA/) or a CSV "
                                                      "manifest (path,label,...)");
  app.add_option("--model", o.model, "model name (default: the checkpoint's metadata 'model')");
  app.add_option("--num-classes", o.num_classes, "model outputs (default: the checkpoint's metadata)")
      ->check(CLI::PositiveNumber);
  auto* size_option = app.add_option("--img-size", o.img_size, "square input size (default: the checkpoint's "
                                                               "metadata img_size, else 224)")
                          ->check(CLI::Range(8, 8192));
  app.add_option("--batch", o.batch, "batch size (default 32)")->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--workers", o.workers, "image loading threads (default 2; 0: on the main thread)")
      ->check(CLI::NonNegativeNumber);
  tools::add_device_flag(app, o.device);
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable images (counted in the output) instead of failing");
  auto* save_option = app.add_option("--save-predictions", o.save_predictions,
                                     "write the model's predictions as a CSV that --predictions reads");
  auto* threshold_option =
      app.add_option("--threshold", o.threshold, "decision threshold on the positive score (default: the "
                                                 "checkpoint's, else chosen on this data)");
  app.add_option("--choose-threshold", o.choose_threshold,
                 "how a threshold is chosen on this data: youden (max TPR - FPR) or sensitivity (the highest with "
                 "TPR >= --target-sensitivity); default youden")
      ->check(CLI::IsMember({"youden", "sensitivity"}));
  app.add_option("--target-sensitivity", o.target_sensitivity, "for --choose-threshold sensitivity (default 0.9)")
      ->check(CLI::Range(0.0, 1.0));
  auto* write_option = app.add_flag("--write-threshold", o.write_threshold,
                                    "choose the threshold on this data and store it in the checkpoint's metadata");
  app.add_option("--bootstrap", o.bootstrap, "bootstrap resamples for the AUROC 95% interval (default 1000)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "bootstrap seed (default 0)");
  app.add_option("--out", o.out_json, "also write the JSON to this file");
  app.add_option("--roc-csv", o.roc_csv, "write the ROC curve as fpr,tpr,threshold (multi-class: class,fpr,...)");
  app.add_option("--roc-png", o.roc_png, "draw the ROC curve to a PNG (matplotlib, via tools/plot_roc.py)");
  app.add_option("--title", o.title, "title of the ROC plot");
  app.add_option("--plot-script", o.plot_script, "path of tools/plot_roc.py (default: in the source tree)");
  app.add_option("--python", o.python, "Python with matplotlib for --roc-png (default /usr/bin/python3)");
  predictions_option->excludes(weights_option)->excludes(data_option)->excludes(save_option);
  weights_option->needs(data_option);
  data_option->needs(weights_option);
  write_option->needs(weights_option)->excludes(threshold_option);
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;
  if (o.predictions_csv.empty() && o.weights.empty()) {
    std::fprintf(stderr, "pneuma-eval: give --predictions CSV, or --weights CKPT with --data DIR|CSV\n");
    return 1;
  }
  o.img_size_given = size_option->count() > 0;

  try {
    const Device device = tools::select_device(o.device);
    if (o.threads > 0) cpu::set_num_threads(o.threads);
    const Evaluation e = o.predictions_csv.empty() ? from_checkpoint(o, device) : from_predictions_csv(o);
    PNEUMA_CHECK(!e.predictions.labels.empty(), e.source, ": no samples");
    check_labels(e);
    PNEUMA_CHECK(!o.write_threshold || e.num_outputs <= 2, "--write-threshold: ", o.weights, " has ", e.num_outputs,
                 " outputs; a decision threshold applies to binary models");
    nlohmann::json report = e.num_outputs <= 2 ? binary_report(o, e) : multiclass_report(o, e);
    report["source"] = o.predictions_csv.empty()
                           ? nlohmann::json{{"weights", o.weights}, {"data", o.data}, {"skipped", e.skipped}}
                           : nlohmann::json{{"predictions", o.predictions_csv}};
    const std::string text = report.dump();
    if (!o.out_json.empty()) write_text(o.out_json, text + "\n");
    std::cout << text << std::endl;
  } catch (const std::exception& e) {
    tools::print_error("pneuma-eval", e.what());
    return 1;
  }
  return 0;
}
