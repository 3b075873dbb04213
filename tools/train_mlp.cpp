// pneuma-train-mlp: the second stage of seed 004: an MLP (models::MlpClassifier; by
// default 512 and 128 sigmoid units with dropout 0.2, softmax output) trained on feature
// vectors from pneuma-features to tell normal / viral / bacterial (--target subtype) or the
// file's labels (--target label), with class-weighted cross-entropy. The validation set is
// --val-features or a patient-level stratified split of the training file. Writes to --out:
// best.safetensors (the best epoch by --monitor: the lowest validation loss, as the seed, or
// the highest macro AUROC), last.safetensors and metrics.jsonl (per epoch: losses, accuracy,
// per-class one-vs-rest and macro AUROC, macro F1) and train_state.safetensors, what
// --resume DIR needs to continue an interrupted run with its saved settings (bit-identical
// on the CPU with the same --threads, as pneuma-train's).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/core/generator.h"
#include "engine/cpu/parallel.h"
#include "engine/data/manifest.h"
#include "engine/data/rng.h"
#include "engine/data/sampler.h"
#include "engine/data/split.h"
#include "engine/io/checkpoint.h"
#include "engine/metrics/classification.h"
#include "engine/ops/index/index.h"
#include "engine/ops/loss/loss.h"
#include "engine/ops/softmax/softmax.h"
#include "engine/train/checkpointing.h"
#include "engine/train/data_setup.h"
#include "engine/train/early_stopping.h"
#include "engine/train/epoch_loop.h"
#include "engine/train/metrics_log.h"
#include "engine/train/progress.h"
#include "engine/train/scheduler.h"
#include "models/heads.h"
#include "tools/common/cli.h"
#include "tools/common/device.h"
#include "tools/common/optimization.h"
#include "tools/common/resume.h"

using namespace pneuma;
namespace fs = std::filesystem;

namespace {

constexpr const char* kMetricsFile = "metrics.jsonl";

// Every setting of a run; member names are the flags with '-' as '_' (see tools/common/resume.h).
struct Settings {
  std::string features, val_features, out, resume;
  std::string target = "subtype";
  double val_fraction = 0.2;
  std::vector<int64_t> hidden{512, 128};
  std::string activation = "sigmoid";
  double dropout = 0.2;
  int64_t epochs = 60, batch = 32;
  std::string class_weights = "auto";
  std::string monitor = "val_loss";
  int64_t early_stop = 0;
  double clip_grad = 0;
  int threads = 0;
  uint64_t seed = 0;
  std::string device = "cpu";
  int64_t stop_after = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Settings, features, val_features, out, resume, target, val_fraction,
                                                hidden, activation, dropout, epochs, batch, class_weights, monitor,
                                                early_stop, clip_grad, threads, seed, device, stop_after)

using Options = tools::SettingsAndOptimization<Settings>;
// the seed's: SGD at 1e-3 (momentum 0.9), constant rate
const tools::OptimizationFlags kMlpOptimization{"sgd", 1e-3, 0, 0.9, "none", 20, 0.1, 0, 3, 0.1, 0};

const std::set<std::string> kMayChangeOnResume{"epochs", "threads", "stop_after", "resume", "out", "device"};

// One features file with the chosen target as class indices.
struct FeatureSet {
  std::string path;
  Tensor x;                      // float32 [N, D]
  std::vector<int64_t> targets;  // [N]
  std::vector<std::string> class_names;
  std::vector<std::string> paths, patients;  // per sample, when the file has them
  io::Metadata metadata;
  int64_t size() const { return static_cast<int64_t>(targets.size()); }
};

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) names.push_back(item);
  return names;
}

std::vector<std::string> json_strings(const io::Metadata& meta, const std::string& key, int64_t n,
                                      const std::string& path) {
  if (!meta.count(key)) return {};
  std::vector<std::string> values;
  try {
    values = nlohmann::json::parse(meta.at(key)).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception&) {
    PNEUMA_FAIL(path, ": metadata ", key, " is not a JSON list of strings");
  }
  PNEUMA_CHECK(static_cast<int64_t>(values.size()) == n, path, ": metadata ", key, " has ", values.size(),
               " entries for ", n, " samples");
  return values;
}

