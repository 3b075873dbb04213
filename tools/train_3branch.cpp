// pneuma-train-3branch: seed 000's comparison (Zunaed et al.): the three-branch framework
// (pediatric, adult and common paths; focal + multi-positive contrastive + class-wise
// embedding similarity/dissimilarity losses) and its ablations, trained with stratified
// patient-level k-fold cross-validation and reported as AUROC mean +- std over the folds
// on the pediatric, the adult and both validation sets (the shape of Tables I-III).
//
// Data: --pediatric and --adult (folders or CSV manifests), or one --data CSV with a
// domain column (pediatric / adult). Each (class, domain) group must have images: the
// paper's sampler fills every batch 1:1 by class and 1:1 by domain.
//
// One configuration (--mode threebranch|single, --train-domains, --[no-]contrastive,
// --[no-]embedding) or several (--ablations all|tables|NAME,...) on the same folds.
// Per configuration and fold the output folder gets best.safetensors (the epoch with the
// best AUROC on the whole validation fold; a "threebranch-<backbone>" checkpoint whose
// common path pneuma-eval / pneuma-predict run) and metrics.jsonl (one line per epoch,
// echoed on stdout). At the end: results.jsonl (every fold and table row), table.md and
// table.jsonl in --out, the table on stderr, and --table FILE as markdown. stdout carries
// JSON lines only.
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/generator.h"
#include "engine/cpu/parallel.h"
#include "engine/data/dataset.h"
#include "engine/data/device_batch.h"
#include "engine/data/loader.h"
#include "engine/data/manifest.h"
#include "engine/data/rng.h"
#include "engine/data/sampler.h"
#include "engine/data/split.h"
#include "engine/data/transforms.h"
#include "engine/io/checkpoint.h"
#include "engine/metrics/classification.h"
#include "engine/train/checkpointing.h"
#include "engine/train/data_setup.h"
#include "engine/train/epoch_loop.h"
#include "engine/train/metrics_log.h"
#include "engine/train/optimizer_factory.h"
#include "engine/train/predict.h"
#include "engine/train/progress.h"
#include "engine/train/three_branch_step.h"
#include "models/freeze.h"
#include "models/registry.h"
#include "models/three_branch.h"
#include "tools/common/cli.h"
#include "tools/common/device.h"

using namespace pneuma;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPediatric = "pediatric";
constexpr const char* kAdult = "adult";
constexpr const char* kClassNames[2] = {"normal", "pneumonia"};
// Domain ids in batches and in the per-record lists below.
constexpr train::DomainIds kDomainIds{0, 1};

struct Options {
  std::string pediatric, adult, data, out, table, init;
  std::string mode = "threebranch", train_domains = "both";
  // Default: on for the three-branch framework, off for a single branch (a plain backbone
  // with focal loss, Table I); given explicitly they hold for either mode.
  bool contrastive = true, embedding = true;
  bool contrastive_given = false, embedding_given = false;
  std::string ablations;
  std::string backbone = "resnet50";
  int64_t img_size = 224, batch = 32, epochs = 50, batches_per_epoch = 0;
  double lr = 1e-4, weight_decay = 1e-4;
  double focal_alpha = 0.25, focal_gamma = 2.0, temperature = 0.1;
  double w_focal = 1, w_contrastive = 1, w_similarity = 1, w_dissimilarity = 1;
  int64_t folds = 4, fold = -1;
  std::string augment = "paper";
  bool skip_bad = false;
  int threads = 0, workers = 2;
  uint64_t seed = 0;
  std::string device = "cpu";
};

// ---- configurations

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

