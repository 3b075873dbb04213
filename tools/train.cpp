// pneuma-train: trains an image classifier (seeds 001, 002 and 004's first stage) on a
// Kermany-layout folder or a CSV manifest, validates after every epoch and writes to
// --out: best.safetensors (the best validation AUROC; for a binary task its Youden
// threshold in the metadata), last.safetensors, train_state.safetensors (what --resume
// needs) and metrics.jsonl (one JSON line per epoch, also echoed on stdout).
//
// --resume DIR continues an interrupted run from its last completed epoch with the
// settings saved in DIR (a flag may be repeated with the same value; --epochs, --threads,
// --workers, --device, --precision, --channels-last and --stop-after may change). On the
// CPU with the same thread count, precision and layout the result is bit-identical to an
// uninterrupted run: model, optimizer, scheduler, early stopping and the global generator
// are restored, and the data order and augmentation are pure functions of (seed, epoch).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/core/generator.h"
#include "engine/cpu/parallel.h"
#include "engine/data/dataset.h"
#include "engine/data/device_batch.h"
#include "engine/data/loader.h"
#include "engine/data/rng.h"
#include "engine/data/sampler.h"
#include "engine/data/transforms.h"
#include "engine/io/checkpoint.h"
#include "engine/metrics/classification.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/index/index.h"
#include "engine/ops/loss/loss.h"
#include "engine/ops/reduce/reduce.h"
#include "engine/train/checkpointing.h"
#include "engine/train/data_setup.h"
#include "engine/train/early_stopping.h"
#include "engine/train/epoch_loop.h"
#include "engine/train/metrics_log.h"
#include "engine/train/optimizer_factory.h"
#include "engine/train/predict.h"
#include "engine/train/progress.h"
#include "engine/train/scheduler.h"
#include "models/freeze.h"
#include "models/registry.h"
#include "tools/common/cli.h"
#include "tools/common/compute.h"
#include "tools/common/device.h"
#include "tools/common/resume.h"

using namespace pneuma;
namespace fs = std::filesystem;