FeatureSet load_feature_set(const std::string& path, const std::string& target) {
  const io::Safetensors file = io::load_safetensors(path);
  FeatureSet set;
  set.path = path;
  set.metadata = file.metadata;
  const Tensor features = file.find("features");
  PNEUMA_CHECK(features.defined(), path, ": no 'features' tensor (write it with pneuma-features)");
  PNEUMA_CHECK(features.dim() == 2 && features.size(0) > 0 && features.size(1) > 0, path, ": features ",
               features.str(), " must be [N, D] with N, D > 0");
  const int64_t n = features.size(0);
  set.x = features.to(DType::Float32).contiguous();
  for (double v : set.x.to_vector()) PNEUMA_CHECK(std::isfinite(v), path, ": features hold a non-finite value");

  const std::string key = target == "subtype" ? "subtypes" : "labels";
  const Tensor codes = file.find(key);
  PNEUMA_CHECK(codes.defined(), path, ": no '", key, "' tensor",
               target == "subtype" ? " (its data had no subtype column; use --target label)" : "");
  PNEUMA_CHECK(codes.dtype() == DType::Int64 && codes.dim() == 1 && codes.size(0) == n, path, ": ", key, " ",
               codes.str(), " must be int64 [", n, "]");
  set.targets = codes.to_indices();
  if (target == "subtype") {
    PNEUMA_CHECK(file.metadata.count("subtype_names"), path, ": subtypes without metadata subtype_names");
    set.class_names = split_names(file.metadata.at("subtype_names"));
    const int64_t missing = std::count(set.targets.begin(), set.targets.end(), int64_t{-1});
    PNEUMA_CHECK(missing == 0, path, ": ", missing, " sample(s) have no subtype (fill the manifest's subtype column)");
  } else {
    const int64_t classes = std::max<int64_t>(2, *std::max_element(set.targets.begin(), set.targets.end()) + 1);
    if (classes == 2) set.class_names = {"normal", "pneumonia"};
    else
      for (int64_t c = 0; c < classes; ++c) set.class_names.push_back(std::to_string(c));
  }
  for (int64_t t : set.targets)
    PNEUMA_CHECK(t >= 0 && t < static_cast<int64_t>(set.class_names.size()), path, ": ", key, " value ", t,
                 " is not in [0, ", set.class_names.size(), ")");
  set.paths = json_strings(file.metadata, "paths", n, path);
  set.patients = json_strings(file.metadata, "patients", n, path);
  return set;
}

// The validation file's targets in the training file's class order (subtype names may be
// listed in another order or lack names the other file has).
void align_classes(FeatureSet& val, const FeatureSet& train) {
  PNEUMA_CHECK(val.x.size(1) == train.x.size(1), val.path, ": ", val.x.size(1), "-d features, ", train.path,
               " has ", train.x.size(1));
  std::vector<int64_t> remap;
  for (const std::string& name : val.class_names) {
    const auto found = std::find(train.class_names.begin(), train.class_names.end(), name);
    remap.push_back(found == train.class_names.end() ? -1 : static_cast<int64_t>(found - train.class_names.begin()));
  }
  for (int64_t& t : val.targets) {
    PNEUMA_CHECK(remap[static_cast<size_t>(t)] >= 0, val.path, ": class '", val.class_names[static_cast<size_t>(t)],
                 "' does not occur in ", train.path, "'s classes");
    t = remap[static_cast<size_t>(t)];
  }
  val.class_names = train.class_names;
}

FeatureSet subset(const FeatureSet& set, const std::vector<int64_t>& rows) {
  FeatureSet out;
  out.path = set.path;
  out.metadata = set.metadata;
  out.class_names = set.class_names;
  out.x = index_select(set.x, 0, Tensor::from_indices(rows, {static_cast<int64_t>(rows.size())})).contiguous();
  for (int64_t r : rows) {
    out.targets.push_back(set.targets[static_cast<size_t>(r)]);
    if (!set.paths.empty()) out.paths.push_back(set.paths[static_cast<size_t>(r)]);
    if (!set.patients.empty()) out.patients.push_back(set.patients[static_cast<size_t>(r)]);
  }
  return out;
}