std::vector<train::ComparisonConfig> configurations(const Options& o) {
  std::vector<std::string> names;
  if (o.ablations == "all") {
    // The rows the README's comparison prints: Table I's three single-branch trainings,
    // then the three-branch framework alone, with the contrastive loss, and with both.
    names = {"pediatric-only", "adult-only", "joint", "three-branch", "three-branch+contrastive",
             "three-branch+contrastive+embedding"};
  } else if (o.ablations == "tables") {
    // Exactly the paper's rows: Table I, Table II's contrastive rows, Table III's last.
    names = {"pediatric-only", "adult-only", "joint", "pediatric-only+contrastive", "adult-only+contrastive",
             "joint+contrastive", "three-branch+contrastive+embedding"};
  } else if (!o.ablations.empty()) {
    names = split_list(o.ablations);
    PNEUMA_CHECK(!names.empty(), "--ablations '", o.ablations, "' names no configuration");
  }
  std::vector<train::ComparisonConfig> configs;
  for (const std::string& name : names) {
    configs.push_back(train::ComparisonConfig::parse(name));
    for (size_t i = 0; i + 1 < configs.size(); ++i)
      PNEUMA_CHECK(configs[i].name() != configs.back().name(), "--ablations names ", name, " twice");
  }
  if (!configs.empty()) return configs;

  train::ComparisonConfig c;
  PNEUMA_CHECK(o.mode == "threebranch" || o.mode == "single", "unknown --mode '", o.mode, "' (threebranch, single)");
  c.three_branch = o.mode == "threebranch";
  c.contrastive = o.contrastive_given ? o.contrastive : c.three_branch;
  c.embedding = o.embedding_given ? o.embedding : c.three_branch;
  if (c.three_branch) {
    PNEUMA_CHECK(o.train_domains == "both", "--train-domains ", o.train_domains,
                 ": the three-branch framework trains on both domains (use --mode single)");
  } else {
    PNEUMA_CHECK(o.train_domains == kPediatric || o.train_domains == kAdult || o.train_domains == "both",
                 "unknown --train-domains '", o.train_domains, "' (pediatric, adult, both)");
    c.train_pediatric = o.train_domains != kAdult;
    c.train_adult = o.train_domains != kPediatric;
    // A single branch has no other paths to compare its class embeddings with.
    PNEUMA_CHECK(!c.embedding, "--embedding: the embedding losses compare the three paths (--mode threebranch)");
  }
  return {c};
}

// ---- data

// A folder or CSV of one domain: every record gets that domain, and patients are
// prefixed with it so that two manifests' ids never merge into one patient.
data::Manifest open_domain(const std::string& path, const std::string& domain, const Options& o) {
  data::Manifest m = train::open_training_data(path, o.skip_bad, std::max(1, o.threads));
  for (data::Record& r : m.records) {
    r.domain = domain;
    r.patient = domain + "/" + (r.patient.empty() ? r.path : r.patient);
  }
  m.has_domain = m.has_patient = true;
  return m;
}

data::Manifest merge(const data::Manifest& pediatric, const data::Manifest& adult) {
  data::Manifest m;
  m.source = pediatric.source + " + " + adult.source;
  m.has_domain = m.has_patient = true;
  m.has_subtype = pediatric.has_subtype && adult.has_subtype;
  for (const data::Manifest* part : {&pediatric, &adult})
    for (data::Record r : part->records) {
      r.extra.clear();
      r.fold = -1;
      m.records.push_back(std::move(r));
    }
  return m;
}

std::string group_name(int64_t label, const std::string& domain) {
  return std::string(kClassNames[label]) + " " + domain;
}

// Images per (class, domain): [label][domain id].
std::array<std::array<int64_t, 2>, 2> group_counts(const data::Manifest& m) {
  std::array<std::array<int64_t, 2>, 2> counts{};
  for (const data::Record& r : m.records) ++counts[r.label][r.domain == kPediatric ? 0 : 1];
  return counts;
}

void require_groups(const data::Manifest& m, const std::string& what, bool pediatric = true, bool adult = true) {
  const auto counts = group_counts(m);
  for (int64_t label = 0; label < 2; ++label)
    for (int64_t d = 0; d < 2; ++d) {
      if ((d == 0 && !pediatric) || (d == 1 && !adult)) continue;
      PNEUMA_CHECK(counts[label][d] > 0, what, ": no ", group_name(label, d == 0 ? kPediatric : kAdult),
                   " images (every class x domain group needs some)");
    }
}

