// pneuma-simclr: SimCLR self-supervised pretraining (seed 003) on unlabeled images. Each
// image gives two views (data::Pipeline::simclr: random resized crop, brightness/contrast
// jitter, blur); the backbone (any registry classifier without its classifier) and a
// projection MLP map both views of a batch of N to 2N embeddings, and NT-Xent (temperature
// 0.1) pulls each view towards its twin and away from the other 2N - 2. Writes to --out:
//   backbone.safetensors     the backbone alone under torchvision's names, no classifier:
//                            `pneuma-train --init DIR/backbone.safetensors` fine-tunes it
//   last.safetensors         backbone + projection head ("backbone.*", "head.*")
//   train_state.safetensors  what --resume needs
//   metrics.jsonl            one JSON line per epoch (loss, contrastive top-1 accuracy)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/core/generator.h"
#include "engine/cpu/parallel.h"
#include "engine/data/dataset.h"
#include "engine/data/device_batch.h"
#include "engine/data/loader.h"
#include "engine/data/rng.h"
#include "engine/data/sampler.h"
#include "engine/data/transforms.h"
#include "engine/io/checkpoint.h"
#include "engine/ops/index/index.h"
#include "engine/ops/loss/loss.h"
#include "engine/train/checkpointing.h"
#include "engine/train/epoch_loop.h"
#include "engine/train/image_set.h"
#include "engine/train/metrics_log.h"
#include "engine/train/progress.h"
#include "engine/train/scheduler.h"
#include "models/freeze.h"
#include "models/heads.h"
#include "models/registry.h"
#include "tools/common/cli.h"
#include "tools/common/compute.h"
#include "tools/common/device.h"
#include "tools/common/optimization.h"
#include "tools/common/resume.h"

using namespace pneuma;
namespace fs = std::filesystem;

namespace {

constexpr const char* kMetricsFile = "metrics.jsonl";
constexpr const char* kBackboneFile = "backbone.safetensors";

// Every setting of a run; member names are the flags with '-' as '_' (see tools/common/resume.h).
struct Settings {
  std::string model = "resnet50", data, out, resume;
  int64_t img_size = 224, epochs = 100, batch = 64;
  double temperature = 0.1;
  int64_t proj_hidden = 0, proj_dim = 128;
  bool proj_bn = true;
  double clip_grad = 0;
  bool skip_bad = false;
  int workers = 2, threads = 0;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string precision = "fp32";
  bool channels_last = false;
  int64_t stop_after = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Settings, model, data, out, resume, img_size, epochs, batch,
                                                temperature, proj_hidden, proj_dim, proj_bn, clip_grad, skip_bad,
                                                workers, threads, seed, device, precision, channels_last, stop_after)

using Options = tools::SettingsAndOptimization<Settings>;
// SimCLR's defaults at small batch: Adam 3e-4, weight decay 1e-6, cosine decay.
const tools::OptimizationFlags kSimclrOptimization{"adam", 3e-4, 1e-6, 0.9, "cosine", 30, 0.1, 0, 10, 0.1, 0};

const std::set<std::string> kMayChangeOnResume = tools::may_change_on_resume();

// Backbone and projection head as one module, so the train state holds both.
class SimClrNet : public nn::Module {
 public:
  SimClrNet(std::shared_ptr<models::ImageClassifier> backbone_model, std::shared_ptr<models::ProjectionHead> head_model)
      : backbone(register_module("backbone", std::move(backbone_model))),
        head(register_module("head", std::move(head_model))) {}
  Tensor forward(const Tensor& x) const { return head->forward(backbone->features(x)); }

  std::shared_ptr<models::ImageClassifier> backbone;
  std::shared_ptr<models::ProjectionHead> head;
};

void validate(const Options& o) {
  PNEUMA_CHECK(!o.out.empty(), "--out (or --resume) is required");
  const auto names = models::classifier_names();
  PNEUMA_CHECK(std::find(names.begin(), names.end(), o.model) != names.end(), "unknown model '", o.model, "'");
  tools::check_optimization_flags(o.optimization);
  PNEUMA_CHECK(o.temperature > 0 && std::isfinite(o.temperature), "--temperature ", o.temperature, " must be > 0");
}

// How often each embedding's nearest other embedding (cosine) is its twin view: SimCLR's
// "contrastive accuracy", a quick check that the pretext task is being learned.
double contrastive_accuracy(const Tensor& z) {
  const int64_t rows = z.size(0), dim = z.size(1), half = rows / 2;
  std::vector<double> v = z.contiguous().to_vector();
  for (int64_t i = 0; i < rows; ++i) {
    double norm = 0;
    for (int64_t d = 0; d < dim; ++d) norm += v[static_cast<size_t>(i * dim + d)] * v[static_cast<size_t>(i * dim + d)];
    norm = std::max(std::sqrt(norm), 1e-12);
    for (int64_t d = 0; d < dim; ++d) v[static_cast<size_t>(i * dim + d)] /= norm;
  }
  int64_t correct = 0;
  for (int64_t i = 0; i < rows; ++i) {
    int64_t best = -1;
    double best_similarity = -2;
    for (int64_t j = 0; j < rows; ++j) {
      if (j == i) continue;
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) s += v[static_cast<size_t>(i * dim + d)] * v[static_cast<size_t>(j * dim + d)];
      if (s > best_similarity) best_similarity = s, best = j;
    }
    correct += best == (i + half) % rows;
  }
  return static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(rows, 1));
}