// Patient-level, stratified by target (data::patient_validation_split on the samples as a
// manifest): a patient's images never straddle the split.
std::pair<FeatureSet, FeatureSet> split_feature_set(const FeatureSet& set, double fraction, uint64_t seed) {
  PNEUMA_CHECK(fraction > 0 && fraction < 1, "--val-fraction ", fraction, " is not in (0, 1)");
  data::Manifest m;
  m.source = set.path;
  m.has_patient = !set.patients.empty();
  for (int64_t i = 0; i < set.size(); ++i) {
    data::Record r;
    r.path = set.paths.empty() ? "row " + std::to_string(i) : set.paths[static_cast<size_t>(i)];
    r.file = r.path;
    r.label = set.targets[static_cast<size_t>(i)];
    if (m.has_patient) r.patient = set.patients[static_cast<size_t>(i)];
    m.records.push_back(std::move(r));
  }
  const std::vector<bool> is_val = data::patient_validation_split(m, fraction, seed);
  std::vector<int64_t> train_rows, val_rows;
  for (int64_t i = 0; i < set.size(); ++i) (is_val[static_cast<size_t>(i)] ? val_rows : train_rows).push_back(i);
  PNEUMA_CHECK(!train_rows.empty() && !val_rows.empty(), set.path, ": ", set.size(),
               " samples leave no training or no validation samples at --val-fraction ", fraction);
  return {subset(set, train_rows), subset(set, val_rows)};
}

void require_every_class(const FeatureSet& set, const std::string& what) {
  std::vector<int64_t> counts(set.class_names.size(), 0);
  for (int64_t t : set.targets) ++counts[static_cast<size_t>(t)];
  for (size_t c = 0; c < counts.size(); ++c)
    PNEUMA_CHECK(counts[c] > 0, what, ": class '", set.class_names[c], "' has no samples (", set.path, ")");
}

std::string counts_text(const FeatureSet& set) {
  std::vector<int64_t> counts(set.class_names.size(), 0);
  for (int64_t t : set.targets) ++counts[static_cast<size_t>(t)];
  std::string out;
  for (size_t c = 0; c < counts.size(); ++c)
    out += (c ? ", " : "") + set.class_names[c] + " " + std::to_string(counts[c]);
  return out;
}

struct Evaluation {
  double loss = 0;
  metrics::MulticlassMetrics metrics;
};

// The set's features on the model's device, its targets on the host.
Evaluation evaluate(models::MlpClassifier& mlp, const Tensor& x, const FeatureSet& set) {
  NoGradGuard no_grad;
  mlp.eval();
  const Tensor logits = mlp.forward(x).to(Device::cpu()).to(DType::Float64);
  const Tensor targets = Tensor::from_indices(set.targets, {set.size()});
  Evaluation e;
  e.loss = cross_entropy(logits, targets).item();  // unweighted: comparable across --class-weights
  const Tensor probabilities = softmax(logits, 1);
  const std::vector<double> p = probabilities.to_vector();
  const int64_t classes = probabilities.size(1);
  std::vector<std::vector<double>> rows(static_cast<size_t>(set.size()));
  for (int64_t i = 0; i < set.size(); ++i)
    rows[static_cast<size_t>(i)].assign(p.begin() + i * classes, p.begin() + (i + 1) * classes);
  e.metrics = metrics::multiclass_metrics(rows, set.targets);
  return e;
}

void validate(const Options& o) {
  PNEUMA_CHECK(!o.out.empty(), "--out (or --resume) is required");
  PNEUMA_CHECK(!o.features.empty(), "--features is required");
  PNEUMA_CHECK(o.target == "subtype" || o.target == "label", "unknown --target '", o.target, "' (subtype, label)");
  PNEUMA_CHECK(o.monitor == "val_loss" || o.monitor == "val_auroc", "unknown --monitor '", o.monitor,
               "' (val_loss, val_auroc)");
  tools::check_optimization_flags(o.optimization);
}

