// pneuma-train-unet: lung segmentation for the lung-crop recipes (seeds 000 and 004). Trains
// a U-Net (models/unet.h) on a CSV manifest with a mask column (pneuma-synth writes one)
// with Dice + BCE on the mask logits; images are gray, resized to --img-size (default 128),
// masks resized with 'nearest'. Validation Dice and IoU (masks at sigmoid >= 0.5) every
// epoch; --out gets best.safetensors (best validation Dice), last.safetensors and
// metrics.jsonl; train_state.safetensors holds what --resume DIR needs to continue an
// interrupted run with its saved settings (bit-identical on the CPU with the same
// --threads, as pneuma-train's).
//
// --predict-masks DIR then writes a predicted mask PNG per image (at the image's own size)
// for --predict-data (default --data) and DIR/<manifest name>.csv: the input's columns with
// the mask column pointing at the predictions, which is what `pneuma-crop --manifest` takes.
// Without --out, --weights names the U-Net checkpoint to predict with (no training).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/core/generator.h"
#include "engine/cpu/parallel.h"
#include "engine/data/device_batch.h"
#include "engine/data/loader.h"
#include "engine/data/rng.h"
#include "engine/data/sampler.h"
#include "engine/data/split.h"
#include "engine/io/checkpoint.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/loss/loss.h"
#include "engine/ops/upsample/upsample.h"
#include "engine/train/checkpointing.h"
#include "engine/train/early_stopping.h"
#include "engine/train/epoch_loop.h"
#include "engine/train/image_set.h"
#include "engine/train/metrics_log.h"
#include "engine/train/progress.h"
#include "engine/train/scheduler.h"
#include "engine/train/segmentation.h"
#include "models/freeze.h"
#include "models/unet.h"
#include "tools/common/checkpoint_metadata.h"
#include "tools/common/cli.h"
#include "tools/common/compute.h"
#include "tools/common/device.h"
#include "tools/common/optimization.h"
#include "tools/common/resume.h"

using namespace pneuma;
namespace fs = std::filesystem;