int run(const CLI::App& app, Options o) {
  for (std::string* path : {&o.data, &o.out, &o.resume}) *path = tools::absolute_path(*path);
  const bool resuming = !o.resume.empty();
  if (resuming) o = tools::resumed_options(app, o, kMayChangeOnResume);
  validate(o);
  const Device device = tools::select_device(o.device);
  if (!resuming) tools::require_no_run(o.out);
  if (o.threads > 0) cpu::set_num_threads(o.threads);
  manual_seed(o.seed);

  int64_t skipped = 0;
  const data::Manifest images = train::open_image_set(o.data, o.skip_bad, std::max(1, o.threads), &skipped);
  if (skipped > 0)
    std::fprintf(stderr, "pneuma-simclr: skipped %lld bad file(s) or row(s)\n", static_cast<long long>(skipped));
  PNEUMA_CHECK(images.size() >= 2, o.data, ": ", images.size(), " image(s); contrastive learning needs at least 2");
  const int64_t batch = std::min(o.batch, images.size());
  std::fprintf(stderr, "pneuma-simclr: %lld unlabeled images, batch %lld\n", static_cast<long long>(images.size()),
               static_cast<long long>(batch));

  // ---- model: backbone without classifier + projection MLP (feature_dim -> hidden -> proj_dim)
  const auto backbone = models::create_classifier(o.model, 0);
  models::ProjectionHeadOptions head_options;
  const int64_t hidden = o.proj_hidden > 0 ? o.proj_hidden : backbone->feature_dim();
  head_options.widths = {backbone->feature_dim(), hidden, o.proj_dim};
  head_options.batch_norm = o.proj_bn;
  const auto model = std::make_shared<SimClrNet>(backbone, std::make_shared<models::ProjectionHead>(head_options));
  model->to(device);  // before the optimizer: its state lives with the parameters
  tools::apply_memory_format(*model, o.channels_last);

  auto optimizer = tools::make_optimizer(o.optimization, model->parameters());
  // plateau follows the training loss: there is no validation metric
  train::LrScheduler scheduler(*optimizer, tools::scheduler_options(o.optimization, "min"), o.epochs);

  const std::string metrics_path = (fs::path(o.out) / kMetricsFile).string();
  const int64_t start_epoch =
      tools::resume_or_start("pneuma-simclr", o.out, resuming, *model, *optimizer, &scheduler, nullptr,
                             metrics_path);
  train::MetricsLog log(metrics_path, /*echo_stdout=*/true, /*append=*/resuming);

  const data::Pipeline view = data::Pipeline::simclr(o.img_size);
  io::Metadata backbone_meta = train::checkpoint_metadata(o.model, 0, o.img_size, view.normalization(), 0);
  backbone_meta["pretraining"] = "simclr";
  backbone_meta["temperature"] = train::format_number(o.temperature);
  io::Metadata model_meta = backbone_meta;
  model_meta["model"] = "simclr";
  model_meta["backbone"] = o.model;
  model_meta["projection"] = train::format_numbers({static_cast<double>(head_options.widths[0]),
                                                    static_cast<double>(head_options.widths[1]),
                                                    static_cast<double>(head_options.widths[2])});

  const auto dataset = std::make_shared<data::ImageDataset>(images, std::vector<data::Pipeline>{view, view});
  const auto sampler = std::make_shared<data::ShuffledSampler>(images.size(), data::derive_seed(o.seed, 1));
  // A last batch of one image (dropped) would have no negatives.
  data::DataLoader loader(dataset, sampler,
                          train::training_loader_options(batch, o.workers, o.seed, images.size(), device));
  const int64_t batches = loader.batches_per_epoch();

  double last_loss = 0;
  // No early stopping: there is no validation metric.
  const train::EpochLoop epochs{"pneuma-simclr", o.out, start_epoch, o.epochs, o.stop_after, nullptr, 0, ""};
  const bool finished = epochs.run([&](int64_t epoch) {
    const train::Stopwatch stopwatch;
    const double epoch_lr = optimizer->lr();
    models::set_training(*model, true);
    loader.start_epoch(epoch);
    train::ProgressBar bar(train::epoch_label(epoch, o.epochs), batches);
    const std::string keep_note = train::kept_checkpoint_note(epoch, o.out);
    train::RunningMean epoch_loss, epoch_accuracy;
    while (std::optional<data::Batch> host_batch = loader.next()) {
      const data::Batch b = data::to_device(*host_batch, device);
      const int64_t step = epoch * batches + b.index + 1;
      // Both views in one forward: rows i and i + N of z are positives (nt_xent_loss), and
      // BatchNorm sees statistics over both views, as SimCLR's global BN.
      Tensor z, loss;
      {
        const tools::PrecisionScope precision(o.precision);
        z = model->forward(cat({b.views.at(0), b.views.at(1)}, 0));
        loss = nt_xent_loss(z, o.temperature);
      }
      train::optimization_step(loss, *optimizer, o.clip_grad, step, keep_note);
      epoch_loss.add(loss.item(), b.size());
      epoch_accuracy.add(contrastive_accuracy(z.detach().to(DType::Float32)), b.size());
      bar.update(b.index + 1, "loss " + train::fixed4(epoch_loss.mean()));
    }
    char status[64];
    std::snprintf(status, sizeof status, "loss %.4f acc %.3f", epoch_loss.mean(), epoch_accuracy.mean());
    bar.finish(status);
    scheduler.step(epoch_loss.mean());
    last_loss = epoch_loss.mean();

    log.write({{"epoch", epoch + 1},
               {"lr", epoch_lr},
               {"loss", epoch_loss.mean()},
               {"contrastive_accuracy", epoch_accuracy.mean()},
               {"seconds", stopwatch.seconds()}});
    backbone_meta["epoch"] = std::to_string(epoch + 1);
    backbone_meta["loss"] = train::format_number(epoch_loss.mean());
    model_meta["loss"] = backbone_meta["loss"];
    io::save_checkpoint(*backbone, (fs::path(o.out) / kBackboneFile).string(), backbone_meta);
    train::save_epoch_checkpoints(o.out, *model, *optimizer, &scheduler, nullptr, epoch, /*best=*/false, o,
                                  model_meta);
  });
  if (!finished) return 0;
  std::cout << nlohmann::json{{"done", true},
                              {"epochs", o.epochs},
                              {"loss", last_loss},
                              {"backbone", (fs::path(o.out) / kBackboneFile).string()}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"SimCLR self-supervised pretraining of a backbone on unlabeled images (NT-Xent)", "pneuma-simclr"};
  Options o;
  o.optimization = kSimclrOptimization;
  app.add_option("--model", o.model, "backbone: simplecnn, resnet18/34/50/101/152, densenet121/161/169/201 "
                                     "(default resnet50)");
  app.add_option("--data", o.data, "images: CSV manifest, Kermany folder, or any folder of PNG/JPEG/BMP (labels ignored)");
  app.add_option("--out", o.out, "output folder: backbone.safetensors, last.safetensors, train_state, metrics.jsonl");
  tools::add_resume_flags(app, o.resume, o.stop_after);
  app.add_option("--img-size", o.img_size, "square view size (default 224)")->check(CLI::Range(8, 4096));
  app.add_option("--epochs", o.epochs, "epochs (default 100)")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--batch", o.batch, "images per batch, 2 views each (default 64)")
      ->check(CLI::Range(int64_t{2}, int64_t{65536}));
  tools::add_optimization_flags(app, o.optimization, "the training loss");
  app.add_option("--temperature", o.temperature, "NT-Xent temperature tau (default 0.1, the seed's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--proj-hidden", o.proj_hidden, "projection MLP hidden width (default: the backbone's feature size)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--proj-dim", o.proj_dim, "projection output size (default 128)")->check(CLI::PositiveNumber);
  app.add_flag("--proj-bn,!--no-proj-bn", o.proj_bn, "BatchNorm in the projection MLP (default on)");
  app.add_option("--clip-grad", o.clip_grad, "clip the gradient norm to this (0: off)")->check(CLI::NonNegativeNumber);
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable images instead of stopping");
  app.add_option("--workers", o.workers, "data loader threads (default 2)")->check(CLI::Range(0, 256));
  app.add_option("--threads", o.threads, "CPU compute threads (default: all)")->check(CLI::Range(0, 1024));
  app.add_option("--seed", o.seed, "seed of weights, order and augmentation (default 0)");
  tools::add_device_flag(app, o.device);
  tools::add_compute_flags(app, o.precision, o.channels_last);
  return tools::run_tool(app, argc, argv, [&] {
    if (o.resume.empty()) PNEUMA_CHECK(!o.data.empty(), "--data is required");
    return run(app, o);
  });
}