data::Manifest open_data(const Options& o) {
  data::Manifest all;
  if (!o.data.empty()) {
    const std::string no_domain = ": no domain column (pediatric / adult); or give --pediatric and --adult";
    // Before every image is decoded: a manifest without domains is not worth opening.
    if (fs::is_regular_file(o.data))
      PNEUMA_CHECK(data::read_manifest(o.data, /*skip_bad=*/true).has_domain, o.data, no_domain);
    all = train::open_training_data(o.data, o.skip_bad, std::max(1, o.threads));
    PNEUMA_CHECK(all.has_domain, o.data, no_domain);
    for (data::Record& r : all.records) {
      PNEUMA_CHECK(r.domain == kPediatric || r.domain == kAdult, o.data, ": line ", r.line, ": domain '", r.domain,
                   "' is neither pediatric nor adult");
      r.patient = r.domain + "/" + (r.patient.empty() ? r.path : r.patient);
    }
    all.has_patient = true;
  } else {
    all = merge(open_domain(o.pediatric, kPediatric, o), open_domain(o.adult, kAdult, o));
  }
  PNEUMA_CHECK(all.num_classes() <= 2, all.source, ": label ", all.num_classes() - 1,
               " found; the comparison is binary (0 normal, 1 pneumonia)");
  require_groups(all, all.source);
  return all;
}

// Fold of every record: the CSV's own fold column when it has one, else a stratified
// patient-level k-fold (strata: label x domain) with --seed.
std::vector<int64_t> fold_of_records(const data::Manifest& all, const Options& o) {
  if (all.has_fold) {
    std::vector<int64_t> folds;
    for (const data::Record& r : all.records) {
      PNEUMA_CHECK(r.fold >= 0 && r.fold < o.folds, all.source, ": line ", r.line, ": fold ", r.fold,
                   " outside [0, ", o.folds, ") (--folds)");
      folds.push_back(r.fold);
    }
    return folds;
  }
  return data::stratified_patient_kfold(all, o.folds, o.seed);
}

data::Manifest select(const data::Manifest& all, const std::vector<int64_t>& folds, int64_t fold, bool in_fold,
                      bool pediatric = true, bool adult = true) {
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < all.size(); ++i) {
    const data::Record& r = all.records[static_cast<size_t>(i)];
    const bool domain_ok = r.domain == kPediatric ? pediatric : adult;
    if ((folds[static_cast<size_t>(i)] == fold) == in_fold && domain_ok) keep.push_back(i);
  }
  return all.subset(keep);
}

std::vector<int64_t> domain_ids(const data::Manifest& m) {
  std::vector<int64_t> ids;
  for (const data::Record& r : m.records)
    ids.push_back(r.domain == kPediatric ? kDomainIds.pediatric : kDomainIds.adult);
  return ids;
}

data::Pipeline train_pipeline(const Options& o) {
  if (o.augment == "cxr") return data::Pipeline::cxr_train(o.img_size);
  data::Pipeline p = data::Pipeline::eval(o.img_size);
  // The paper's augmentations: horizontal flip, random brightness and contrast.
  if (o.augment == "paper") p.add<data::RandomHorizontalFlip>(0.5).add<data::ColorJitter>(0.2, 0.2);
  return p;
}

// ---- training and validation

struct Auroc {
  double pediatric = 0, adult = 0, both = 0;
};

struct FoldResult {
  int64_t fold = 0, best_epoch = 0;
  Auroc best;  // at the epoch with the best `both`
};

Auroc validation_auroc(const train::Predictions& p, const data::Manifest& val) {
  const std::vector<double> scores = p.positive_scores();
  std::vector<double> domain_scores[2];
  std::vector<int64_t> domain_labels[2];
  for (int64_t i = 0; i < p.size(); ++i) {
    const size_t d = val.records[static_cast<size_t>(p.indices[static_cast<size_t>(i)])].domain == kPediatric ? 0 : 1;
    domain_scores[d].push_back(scores[static_cast<size_t>(i)]);
    domain_labels[d].push_back(p.labels[static_cast<size_t>(i)]);
  }
  return {metrics::roc_auc(domain_scores[0], domain_labels[0]), metrics::roc_auc(domain_scores[1], domain_labels[1]),
          metrics::roc_auc(scores, p.labels)};
}

train::ComparisonLossOptions loss_options(const Options& o) {
  train::ComparisonLossOptions l;
  l.focal_alpha = o.focal_alpha;
  l.focal_gamma = o.focal_gamma;
  l.temperature = o.temperature;
  l.w_focal = o.w_focal;
  l.w_contrastive = o.w_contrastive;
  l.w_similarity = o.w_similarity;
  l.w_dissimilarity = o.w_dissimilarity;
  return l;
}