namespace {

constexpr const char* kMetricsFile = "metrics.jsonl";

// Every setting of a run; member names are the flags with '-' as '_' (see tools/common/resume.h).
struct Settings {
  std::string data, val_data, out, resume, weights, predict_masks, predict_data;
  double val_fraction = 0.2;
  int64_t img_size = 128, epochs = 20, batch = 8;
  int64_t base_width = 64;
  std::string upsample = "transposed";
  double dice_weight = 1, bce_weight = 1;
  int64_t early_stop = 0;
  double clip_grad = 0, threshold = 0.5;
  bool skip_bad = false;
  int workers = 2, threads = 0;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string precision = "fp32";
  bool channels_last = false;
  int64_t stop_after = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Settings, data, val_data, out, resume, weights, predict_masks,
                                                predict_data, val_fraction, img_size, epochs, batch, base_width,
                                                upsample, dice_weight, bce_weight, early_stop, clip_grad, threshold,
                                                skip_bad, workers, threads, seed, device, precision, channels_last,
                                                stop_after)

using Options = tools::SettingsAndOptimization<Settings>;  // optimization: Adam 1e-3, constant rate

// A resumed run may run longer, on other threads or another device, in another precision or
// layout, and predict masks afterwards with other prediction flags; the rest of its settings stay.
const std::set<std::string> kMayChangeOnResume =
    tools::may_change_on_resume({"predict_masks", "predict_data", "threshold"});

// A U-Net checkpoint: the architecture and input preparation from its metadata.
struct UNetSpec {
  models::UNetOptions options;
  std::string model;  // "unet" or "unet-bilinear"
  int64_t img_size = 128;
  data::Normalization normalization = data::Normalization::none();
};

io::Metadata unet_metadata(const UNetSpec& spec, int64_t epoch) {
  io::Metadata meta = train::checkpoint_metadata(spec.model, spec.options.out_channels, spec.img_size,
                                                 spec.normalization, epoch);
  meta["base_width"] = std::to_string(spec.options.base_width);
  meta["in_channels"] = std::to_string(spec.options.in_channels);
  return meta;
}

UNetSpec read_unet_spec(const std::string& weights) {
  const io::SafetensorsHeader header = io::read_safetensors_header(weights);
  const io::Metadata& meta = header.metadata;
  UNetSpec spec;
  spec.model = meta.count("model") ? meta.at("model") : "unet";
  PNEUMA_CHECK(spec.model == "unet" || spec.model == "unet-bilinear", weights, " holds a '", spec.model,
               "' model, not a U-Net (unet, unet-bilinear)");
  spec.options.bilinear = spec.model == "unet-bilinear";
  if (meta.count("base_width")) spec.options.base_width = tools::metadata_positive_int(meta, "base_width");
  if (meta.count("in_channels")) spec.options.in_channels = tools::metadata_positive_int(meta, "in_channels");
  PNEUMA_CHECK(spec.options.in_channels == 1, weights, ": a U-Net on ", spec.options.in_channels,
               " input channels; the mask tools feed gray images (1)");
  if (meta.count("num_classes")) spec.options.out_channels = tools::metadata_positive_int(meta, "num_classes");
  PNEUMA_CHECK(spec.options.out_channels == 1, weights, ": ", spec.options.out_channels,
               " mask channels; the lung mask is one");
  if (meta.count("img_size")) spec.img_size = tools::metadata_positive_int(meta, "img_size");
  if (meta.count("mean")) spec.normalization.mean = tools::metadata_numbers(meta, "mean", {1});
  if (meta.count("std")) spec.normalization.std = tools::metadata_numbers(meta, "std", {1});
  return spec;
}

struct Validation {
  double loss = 0, dice = 0, iou = 0;
};

Validation validate_unet(models::UNet& unet, data::DataLoader& loader, const Options& o, Device device) {
  NoGradGuard no_grad;
  unet.eval();
  Validation v;
  int64_t seen = 0;
  loader.start_epoch(0);
  while (std::optional<data::Batch> host_batch = loader.next()) {
    const data::Batch b = data::to_device(*host_batch, device);
    Tensor logits;
    {
      const tools::PrecisionScope precision(o.precision);
      logits = unet.forward(b.views.at(0)).to(DType::Float32);
    }
    const Tensor& masks = b.views.at(1);
    v.loss += dice_bce_loss(logits, masks, 1.0, o.dice_weight, o.bce_weight).item() * static_cast<double>(b.size());
    for (const train::MaskScore& s : train::mask_scores(logits, masks, o.threshold)) {
      v.dice += s.dice;
      v.iou += s.iou;
    }
    seen += b.size();
  }
  const auto n = static_cast<double>(std::max<int64_t>(seen, 1));
  v.loss /= n;
  v.dice /= n;
  v.iou /= n;
  return v;
}

// Trains (or continues the run in --resume) and returns the path of the best checkpoint;
// nothing when --stop-after cut the run short.
std::optional<std::string> train_unet(const Options& o, bool resuming, Device device) {
  PNEUMA_CHECK(o.upsample == "transposed" || o.upsample == "bilinear", "unknown --upsample '", o.upsample,
               "' (transposed, bilinear)");
  tools::check_optimization_flags(o.optimization);
  if (!resuming) tools::require_no_run(o.out);
  manual_seed(o.seed);

  const int threads = std::max(1, o.threads);
  const data::Manifest all = train::open_image_set(o.data, o.skip_bad, threads);
  PNEUMA_CHECK(all.has_mask, o.data, ": no mask column (a U-Net trains on path,label,...,mask rows; pneuma-synth "
                             "writes them)");
  data::Split split;
  if (!o.val_data.empty()) {
    split.train = all;
    split.val = train::open_image_set(o.val_data, o.skip_bad, threads);
    PNEUMA_CHECK(split.val.has_mask, o.val_data, ": no mask column");
  } else {
    PNEUMA_CHECK(o.val_fraction > 0 && o.val_fraction < 1, "--val-fraction ", o.val_fraction, " is not in (0, 1)");
    split = data::split_validation(all, o.val_fraction, o.seed);
  }
  PNEUMA_CHECK(split.train.size() > 0 && split.val.size() > 0, o.data, ": ", split.train.size(), " training and ",
               split.val.size(), " validation images; both need at least one (more data or another --val-fraction)");
  std::fprintf(stderr, "pneuma-train-unet: %lld training images, %lld validation images, %lldx%lld\n",
               static_cast<long long>(split.train.size()), static_cast<long long>(split.val.size()),
               static_cast<long long>(o.img_size), static_cast<long long>(o.img_size));

  UNetSpec spec;
  spec.model = o.upsample == "bilinear" ? "unet-bilinear" : "unet";
  spec.options.bilinear = o.upsample == "bilinear";
  spec.options.base_width = o.base_width;
  spec.img_size = o.img_size;
  models::UNet unet(spec.options);
  unet.to(device);  // before the optimizer: its state lives with the parameters
  tools::apply_memory_format(unet, o.channels_last);

  auto optimizer = tools::make_optimizer(o.optimization, unet.parameters());
  train::LrScheduler scheduler(*optimizer, tools::scheduler_options(o.optimization, "max"), o.epochs);  // val Dice
  train::EarlyStopping early_stopping(o.early_stop, /*maximize=*/true);
  const std::string metrics_path = (fs::path(o.out) / kMetricsFile).string();
  const int64_t start_epoch = tools::resume_or_start("pneuma-train-unet", o.out, resuming, unet, *optimizer,
                                                     &scheduler, &early_stopping, metrics_path);
  train::MetricsLog log(metrics_path, /*echo_stdout=*/true, /*append=*/resuming);

  const auto train_set = std::make_shared<train::SegmentationDataset>(split.train, o.img_size, true);
  const auto val_set = std::make_shared<train::SegmentationDataset>(split.val, o.img_size, true);
  const auto sampler = std::make_shared<data::ShuffledSampler>(split.train.size(), data::derive_seed(o.seed, 1));
  data::DataLoader train_loader(
      train_set, sampler, train::training_loader_options(o.batch, o.workers, o.seed, split.train.size(), device));
  data::DataLoader val_loader(val_set, std::make_shared<data::SequentialSampler>(split.val.size()),
                              train::evaluation_loader_options(o.batch, o.workers, o.seed, device));

  const std::string best_path = (fs::path(o.out) / train::kBestCheckpoint).string();
  const int64_t batches = train_loader.batches_per_epoch();
  const train::EpochLoop epochs{"pneuma-train-unet", o.out,         start_epoch, o.epochs, o.stop_after,
                                &early_stopping,     o.early_stop, "validation Dice"};
  const bool finished = epochs.run([&](int64_t epoch) {
    const train::Stopwatch stopwatch;
    const double epoch_lr = optimizer->lr();
    unet.train();
    train_loader.start_epoch(epoch);
    train::ProgressBar bar(train::epoch_label(epoch, o.epochs), batches);
    train::RunningMean train_loss;
    const std::string keep_note = train::kept_checkpoint_note(epoch, o.out);
    while (std::optional<data::Batch> host_batch = train_loader.next()) {
      const data::Batch b = data::to_device(*host_batch, device);
      Tensor loss;
      {
        const tools::PrecisionScope precision(o.precision);
        loss = dice_bce_loss(unet.forward(b.views.at(0)), b.views.at(1), 1.0, o.dice_weight, o.bce_weight);
      }
      train::optimization_step(loss, *optimizer, o.clip_grad, epoch * batches + b.index + 1, keep_note);
      train_loss.add(loss.item(), b.size());
      bar.update(b.index + 1, "loss " + train::fixed4(train_loss.mean()));
    }
    const Validation val = validate_unet(unet, val_loader, o, device);
    bar.finish("loss " + train::fixed4(train_loss.mean()) + " val_dice " + train::fixed4(val.dice) + " val_iou " +
               train::fixed4(val.iou));
    const bool best = early_stopping.update(val.dice);
    scheduler.step(val.dice);
    log.write({{"epoch", epoch + 1},
               {"lr", epoch_lr},
               {"train_loss", train_loss.mean()},
               {"val_loss", val.loss},
               {"val_dice", val.dice},
               {"val_iou", val.iou},
               {"seconds", stopwatch.seconds()},
               {"best", best}});
    io::Metadata meta = unet_metadata(spec, epoch + 1);
    meta["val_dice"] = train::format_number(val.dice);
    meta["val_iou"] = train::format_number(val.iou);
    train::save_epoch_checkpoints(o.out, unet, *optimizer, &scheduler, &early_stopping, epoch, best, o, meta);
  });
  if (!finished) return std::nullopt;
  std::cout << nlohmann::json{{"done", true},
                              {"best_epoch", early_stopping.best_epoch() + 1},
                              {"best_val_dice", early_stopping.best()},
                              {"out", o.out}}
                   .dump()
            << std::endl;
  return best_path;
}

// Where a record's mask goes under the output folder: masks/<its manifest path>.png, or
// masks/<file name>.png for paths that leave the manifest's folder.
fs::path mask_path(const data::Record& r) {
  fs::path rel = fs::path(r.path).lexically_normal();
  if (rel.is_absolute() || rel.empty() || *rel.begin() == "..") rel = rel.filename();
  return (fs::path("masks") / rel).replace_extension(".png");
}

void predict_masks(const std::string& weights, const std::string& images_path, const Options& o, Device device) {
  const auto started = std::chrono::steady_clock::now();
  const UNetSpec spec = read_unet_spec(weights);
  models::UNet unet(spec.options);
  io::load_checkpoint(unet, weights);
  unet.to(device);
  unet.eval();

  int64_t skipped = 0;
  const data::Manifest manifest = train::open_image_set(images_path, o.skip_bad, std::max(1, o.threads), &skipped);
  if (skipped > 0)
    std::fprintf(stderr, "pneuma-train-unet: skipped %lld bad file(s) or row(s)\n", static_cast<long long>(skipped));
  const auto dataset =
      std::make_shared<train::SegmentationDataset>(manifest, spec.img_size, /*with_masks=*/false, spec.normalization);
  data::DataLoader loader(dataset, std::make_shared<data::SequentialSampler>(manifest.size()),
                          train::evaluation_loader_options(o.batch, o.workers, o.seed, device));

  const fs::path out_dir = fs::absolute(o.predict_masks).lexically_normal();
  fs::create_directories(out_dir);
  data::Manifest result = manifest;
  result.has_mask = true;
  const double logit_threshold = std::log(o.threshold / (1 - o.threshold));
  int64_t empty = 0;
  NoGradGuard no_grad;
  loader.start_epoch(0);
  train::ProgressBar bar("masks", loader.batches_per_epoch());
  while (std::optional<data::Batch> host_batch = loader.next()) {
    const data::Batch batch = data::to_device(*host_batch, device);
    const Tensor logits = unet.forward(batch.images());  // [B, 1, S, S]
    for (int64_t i = 0; i < batch.size(); ++i) {
      data::Record& r = result.records[static_cast<size_t>(batch.indices[static_cast<size_t>(i)])];
      // The mask at the image's own size: logits upsampled bilinearly, then thresholded
      // (read back to the host).
      const data::ImageInfo info = data::probe_image(r.file);
      const Tensor full =
          upsample_bilinear2d(logits.slice(0, i, i + 1), {info.height, info.width}, false).to(Device::cpu());
      const std::vector<double> values = full.to_vector();
      data::Image mask(1, info.height, info.width);
      int64_t lung = 0;
      for (size_t k = 0; k < values.size(); ++k) {
        const bool inside = values[k] >= logit_threshold;
        mask.values[k] = inside ? 1.0f : 0.0f;
        lung += inside;
      }
      empty += lung == 0;
      const fs::path file = out_dir / mask_path(r);
      fs::create_directories(file.parent_path());
      data::write_png(mask, file.string());
      r.mask = file.string();
    }
    bar.update(batch.index + 1);
  }
  bar.finish(std::to_string(manifest.size()) + " masks");
  const fs::path source(images_path);
  const std::string name = fs::is_regular_file(source) ? source.filename().string() : "masks.csv";
  const std::string manifest_out = (out_dir / name).string();
  data::write_manifest(result, manifest_out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << nlohmann::json{{"masks", manifest.size()}, {"empty_masks", empty},   {"skipped", skipped},
                              {"manifest", manifest_out},  {"weights", weights},    {"seconds", seconds}}
                   .dump()
            << std::endl;
  if (empty > 0)
    std::fprintf(stderr, "pneuma-train-unet: %lld predicted mask(s) are empty (pneuma-crop keeps those images whole)\n",
                 static_cast<long long>(empty));
}

int run(const CLI::App& app, Options o) {
  for (std::string* path : {&o.data, &o.val_data, &o.out, &o.resume, &o.predict_data})
    *path = tools::absolute_path(*path);
  const bool resuming = !o.resume.empty();
  if (resuming) o = tools::resumed_options(app, o, kMayChangeOnResume);
  const Device device = tools::select_device(o.device);
  PNEUMA_CHECK(!o.out.empty() || (!o.weights.empty() && !o.predict_masks.empty()),
               "give --out DIR to train, or --weights and --predict-masks DIR to predict masks");
  PNEUMA_CHECK(o.out.empty() || o.weights.empty(), "--weights is for predicting without training; with --out the "
                                                   "trained best.safetensors predicts");
  PNEUMA_CHECK(o.threshold > 0 && o.threshold < 1, "--threshold ", o.threshold, " is not in (0, 1)");
  if (o.threads > 0) cpu::set_num_threads(o.threads);
  std::string weights = o.weights;
  if (!o.out.empty()) {
    PNEUMA_CHECK(!o.data.empty(), "--data is required to train");
    const std::optional<std::string> best = train_unet(o, resuming, device);
    if (!best) return 0;  // --stop-after: masks come when the run is done
    weights = *best;
  }
  if (!o.predict_masks.empty()) {
    const std::string images = o.predict_data.empty() ? o.data : o.predict_data;
    PNEUMA_CHECK(!images.empty(), "--predict-masks needs images: --predict-data or --data");
    predict_masks(weights, images, o, device);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a U-Net for lung masks (Dice + BCE) and predict masks for pneuma-crop", "pneuma-train-unet"};
  Options o;
  app.add_option("--data", o.data, "CSV manifest with a mask column (training), or the images to predict masks for");
  app.add_option("--val-data", o.val_data, "separate validation manifest (with masks); default: split --data");
  app.add_option("--val-fraction", o.val_fraction, "patient-level validation fraction (default 0.2)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--out", o.out, "train into this folder: best/last.safetensors, train_state.safetensors, "
                                 "metrics.jsonl");
  tools::add_resume_flags(app, o.resume, o.stop_after);
  app.add_option("--weights", o.weights, "U-Net checkpoint to predict with (without --out: no training)");
  app.add_option("--predict-masks", o.predict_masks,
                 "write predicted masks and <manifest>.csv with their mask column here (for pneuma-crop)");
  app.add_option("--predict-data", o.predict_data, "images to predict masks for: CSV, Kermany folder or any image "
                                                   "folder (default --data)");
  app.add_option("--threshold", o.threshold, "mask probability threshold (default 0.5)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--img-size", o.img_size, "square U-Net input size (default 128)")->check(CLI::Range(16, 4096));
  app.add_option("--epochs", o.epochs, "epochs (default 20)")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--batch", o.batch, "batch size (default 8)")->check(CLI::Range(int64_t{1}, int64_t{65536}));
  tools::add_optimization_flags(app, o.optimization, "the validation Dice");
  app.add_option("--base-width", o.base_width, "channels of the first U-Net level, doubled per level (default 64)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  app.add_option("--upsample", o.upsample, "transposed (2x2 transposed conv, default) or bilinear");
  app.add_option("--dice-weight", o.dice_weight, "weight of the soft Dice loss (default 1)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--bce-weight", o.bce_weight, "weight of the BCE loss (default 1)")->check(CLI::NonNegativeNumber);
  app.add_option("--early-stop", o.early_stop, "stop after this many epochs without a better val Dice (0: off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--clip-grad", o.clip_grad, "clip the gradient norm to this (0: off)")->check(CLI::NonNegativeNumber);
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable images instead of stopping");
  app.add_option("--workers", o.workers, "data loader threads (default 2)")->check(CLI::Range(0, 256));
  app.add_option("--threads", o.threads, "CPU compute threads (default: all)")->check(CLI::Range(0, 1024));
  app.add_option("--seed", o.seed, "seed of weights, split and order (default 0)");
  tools::add_device_flag(app, o.device);
  tools::add_compute_flags(app, o.precision, o.channels_last);
  return tools::run_tool(app, argc, argv, [&] { return run(app, o); });
}