namespace {

constexpr const char* kMetricsFile = "metrics.jsonl";

// Every setting of a run. Member names are the flags with '-' as '_': the saved copy in
// train_state.safetensors is compared flag by flag with a resumed command line.
struct Options {
  std::string model, data, val_data, out, resume, init;
  int64_t img_size = 224, epochs = 10, batch = 32;
  std::string optimizer = "adam";
  double lr = 1e-3, weight_decay = 0, momentum = 0.9;
  std::string scheduler = "none";
  int64_t step_size = 10;
  double gamma = 0.1;
  int64_t warmup = 0;
  int64_t plateau_patience = 3;
  double plateau_factor = 0.1, min_lr = 0;
  std::string loss = "bce";
  double focal_alpha = 0.25, focal_gamma = 2.0;
  int64_t num_classes = 2;
  std::string class_weights = "none", sampler = "shuffle";
  std::vector<std::string> freeze;
  int64_t fold = -1, folds = 0;
  double val_fraction = 0.2;
  int64_t early_stop = 0;
  double clip_grad = 0;
  bool augment = true, skip_bad = false;
  int workers = 2, threads = 0;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string precision = "fp32";
  bool channels_last = false;
  int64_t stop_after = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Options, model, data, val_data, out, resume, init, img_size, epochs,
                                                batch, optimizer, lr, weight_decay, momentum, scheduler, step_size,
                                                gamma, warmup, plateau_patience, plateau_factor, min_lr, loss,
                                                focal_alpha, focal_gamma, num_classes, class_weights, sampler, freeze,
                                                fold, folds, val_fraction, early_stop, clip_grad, augment, skip_bad,
                                                workers, threads, seed, device, precision, channels_last,
                                                stop_after)

// Paths are saved absolute, so --resume works from any folder.
void make_paths_absolute(Options& o) {
  for (std::string* path : {&o.data, &o.val_data, &o.init, &o.out, &o.resume}) *path = tools::absolute_path(*path);
}

// Only --epochs, --threads, --workers, --device, --precision, --channels-last and --stop-after of a
// resumed run may change.
const std::set<std::string> kMayChangeOnResume = tools::may_change_on_resume();

void validate(const Options& o) {
  PNEUMA_CHECK(o.loss == "bce" || o.loss == "focal" || o.loss == "ce", "unknown loss '", o.loss, "' (bce, focal, ce)");
  PNEUMA_CHECK(o.sampler == "shuffle" || o.sampler == "balanced-class", "unknown sampler '", o.sampler,
               "' (shuffle, balanced-class)");
  PNEUMA_CHECK(o.loss == "ce" || o.num_classes == 2, "--loss ", o.loss, " is binary (one logit); use --loss ce for ",
               o.num_classes, " classes");
  PNEUMA_CHECK(o.num_classes >= 2, "--num-classes ", o.num_classes, " < 2");
  PNEUMA_CHECK(o.fold < 0 || o.folds > 0, "--fold ", o.fold, " needs --folds");
  PNEUMA_CHECK(!o.out.empty(), "--out (or --resume) is required");
  const auto names = models::classifier_names();
  PNEUMA_CHECK(std::find(names.begin(), names.end(), o.model) != names.end(), "unknown model '", o.model, "'");
  const auto optimizers = train::optimizer_names();
  PNEUMA_CHECK(std::find(optimizers.begin(), optimizers.end(), o.optimizer) != optimizers.end(), "unknown optimizer '",
               o.optimizer, "' (sgd, adam, adamw)");
}

// --init: weights by name. Tensors missing from the file keep their initialization, and the
// classifier is skipped when its shape differs (another class count); any other shape
// mismatch means another architecture and is an error.
void load_init_weights(models::ImageClassifier& model, const std::string& path) {
  const io::SafetensorsHeader header = io::read_safetensors_header(path);
  const io::LoadReport report = io::compare_state_dict(model, header);
  std::string foreign;
  for (const io::ShapeMismatch& m : report.mismatched)
    if (!models::matches_prefix(m.name, model.classifier_prefix())) foreign += (foreign.empty() ? "" : ", ") + m.name;
  PNEUMA_CHECK(foreign.empty(), "--init ", path, " does not fit the model: ", report.str());
  io::LoadOptions options;
  options.strict = false;
  options.skip_mismatched = true;
  const io::LoadReport loaded = io::load_checkpoint(model, path, options);
  PNEUMA_CHECK(!loaded.loaded.empty(), "--init ", path, ": no tensor of the model is in the file");
  std::fprintf(stderr, "pneuma-train: --init loaded %zu tensors from %s%s%s\n", loaded.loaded.size(), path.c_str(),
               loaded.clean() ? "" : "; not loaded: ", loaded.clean() ? "" : loaded.str().c_str());
}

// The validation loss: cross-entropy of the predicted probabilities (binary or
// multi-class), clipped to [1e-7, 1 - 1e-7] as Keras does, unweighted, whatever the
// training loss; comparable across runs with different losses.
double validation_nll(const train::Predictions& p) {
  constexpr double eps = 1e-7;
  double total = 0;
  for (int64_t i = 0; i < p.size(); ++i) {
    const auto& row = p.probabilities[static_cast<size_t>(i)];
    const int64_t y = p.labels[static_cast<size_t>(i)];
    const double q = row.size() == 1 ? (y == 1 ? row[0] : 1 - row[0]) : row.at(static_cast<size_t>(y));
    total -= std::log(std::clamp(q, eps, 1 - eps));
  }
  return total / static_cast<double>(std::max<int64_t>(p.size(), 1));
}

struct Validation {
  double loss = 0, auroc = 0, accuracy = 0;
  std::optional<double> threshold;  // binary tasks: Youden's J on this set
};

Validation validate_model(const train::Predictions& p, bool binary) {
  Validation v;
  v.loss = validation_nll(p);
  if (binary) {
    const std::vector<double> scores = p.positive_scores();
    v.auroc = metrics::roc_auc(scores, p.labels);
    v.accuracy = metrics::binary_metrics(scores, p.labels, 0.5).accuracy;
    v.threshold = metrics::youden_threshold(scores, p.labels);
  } else {
    const metrics::MulticlassMetrics m = metrics::multiclass_metrics(p.probabilities, p.labels);
    v.auroc = m.macro_auc;
    v.accuracy = m.accuracy;
  }
  return v;
}

std::string class_summary(const data::Manifest& m) {
  std::string out;
  const std::vector<int64_t> counts = m.class_counts();
  for (size_t c = 0; c < counts.size(); ++c) out += (c ? ", " : "") + std::to_string(counts[c]);
  return out;
}

int run(const CLI::App& app, Options o) {
  make_paths_absolute(o);
  const bool resuming = !o.resume.empty();
  if (resuming) o = tools::resumed_options(app, o, kMayChangeOnResume);
  validate(o);
  const Device device = tools::select_device(o.device);
  const train::ClassWeightSpec weight_spec = train::ClassWeightSpec::parse(o.class_weights);
  if (!resuming) tools::require_no_run(o.out);
  if (o.threads > 0) cpu::set_num_threads(o.threads);
  manual_seed(o.seed);

  // ---- data
  int64_t skipped = 0;
  const int scan_threads = o.threads > 0 ? o.threads : cpu::num_threads();
  const data::Manifest all = train::open_training_data(o.data, o.skip_bad, scan_threads, &skipped);
  if (skipped > 0)
    std::fprintf(stderr, "pneuma-train: skipped %lld bad file(s) or row(s)\n", static_cast<long long>(skipped));
  train::SplitOptions split_options;
  split_options.val_data = o.val_data;
  split_options.fold = o.fold;
  split_options.folds = o.folds;
  split_options.val_fraction = o.val_fraction;
  split_options.seed = o.seed;
  split_options.skip_bad = o.skip_bad;
  split_options.threads = scan_threads;
  const data::Split split = train::split_training_data(all, split_options);
  train::require_all_classes(split.train, o.num_classes, "training set");
  train::require_all_classes(split.val, o.num_classes, "validation set");
  std::fprintf(stderr, "pneuma-train: %lld training images (per class %s), %lld validation images (%s)\n",
               static_cast<long long>(split.train.size()), class_summary(split.train).c_str(),
               static_cast<long long>(split.val.size()), class_summary(split.val).c_str());

  // ---- model and optimization
  const bool single_logit = o.loss != "ce";
  const bool binary = o.num_classes == 2;
  const int64_t outputs = single_logit ? 1 : o.num_classes;
  const auto model = models::create_classifier(o.model, outputs);
  if (!o.init.empty() && !resuming) load_init_weights(*model, o.init);
  if (!o.freeze.empty()) {
    const auto frozen = models::freeze(*model, o.freeze);
    std::fprintf(stderr, "pneuma-train: froze %zu parameter tensors\n", frozen.size());
  }
  model->to(device);  // before the optimizer: its state lives with the parameters
  tools::apply_memory_format(*model, o.channels_last);
  auto optimizer = train::make_optimizer(o.optimizer, model->parameters(), o.lr, o.weight_decay, o.momentum);
  train::SchedulerOptions schedule;
  schedule.kind = o.scheduler;
  schedule.step_size = o.step_size;
  schedule.gamma = o.gamma;
  schedule.eta_min = o.min_lr;
  schedule.mode = "max";  // on the validation AUROC
  schedule.factor = o.plateau_factor;
  schedule.patience = o.plateau_patience;
  schedule.min_lr = o.min_lr;
  schedule.warmup_epochs = o.warmup;
  train::LrScheduler scheduler(*optimizer, schedule, o.epochs);
  // Tracks the best validation AUROC in every run; stops only with --early-stop > 0.
  train::EarlyStopping early_stopping(o.early_stop, /*maximize=*/true);

  const std::string metrics_path = (fs::path(o.out) / kMetricsFile).string();
  const int64_t start_epoch =
      tools::resume_or_start("pneuma-train", o.out, resuming, *model, *optimizer, &scheduler, &early_stopping,
                             metrics_path);
  train::MetricsLog log(metrics_path, /*echo_stdout=*/true, /*append=*/resuming);

  const data::Pipeline eval_pipeline = data::Pipeline::eval(o.img_size);
  io::Metadata meta = train::checkpoint_metadata(o.model, outputs, o.img_size, eval_pipeline.normalization(), 0);
  meta["loss"] = o.loss;
  meta["classes"] = std::to_string(o.num_classes);
  meta["seed"] = std::to_string(o.seed);

  // ---- loaders: batch b of epoch e is the same for any worker count (see DataLoader)
  const std::vector<int64_t> train_labels = split.train.labels();
  const auto train_set = std::make_shared<data::ImageDataset>(
      split.train, o.augment ? data::Pipeline::cxr_train(o.img_size) : eval_pipeline);
  const auto val_set = std::make_shared<data::ImageDataset>(split.val, eval_pipeline);
  const uint64_t sampler_seed = data::derive_seed(o.seed, 1);
  std::shared_ptr<const data::Sampler> sampler;
  if (o.sampler == "balanced-class")
    sampler = std::make_shared<data::WeightedSampler>(data::class_balanced_weights(train_labels), split.train.size(),
                                                      sampler_seed);
  else
    sampler = std::make_shared<data::ShuffledSampler>(split.train.size(), sampler_seed);
  data::DataLoader train_loader(
      train_set, sampler, train::training_loader_options(o.batch, o.workers, o.seed, sampler->epoch_length(), device));
  data::DataLoader val_loader(val_set, std::make_shared<data::SequentialSampler>(split.val.size()),
                              train::evaluation_loader_options(o.batch, o.workers, o.seed, device));

  Tensor class_weights = weight_spec.resolve(train_labels, o.num_classes);
  if (class_weights.defined()) class_weights = class_weights.to(device);

  auto compute_loss = [&](const Tensor& logits, const Tensor& labels) -> Tensor {
    if (o.loss == "ce") return cross_entropy(logits, labels, class_weights);
    const int64_t n = labels.numel();
    const Tensor targets = labels.to(DType::Float32).reshape({n, 1});
    const Tensor sample_weights =
        class_weights.defined() ? index_select(class_weights, 0, labels).reshape({n, 1}) : Tensor();
    if (o.loss == "bce") return binary_cross_entropy_with_logits(logits, targets, sample_weights);
    Tensor per_sample = sigmoid_focal_loss(logits, targets, o.focal_alpha, o.focal_gamma, Reduction::None);
    if (sample_weights.defined()) per_sample = mul(per_sample, sample_weights);
    return mean(per_sample);
  };

  // ---- epochs
  const int64_t batches = train_loader.batches_per_epoch();
  train::EpochLoop epochs{"pneuma-train", o.out, start_epoch, o.epochs, o.stop_after, &early_stopping,
                          o.early_stop, "validation AUROC"};
  const bool finished = epochs.run([&](int64_t epoch) {
    const train::Stopwatch stopwatch;
    const double epoch_lr = optimizer->lr();
    models::set_training(*model, true);
    train_loader.start_epoch(epoch);
    // One bar per epoch over its training and then its validation batches.
    train::ProgressBar bar(train::epoch_label(epoch, o.epochs), batches + val_loader.batches_per_epoch());
    train::RunningMean train_loss;
    const std::string keep_note = train::kept_checkpoint_note(epoch, o.out);
    while (std::optional<data::Batch> host_batch = train_loader.next()) {
      const data::Batch batch = data::to_device(*host_batch, device);
      const int64_t step = epoch * batches + batch.index + 1;  // counts from 1 across resumes
      Tensor loss;
      {
        const tools::PrecisionScope precision(o.precision);
        loss = compute_loss(model->forward(batch.images()), batch.labels);
      }
      train::optimization_step(loss, *optimizer, o.clip_grad, step, keep_note);
      train_loss.add(loss.item(), batch.size());
      bar.update(batch.index + 1, "loss " + train::fixed4(train_loss.mean()));
    }
    const std::string train_status = "loss " + train::fixed4(train_loss.mean());
    const tools::PrecisionScope precision(o.precision);
    const Validation val = validate_model(
        train::predict(*model, val_loader, 0,
                       [&](int64_t done, int64_t) { bar.update(batches + done, train_status + " validating"); }),
        binary);
    bar.finish(train_status + " val_auroc " + train::fixed4(val.auroc));

    const bool best = early_stopping.update(val.auroc);
    scheduler.step(val.auroc);
    nlohmann::json record = {{"epoch", epoch + 1},
                             {"lr", epoch_lr},
                             {"train_loss", train_loss.mean()},
                             {"val_loss", val.loss},
                             {"val_auroc", val.auroc},
                             {"val_accuracy", val.accuracy},
                             {"seconds", stopwatch.seconds()},
                             {"best", best}};
    if (val.threshold) record["val_threshold"] = *val.threshold;
    log.write(record);

    meta["epoch"] = std::to_string(epoch + 1);
    meta["val_auroc"] = train::format_number(val.auroc);
    meta["val_loss"] = train::format_number(val.loss);
    if (val.threshold) meta["threshold"] = train::format_number(*val.threshold);
    train::save_epoch_checkpoints(o.out, *model, *optimizer, &scheduler, &early_stopping, epoch, best, o, meta);
  });
  if (!finished) return 0;
  std::cout << nlohmann::json{{"done", true},
                              {"best_epoch", early_stopping.best_epoch() + 1},
                              {"best_val_auroc", early_stopping.best()},
                              {"out", o.out}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train an image classifier (binary pneumonia or multi-class) with validation every epoch",
               "pneuma-train"};
  Options o;
  app.add_option("--model", o.model, "simplecnn, resnet18/34/50/101/152, densenet121/161/169/201");
  app.add_option("--data", o.data, "Kermany folder (with or without train/) or CSV manifest (path,label,...)");
  app.add_option("--val-data", o.val_data, "separate validation set (folder or CSV); default: split --data");
  app.add_option("--out", o.out, "output folder: best/last.safetensors, train_state.safetensors, metrics.jsonl");
  tools::add_resume_flags(app, o.resume, o.stop_after);
  app.add_option("--init", o.init, "initial weights by name (safetensors); a classifier of another shape is skipped");
  app.add_option("--img-size", o.img_size, "square input size (default 224)")->check(CLI::Range(8, 4096));
  app.add_option("--epochs", o.epochs, "epochs (default 10)")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--batch", o.batch, "batch size (default 32)")->check(CLI::Range(int64_t{1}, int64_t{65536}));
  app.add_option("--optimizer", o.optimizer, "sgd (momentum --momentum), adam, adamw (default adam)");
  app.add_option("--lr", o.lr, "learning rate (default 1e-3)")->check(CLI::PositiveNumber);
  app.add_option("--weight-decay", o.weight_decay, "weight decay: L2 for sgd/adam, decoupled for adamw (default 0)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--momentum", o.momentum, "SGD momentum (default 0.9)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--scheduler", o.scheduler,
                 "none, step (--step-size, --gamma), cosine (to --min-lr over the epochs after warmup), "
                 "plateau (ReduceLROnPlateau on val AUROC: --plateau-patience, --plateau-factor, --min-lr)");
  app.add_option("--step-size", o.step_size, "step scheduler: epochs per decay (default 10)")
      ->check(CLI::PositiveNumber);
  app.add_option("--gamma", o.gamma, "step scheduler: decay factor (default 0.1)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup, "linear warmup epochs: epoch e < W at lr (e+1)/(W+1) (default 0)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--plateau-patience", o.plateau_patience, "plateau scheduler: patience in epochs (default 3)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--plateau-factor", o.plateau_factor, "plateau scheduler: factor (default 0.1)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--min-lr", o.min_lr, "lowest lr of the plateau and cosine schedules (default 0)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--loss", o.loss, "bce (one logit), focal (sigmoid focal, one logit) or ce (--num-classes logits)");
  app.add_option("--focal-alpha", o.focal_alpha, "focal loss alpha (default 0.25; < 0 disables)");
  app.add_option("--focal-gamma", o.focal_gamma, "focal loss gamma (default 2)")->check(CLI::NonNegativeNumber);
  app.add_option("--num-classes", o.num_classes, "classes (default 2; more than 2 needs --loss ce)")
      ->check(CLI::Range(int64_t{2}, int64_t{100000}));
  app.add_option("--class-weights", o.class_weights,
                 "none, auto (n / (classes * count), sklearn 'balanced') or w0,w1,... (default none)");
  app.add_option("--sampler", o.sampler, "shuffle, or balanced-class (class-weighted draws with replacement)");
  app.add_option("--freeze", o.freeze, "parameter-name prefixes to freeze (e.g. conv1 layer1 features.denseblock1)");
  app.add_option("--fold", o.fold, "validation fold of --folds (patient-level, stratified, seeded)");
  app.add_option("--folds", o.folds, "number of folds (a CSV's own fold column is used when it has one)")
      ->check(CLI::Range(int64_t{2}, int64_t{1000}));
  app.add_option("--val-fraction", o.val_fraction, "patient-level validation fraction without --folds (default 0.2)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--early-stop", o.early_stop, "stop after this many epochs without a better val AUROC (0: off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--clip-grad", o.clip_grad, "clip the gradient norm to this (0: off)")->check(CLI::NonNegativeNumber);
  app.add_flag("--augment,!--no-augment", o.augment, "training augmentation (default on)");
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable images instead of stopping");
  app.add_option("--workers", o.workers, "data loader threads (default 2)")->check(CLI::Range(0, 256));
  app.add_option("--threads", o.threads, "CPU compute threads (default: all)")->check(CLI::Range(0, 1024));
  app.add_option("--seed", o.seed, "seed of weights, split, order and augmentation (default 0)");
  tools::add_device_flag(app, o.device);
  tools::add_compute_flags(app, o.precision, o.channels_last);
  app.footer(
      "metrics.jsonl, one line per epoch: epoch, lr (of that epoch), train_loss (the training loss, weighted), "
      "val_loss (cross-entropy of the validation probabilities, clipped to [1e-7, 1-1e-7], unweighted), val_auroc "
      "(binary, or macro one-vs-rest), val_accuracy (binary: at 0.5), val_threshold (binary: Youden's J), seconds, "
      "best. best.safetensors holds the epoch with the highest val_auroc and its metadata (model, num_classes = "
      "outputs, img_size, mean, std, threshold, epoch) for pneuma-predict and pneuma-eval. A run killed at any point "
      "continues with --resume OUT, bit-identical on the CPU with the same --threads.");
  return tools::run_tool(app, argc, argv, [&] {
    if (o.resume.empty()) {
      PNEUMA_CHECK(!o.model.empty(), "--model is required");
      PNEUMA_CHECK(!o.data.empty(), "--data is required");
    }
    return run(app, o);
  });
}