// --init: backbone weights by their torchvision names (pneuma-simclr's backbone.safetensors,
// a converted torchvision or CheXpert-pretrained ResNet-50, a pneuma-train checkpoint) for
// all three paths' backbones; a classifier in the file is ignored. Checked before any data
// is read: a tensor of another shape means another architecture, and a file without any
// backbone tensor is another model's.
void check_init_weights(const Options& o) {
  const auto backbone = models::create_classifier(o.backbone, 0);
  const size_t tensors = backbone->state_dict().size();
  const io::LoadReport fit = io::compare_state_dict(*backbone, io::read_safetensors_header(o.init));
  PNEUMA_CHECK(fit.mismatched.empty(), "--init ", o.init, " does not fit the ", o.backbone, " backbone: ", fit.str());
  PNEUMA_CHECK(fit.missing_keys.size() < tensors, "--init ", o.init, ": no tensor of the ", o.backbone,
               " backbone is in the file");
  const std::string missing =
      fit.missing_keys.empty() ? "" : "; not in the file: " + io::LoadReport{fit.missing_keys, {}, {}, {}}.str();
  std::fprintf(stderr, "pneuma-train-3branch: --init %s: %zu of %zu backbone tensors for each path%s\n",
               o.init.c_str(), tensors - fit.missing_keys.size(), tensors, missing.c_str());
}

void load_backbone_weights(models::ThreeBranch& model, const std::string& path) {
  io::LoadOptions options;
  options.strict = false;
  for (const models::Branch branch : {models::Branch::Pediatric, models::Branch::Adult, models::Branch::Common})
    io::load_checkpoint(*model.path(branch)->backbone, path, options);
}