int run(const CLI::App& app, Options o) {
  for (std::string* path : {&o.features, &o.val_features, &o.out, &o.resume}) *path = tools::absolute_path(*path);
  const bool resuming = !o.resume.empty();
  if (resuming) o = tools::resumed_options(app, o, kMayChangeOnResume);
  validate(o);
  const Device device = tools::select_device(o.device);
  if (!resuming) tools::require_no_run(o.out);
  if (o.threads > 0) cpu::set_num_threads(o.threads);
  manual_seed(o.seed);

  FeatureSet all = load_feature_set(o.features, o.target);
  FeatureSet train_set, val_set;
  if (!o.val_features.empty()) {
    train_set = std::move(all);
    val_set = load_feature_set(o.val_features, o.target);
    align_classes(val_set, train_set);
  } else {
    std::tie(train_set, val_set) = split_feature_set(all, o.val_fraction, o.seed);
  }
  require_every_class(train_set, "training set");
  require_every_class(val_set, "validation set");
  const auto classes = static_cast<int64_t>(train_set.class_names.size());
  const int64_t in_features = train_set.x.size(1);
  std::fprintf(stderr, "pneuma-train-mlp: %lld training samples (%s), %lld validation samples (%s), %lld-d\n",
               static_cast<long long>(train_set.size()), counts_text(train_set).c_str(),
               static_cast<long long>(val_set.size()), counts_text(val_set).c_str(),
               static_cast<long long>(in_features));
  // The feature matrices live on the device for the whole run; a batch is a row selection.
  const Tensor train_x = train_set.x.to(device), val_x = val_set.x.to(device);

  models::MlpClassifierOptions mlp_options;
  mlp_options.in_features = in_features;
  mlp_options.hidden = o.hidden;
  mlp_options.num_classes = classes;
  mlp_options.dropout = o.dropout;
  mlp_options.activation = o.activation;
  models::MlpClassifier mlp(mlp_options);
  mlp.to(device);  // before the optimizer: its state lives with the parameters

  auto optimizer = tools::make_optimizer(o.optimization, mlp.parameters());
  const bool maximize = o.monitor == "val_auroc";
  train::LrScheduler scheduler(*optimizer, tools::scheduler_options(o.optimization, maximize ? "max" : "min"),
                               o.epochs);
  train::EarlyStopping early_stopping(o.early_stop, maximize);
  Tensor class_weights = train::ClassWeightSpec::parse(o.class_weights).resolve(train_set.targets, classes);
  if (class_weights.defined()) class_weights = class_weights.to(device);

  const std::string metrics_path = (fs::path(o.out) / kMetricsFile).string();
  const int64_t start_epoch = tools::resume_or_start("pneuma-train-mlp", o.out, resuming, mlp, *optimizer, &scheduler,
                                                     &early_stopping, metrics_path);
  train::MetricsLog log(metrics_path, /*echo_stdout=*/true, /*append=*/resuming);
  std::string hidden_text;
  for (int64_t h : o.hidden) hidden_text += (hidden_text.empty() ? "" : ",") + std::to_string(h);
  std::string names_text;
  for (const std::string& name : train_set.class_names) names_text += (names_text.empty() ? "" : ",") + name;
  io::Metadata meta{{"format", "pneuma"},
                    {"model", "mlp"},
                    {"num_classes", std::to_string(classes)},
                    {"class_names", names_text},
                    {"target", o.target},
                    {"in_features", std::to_string(in_features)},
                    {"hidden", hidden_text},
                    {"activation", o.activation},
                    {"dropout", train::format_number(o.dropout)},
                    {"features", o.features}};
  for (const char* key : {"model", "weights", "img_size", "mean", "std"})
    if (train_set.metadata.count(key)) meta[std::string("features_") + key] = train_set.metadata.at(key);

  const data::ShuffledSampler sampler(train_set.size(), data::derive_seed(o.seed, 1));
  const int64_t batch = std::min(o.batch, train_set.size());
  const int64_t batches = (train_set.size() + batch - 1) / batch;
  const train::EpochLoop epochs{"pneuma-train-mlp", o.out,         start_epoch, o.epochs, o.stop_after,
                                &early_stopping,    o.early_stop, o.monitor};
  const bool finished = epochs.run([&](int64_t epoch) {
    const train::Stopwatch stopwatch;
    const double epoch_lr = optimizer->lr();
    mlp.train();
    const std::vector<int64_t> order = sampler.indices(epoch);
    train::ProgressBar bar(train::epoch_label(epoch, o.epochs), batches);
    const std::string keep_note = train::kept_checkpoint_note(epoch, o.out);
    train::RunningMean train_loss;
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t begin = b * batch, end = std::min(begin + batch, train_set.size());
      const std::vector<int64_t> rows(order.begin() + begin, order.begin() + end);
      std::vector<int64_t> targets;
      for (int64_t r : rows) targets.push_back(train_set.targets[static_cast<size_t>(r)]);
      const Tensor x = index_select(train_x, 0, Tensor::from_indices(rows, {end - begin}).to(device));
      const Tensor loss =
          cross_entropy(mlp.forward(x), Tensor::from_indices(targets, {end - begin}).to(device), class_weights);
      train::optimization_step(loss, *optimizer, o.clip_grad, epoch * batches + b + 1, keep_note);
      train_loss.add(loss.item(), end - begin);
      bar.update(b + 1);
    }
    const Evaluation val = evaluate(mlp, val_x, val_set);
    const double monitored = maximize ? val.metrics.macro_auc : val.loss;
    const bool best = early_stopping.update(monitored);
    scheduler.step(monitored);
    bar.finish("loss " + train::fixed4(train_loss.mean()) + " val_loss " + train::fixed4(val.loss) + " val_auroc " +
               train::fixed4(val.metrics.macro_auc));

    nlohmann::json per_class = nlohmann::json::object();
    for (int64_t c = 0; c < classes; ++c)
      per_class[train_set.class_names[static_cast<size_t>(c)]] = val.metrics.per_class_auc[static_cast<size_t>(c)];
    log.write({{"epoch", epoch + 1},
               {"lr", epoch_lr},
               {"train_loss", train_loss.mean()},
               {"val_loss", val.loss},
               {"val_accuracy", val.metrics.accuracy},
               {"val_macro_auroc", val.metrics.macro_auc},
               {"val_auroc", per_class},
               {"val_macro_f1", val.metrics.macro_f1},
               {"seconds", stopwatch.seconds()},
               {"best", best}});
    meta["epoch"] = std::to_string(epoch + 1);
    meta["val_loss"] = train::format_number(val.loss);
    meta["val_macro_auroc"] = train::format_number(val.metrics.macro_auc);
    train::save_epoch_checkpoints(o.out, mlp, *optimizer, &scheduler, &early_stopping, epoch, best, o, meta);
  });
  if (!finished) return 0;
  nlohmann::json done = {{"done", true},
                         {"best_epoch", early_stopping.best_epoch() + 1},
                         {"monitor", o.monitor},
                         {"best", early_stopping.best()},
                         {"classes", train_set.class_names},
                         {"out", o.out}};
  if (early_stopping.best_epoch() >= 0) {
    // The best epoch's validation metrics, from its checkpoint (it may come from before a resume).
    models::MlpClassifier best_mlp(mlp_options);
    io::load_checkpoint(best_mlp, (fs::path(o.out) / train::kBestCheckpoint).string());
    best_mlp.to(device);
    done["val"] = metrics::to_json(evaluate(best_mlp, val_x, val_set).metrics);
  }
  std::cout << done.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train an MLP on pneuma-features vectors (normal / viral / bacterial by default)", "pneuma-train-mlp"};
  Options o;
  o.optimization = kMlpOptimization;
  app.add_option("--features", o.features, "training features (pneuma-features output)");
  app.add_option("--val-features", o.val_features, "validation features; default: split --features");
  app.add_option("--val-fraction", o.val_fraction, "patient-level validation fraction without --val-features "
                                                   "(default 0.2)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--out", o.out, "output folder: best/last.safetensors, train_state.safetensors, metrics.jsonl");
  tools::add_resume_flags(app, o.resume, o.stop_after);
  app.add_option("--target", o.target, "subtype (normal/viral/bacterial, the seed's task) or label (default subtype)");
  app.add_option("--hidden", o.hidden, "hidden widths, comma-separated (default 512,128)")->delimiter(',');
  app.add_option("--activation", o.activation, "hidden activation: sigmoid (the seed's) or relu");
  app.add_option("--dropout", o.dropout, "dropout after each hidden layer (default 0.2)")->check(CLI::Range(0.0, 0.99));
  app.add_option("--epochs", o.epochs, "epochs (default 60)")->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  app.add_option("--batch", o.batch, "batch size (default 32)")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  tools::add_optimization_flags(app, o.optimization, "--monitor");
  app.add_option("--class-weights", o.class_weights,
                 "auto (n / (classes * count), sklearn 'balanced'; default), none, or w0,w1,...");
  app.add_option("--monitor", o.monitor, "best epoch by val_loss (lowest, the seed's; default) or val_auroc (macro)");
  app.add_option("--early-stop", o.early_stop, "stop after this many epochs without a better --monitor (0: off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--clip-grad", o.clip_grad, "clip the gradient norm to this (0: off)")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", o.threads, "CPU compute threads (default: all)")->check(CLI::Range(0, 1024));
  app.add_option("--seed", o.seed, "seed of weights, split, order and dropout (default 0)");
  tools::add_device_flag(app, o.device);
  return tools::run_tool(app, argc, argv, [&] { return run(app, o); });
}