FoldResult train_fold(const Options& o, const train::ComparisonConfig& config, const data::Manifest& all,
                      const std::vector<int64_t>& folds, int64_t fold, const std::string& dir, Device device) {
  const data::Manifest train_set =
      select(all, folds, fold, /*in_fold=*/false, config.train_pediatric, config.train_adult);
  const data::Manifest val_set = select(all, folds, fold, /*in_fold=*/true);
  const std::string fold_name = "fold " + std::to_string(fold);
  require_groups(train_set, config.name() + ": " + fold_name + " training set", config.train_pediatric,
                 config.train_adult);
  require_groups(val_set, fold_name + " validation set (too few patients for --folds " + std::to_string(o.folds) +
                              "?)");
  fs::create_directories(dir);

  // The same initial weights for every configuration of a fold.
  manual_seed(data::derive_seed(o.seed, static_cast<uint64_t>(fold)));
  // The model's default projection head (models/three_branch.h), so that the checkpoint
  // loads by its registry name "threebranch-<backbone>" in pneuma-eval and pneuma-predict.
  models::ThreeBranchOptions architecture;
  architecture.backbone = o.backbone;
  architecture.num_classes = 1;
  models::ThreeBranch model(architecture);
  if (!o.init.empty()) load_backbone_weights(model, o.init);
  model.to(device);  // before the optimizer: its state lives with the parameters
  auto optimizer = train::make_optimizer("adamw", train::comparison_parameters(model, config), o.lr, o.weight_decay);
  const train::ComparisonLossOptions losses = loss_options(o);

  // Batches 1:1 by class and, when both domains train, 1:1 by domain.
  const std::vector<int64_t> train_domains = domain_ids(train_set);
  std::vector<int64_t> sampler_domains = train_domains;
  if (!(config.train_pediatric && config.train_adult)) std::fill(sampler_domains.begin(), sampler_domains.end(), 0);
  const auto sampler = std::make_shared<data::BalancedSampler>(
      train_set.labels(), sampler_domains, o.batch, data::derive_seed(o.seed, 1000 + static_cast<uint64_t>(fold)),
      o.batches_per_epoch);
  data::LoaderOptions loader_options;
  loader_options.batch_size = o.batch;
  loader_options.workers = o.workers;
  loader_options.seed = data::derive_seed(o.seed, 2000 + static_cast<uint64_t>(fold));
  loader_options.pin_memory = device.is_cuda();  // data::to_device uploads pinned batches asynchronously
  data::DataLoader train_loader(std::make_shared<data::ImageDataset>(train_set, train_pipeline(o)), sampler,
                                loader_options);
  const data::Pipeline eval_pipeline = data::Pipeline::eval(o.img_size);
  data::LoaderOptions val_options = loader_options;
  data::DataLoader val_loader(std::make_shared<data::ImageDataset>(val_set, eval_pipeline),
                              std::make_shared<data::SequentialSampler>(val_set.size()), val_options);

  const std::string model_name = "threebranch-" + o.backbone;
  io::Metadata meta = train::checkpoint_metadata(model_name, 1, o.img_size, eval_pipeline.normalization(), 0);
  meta["configuration"] = config.name();
  meta["fold"] = std::to_string(fold);
  meta["folds"] = std::to_string(o.folds);
  meta["seed"] = std::to_string(o.seed);

  train::MetricsLog log((fs::path(dir) / "metrics.jsonl").string());
  const int64_t batches = train_loader.batches_per_epoch();
  FoldResult result;
  result.fold = fold;
  result.best.both = -1;
  const std::string best_path = (fs::path(dir) / train::kBestCheckpoint).string();
  const train::EpochLoop epochs{"pneuma-train-3branch", dir, 0, o.epochs, 0, nullptr, 0, ""};
  epochs.run([&](int64_t epoch) {
    const train::Stopwatch stopwatch;
    models::set_training(model, true);
    train_loader.start_epoch(epoch);
    train::ProgressBar bar(config.name() + " fold " + std::to_string(fold + 1) + "/" + std::to_string(o.folds) + " " +
                               train::epoch_label(epoch, o.epochs),
                           batches);
    const std::string keep_note = result.best_epoch > 0 ? "the best checkpoint so far in " + best_path
                                                        : std::string("no checkpoint of this fold yet");
    train::LossTerms sums;  // of the terms over the epoch's steps
    train::RunningMean train_loss;
    while (std::optional<data::Batch> host_batch = train_loader.next()) {
      const data::Batch batch = data::to_device(*host_batch, device);
      std::vector<int64_t> batch_domains;
      for (int64_t index : batch.indices) batch_domains.push_back(train_domains[static_cast<size_t>(index)]);
      const Tensor domains = Tensor::from_indices(batch_domains, {batch.size()}).to(device);
      const int64_t step = epoch * batches + batch.index + 1;
      const train::LossTerms terms = train::comparison_step(model, *optimizer, config, losses, batch.images(),
                                                            batch.labels, domains, kDomainIds, step, keep_note);
      sums.focal += terms.focal;
      sums.contrastive += terms.contrastive;
      sums.similarity += terms.similarity;
      sums.dissimilarity += terms.dissimilarity;
      train_loss.add(terms.total.item());
      bar.update(batch.index + 1, "loss " + train::fixed4(train_loss.mean()));
    }
    const train::Predictions predictions = train::predict(model, val_loader);
    const Auroc auroc = validation_auroc(predictions, val_set);
    char status[96];
    std::snprintf(status, sizeof status, "val AUROC ped %.4f adult %.4f both %.4f", auroc.pediatric, auroc.adult,
                  auroc.both);
    bar.finish(status);

    const bool best = auroc.both > result.best.both;
    if (best) {
      result.best = auroc;
      result.best_epoch = epoch + 1;
      meta["epoch"] = std::to_string(epoch + 1);
      meta["val_auroc"] = train::format_number(auroc.both);
      meta["val_auroc_pediatric"] = train::format_number(auroc.pediatric);
      meta["val_auroc_adult"] = train::format_number(auroc.adult);
      // The decision threshold pneuma-eval and pneuma-predict apply: Youden's J on this fold.
      meta["threshold"] =
          train::format_number(metrics::youden_threshold(predictions.positive_scores(), predictions.labels));
      io::save_checkpoint(model, best_path, meta);
    }
    const double n = static_cast<double>(std::max<int64_t>(train_loss.count(), 1));
    log.write({{"configuration", config.name()},
               {"fold", fold},
               {"epoch", epoch + 1},
               {"steps", train_loss.count()},
               {"lr", o.lr},
               {"train_loss", train_loss.mean()},
               {"focal", sums.focal / n},
               {"contrastive", sums.contrastive / n},
               {"similarity", sums.similarity / n},
               {"dissimilarity", sums.dissimilarity / n},
               {"val_auroc_pediatric", auroc.pediatric},
               {"val_auroc_adult", auroc.adult},
               {"val_auroc_both", auroc.both},
               {"best", best},
               {"seconds", stopwatch.seconds()}});
  });
  return result;
}

// ---- the table

struct Row {
  train::ComparisonConfig config;
  std::vector<FoldResult> folds;
  metrics::MeanStd pediatric, adult, both;
};

Row summarize(const train::ComparisonConfig& config, std::vector<FoldResult> folds) {
  Row row{config, std::move(folds), {}, {}, {}};
  std::vector<double> p, a, b;
  for (const FoldResult& f : row.folds) {
    p.push_back(f.best.pediatric);
    a.push_back(f.best.adult);
    b.push_back(f.best.both);
  }
  row.pediatric = metrics::mean_std(p);
  row.adult = metrics::mean_std(a);
  row.both = metrics::mean_std(b);
  return row;
}

nlohmann::json row_json(const Row& row) {
  nlohmann::json folds = nlohmann::json::array();
  for (const FoldResult& f : row.folds)
    folds.push_back({{"fold", f.fold},
                     {"best_epoch", f.best_epoch},
                     {"auroc_pediatric", f.best.pediatric},
                     {"auroc_adult", f.best.adult},
                     {"auroc_both", f.best.both}});
  return {{"row", row.config.name()},
          {"train_pediatric", row.config.train_pediatric},
          {"train_adult", row.config.train_adult},
          {"three_branch", row.config.three_branch},
          {"contrastive", row.config.contrastive},
          {"embedding", row.config.embedding},
          {"auroc_pediatric", metrics::to_json(row.pediatric)},
          {"auroc_adult", metrics::to_json(row.adult)},
          {"auroc_both", metrics::to_json(row.both)},
          {"folds", folds}};
}

std::string mean_std_text(const metrics::MeanStd& v) {
  char text[48];
  std::snprintf(text, sizeof text, "%.4f ± %.4f", v.mean, v.std);
  return text;
}

std::string markdown_table(const std::vector<Row>& rows, const Options& o, int64_t folds_run) {
  std::ostringstream md;
  md << "AUROC (mean ± std over " << folds_run << " validation fold" << (folds_run == 1 ? "" : "s")
     << " of a stratified patient-level " << o.folds << "-fold split; epoch chosen on each fold's AUROC on both "
     << "domains; backbone " << o.backbone << ", " << o.img_size << " px, " << o.epochs << " epoch"
     << (o.epochs == 1 ? "" : "s") << ")\n\n";
  md << "| Configuration | Pediatric CXR | Adult CXR | Three-branch | Contrastive | Embedding "
        "| AUROC pediatric | AUROC adult | AUROC both |\n";
  md << "|---|:-:|:-:|:-:|:-:|:-:|:-:|:-:|:-:|\n";
  auto tick = [](bool on) { return on ? "✓" : ""; };
  for (const Row& r : rows) {
    const train::ComparisonConfig& c = r.config;
    md << "| " << c.name() << " | " << tick(c.train_pediatric) << " | " << tick(c.train_adult) << " | "
       << tick(c.three_branch) << " | " << tick(c.contrastive) << " | " << tick(c.embedding) << " | "
       << mean_std_text(r.pediatric) << " | " << mean_std_text(r.adult) << " | " << mean_std_text(r.both) << " |\n";
  }
  return md.str();
}

void write_file(const std::string& path, const std::string& text) {
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    PNEUMA_CHECK(out.good(), "cannot write ", path);
    out << text;
    PNEUMA_CHECK(out.good(), "cannot write ", path);
  }
  fs::rename(temporary, path);
}

void validate(const Options& o) {
  PNEUMA_CHECK(!o.out.empty(), "--out is required");
  PNEUMA_CHECK(o.data.empty() != (o.pediatric.empty() && o.adult.empty()),
               "give either --data CSV (with a domain column) or --pediatric and --adult, not both");
  PNEUMA_CHECK(!o.data.empty() || (!o.pediatric.empty() && !o.adult.empty()),
               o.pediatric.empty() ? "--pediatric is missing (--adult is given)" : "--adult is missing (--pediatric is given)");
  const auto names = models::classifier_names();
  PNEUMA_CHECK(std::find(names.begin(), names.end(), o.backbone) != names.end(), "unknown backbone '", o.backbone,
               "'");
  PNEUMA_CHECK(o.augment == "paper" || o.augment == "cxr" || o.augment == "none", "unknown --augment '", o.augment,
               "' (paper, cxr, none)");
  PNEUMA_CHECK(o.fold < o.folds, "--fold ", o.fold, " outside [0, ", o.folds, ")");
}

int run(const Options& o) {
  validate(o);
  const Device device = tools::select_device(o.device);
  const std::vector<train::ComparisonConfig> configs = configurations(o);
  for (const train::ComparisonConfig& c : configs) {
    const int64_t groups = (c.train_pediatric && c.train_adult) ? 4 : 2;
    PNEUMA_CHECK(o.batch % groups == 0, "--batch ", o.batch, " is not a multiple of ", groups, " (", c.name(),
                 ": 2 classes x ", groups / 2, " domain", groups == 4 ? "s" : "", ", balanced)");
  }
  if (o.threads > 0) cpu::set_num_threads(o.threads);

  if (!o.init.empty()) check_init_weights(o);
  const data::Manifest all = open_data(o);
  const std::vector<int64_t> folds = fold_of_records(all, o);
  std::vector<int64_t> fold_list;
  for (int64_t k = 0; k < o.folds; ++k)
    if (o.fold < 0 || o.fold == k) fold_list.push_back(k);
  // Every fold's sets checked before the first one trains, not hours later.
  for (int64_t k : fold_list) {
    const std::string fold_name = "fold " + std::to_string(k);
    require_groups(select(all, folds, k, /*in_fold=*/false), fold_name + " training set");
    require_groups(select(all, folds, k, /*in_fold=*/true),
                   fold_name + " validation set (too few patients for --folds " + std::to_string(o.folds) + "?)");
  }
  const auto counts = group_counts(all);
  std::fprintf(stderr,
               "pneuma-train-3branch: %lld images (pediatric: %lld normal, %lld pneumonia; adult: %lld normal, "
               "%lld pneumonia), %lld folds, %zu configuration(s)\n",
               static_cast<long long>(all.size()), static_cast<long long>(counts[0][0]),
               static_cast<long long>(counts[1][0]), static_cast<long long>(counts[0][1]),
               static_cast<long long>(counts[1][1]), static_cast<long long>(o.folds), configs.size());

  fs::create_directories(o.out);
  train::MetricsLog results((fs::path(o.out) / "results.jsonl").string());

  const bool several = !o.ablations.empty();
  std::vector<Row> rows;
  for (const train::ComparisonConfig& config : configs) {
    std::vector<FoldResult> fold_results;
    for (int64_t k : fold_list) {
      const fs::path dir = (several ? fs::path(o.out) / config.name() : fs::path(o.out)) / ("fold" + std::to_string(k));
      const FoldResult r = train_fold(o, config, all, folds, k, dir.string(), device);
      results.write({{"configuration", config.name()},
                     {"fold", k},
                     {"best_epoch", r.best_epoch},
                     {"auroc_pediatric", r.best.pediatric},
                     {"auroc_adult", r.best.adult},
                     {"auroc_both", r.best.both},
                     {"checkpoint", (dir / train::kBestCheckpoint).string()}});
      fold_results.push_back(r);
    }
    rows.push_back(summarize(config, std::move(fold_results)));
    results.write(row_json(rows.back()));
  }

  const std::string table = markdown_table(rows, o, static_cast<int64_t>(fold_list.size()));
  std::string table_lines;
  for (const Row& r : rows) table_lines += row_json(r).dump() + "\n";
  write_file((fs::path(o.out) / "table.md").string(), table);
  write_file((fs::path(o.out) / "table.jsonl").string(), table_lines);
  if (!o.table.empty()) write_file(o.table, table);
  std::fprintf(stderr, "\n%s\n", table.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Seed 000's comparison: the three-branch framework (pediatric, adult and common paths) and its "
               "ablations, k-fold cross-validated, AUROC on pediatric, adult and both",
               "pneuma-train-3branch"};
  Options o;
  app.add_option("--pediatric", o.pediatric, "pediatric images: Kermany folder or CSV manifest (path,label,...)");
  app.add_option("--adult", o.adult, "adult images: Kermany folder or CSV manifest");
  app.add_option("--data", o.data, "one CSV manifest with a domain column (pediatric / adult) instead");
  app.add_option("--out", o.out, "output folder (per configuration and fold: best.safetensors, metrics.jsonl)");
  auto* mode = app.add_option("--mode", o.mode, "threebranch (default) or single (one path: the ablations of Tables I-II)");
  auto* train_domains = app.add_option("--train-domains", o.train_domains, "--mode single: pediatric, adult or both (default both)");
  auto* contrastive = app.add_flag("--contrastive,!--no-contrastive", o.contrastive,
               "multi-positive contrastive loss on each trained path's embeddings (default: on for threebranch, off "
               "for single)");
  auto* embedding = app.add_flag("--embedding,!--no-embedding", o.embedding,
               "class-wise embedding similarity + dissimilarity losses, three-branch only (default on)");
  auto* ablations = app.add_option("--ablations", o.ablations,
                 "run several configurations on the same folds and print the table: all (pediatric-only, adult-only, "
                 "joint, three-branch, three-branch+contrastive, three-branch+contrastive+embedding), tables (the "
                 "paper's rows: the single-branch ones with and without +contrastive, then "
                 "three-branch+contrastive+embedding) or a comma-separated list of such names");
  app.add_option("--table", o.table, "also write the table (markdown) to this file");
  app.add_option("--init", o.init,
                 "pretrained backbone weights (safetensors, torchvision names) for all three paths; the paper "
                 "starts from a CheXpert-pretrained ResNet-50");
  app.add_option("--backbone", o.backbone, "each path's backbone: resnet50 (default), resnet18, simplecnn, ...");
  app.add_option("--img-size", o.img_size, "square input size (default 224)")->check(CLI::Range(8, 4096));
  app.add_option("--batch", o.batch, "batch size, balanced 1:1 by class and by domain (default 32)")
      ->check(CLI::Range(int64_t{2}, int64_t{65536}));
  app.add_option("--epochs", o.epochs, "epochs (default 50)")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--batches-per-epoch", o.batches_per_epoch,
                 "batches per epoch (default: until the largest class x domain group is seen once)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--lr", o.lr, "AdamW learning rate (default 1e-4)")->check(CLI::PositiveNumber);
  app.add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay (default 1e-4)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--focal-alpha", o.focal_alpha, "focal loss alpha (default 0.25; < 0 disables)");
  app.add_option("--focal-gamma", o.focal_gamma, "focal loss gamma (default 2)")->check(CLI::NonNegativeNumber);
  app.add_option("--temperature", o.temperature,
                 "multi-positive contrastive temperature (default 0.1, StableRep's; the paper states none)")
      ->check(CLI::PositiveNumber);
  app.add_option("--w-focal", o.w_focal, "weight of the focal losses (default 1)")->check(CLI::NonNegativeNumber);
  app.add_option("--w-contrastive", o.w_contrastive, "weight of the contrastive losses (default 1)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--w-similarity", o.w_similarity, "weight of the embedding similarity loss (default 1)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--w-dissimilarity", o.w_dissimilarity, "weight of the embedding dissimilarity loss (default 1)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--folds", o.folds, "cross-validation folds, stratified by class and domain, by patient (default 4)")
      ->check(CLI::Range(int64_t{2}, int64_t{1000}));
  app.add_option("--fold", o.fold, "run this fold only (0-based; default all)")->check(CLI::NonNegativeNumber);
  app.add_option("--augment", o.augment, "paper (flip, brightness, contrast; default), cxr (crop, rotation, shift, "
                                         "brightness, contrast) or none");
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable images instead of stopping");
  app.add_option("--seed", o.seed, "seed of folds, weights, batches and augmentation (default 0)");
  app.add_option("--threads", o.threads, "CPU compute threads (default: all)")->check(CLI::Range(0, 1024));
  app.add_option("--workers", o.workers, "data loader threads (default 2)")->check(CLI::Range(0, 256));
  tools::add_device_flag(app, o.device);
  // --ablations names its configurations itself.
  ablations->excludes(mode)->excludes(train_domains)->excludes(contrastive)->excludes(embedding);
  return tools::run_tool(app, argc, argv, [&] {
    o.contrastive_given = contrastive->count() > 0;
    o.embedding_given = embedding->count() > 0;
    return run(o);
  });
}
