// pneuma-features: penultimate feature vectors of a classifier checkpoint (seed 004's
// second stage: the fine-tuned ResNet-50's 2048-d pooled features) for every image of a
// data set, to one safetensors file:
//   features  float32 [N, D]  ImageClassifier::features (global average pool of the last
//                             conv map), eval mode, eval preprocessing of the checkpoint
//   labels    int64 [N]       the data set's labels (0 for a folder of unlabeled images)
//   subtypes  int64 [N]       when the data has a subtype column: index into the metadata's
//                             subtype_names (normal, viral, bacterial, then any other name
//                             sorted); -1 where a record has no subtype
// and metadata: model, img_size, mean, std, weights, source, feature_dim, num_samples,
// subtype_names (comma-separated), and per sample as JSON lists: paths (the manifest's
// paths, relative to the source), patients (when known). pneuma-train-mlp reads it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/parallel.h"
#include "engine/data/dataset.h"
#include "engine/data/device_batch.h"
#include "engine/data/loader.h"
#include "engine/data/sampler.h"
#include "engine/data/transforms.h"
#include "engine/io/checkpoint.h"
#include "engine/ops/index/index.h"
#include "engine/train/checkpointing.h"
#include "engine/train/image_set.h"
#include "engine/train/progress.h"
#include "models/freeze.h"
#include "models/registry.h"
#include "tools/common/checkpoint_metadata.h"
#include "tools/common/cli.h"
#include "tools/common/device.h"

using namespace pneuma;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::string weights, model, data, out;
  int64_t img_size = 0, batch = 32;
  bool skip_bad = false;
  int workers = 2, threads = 0;
  uint64_t seed = 0;
  std::string device = "cpu";
};

// The seed's three classes first, in its order, then any other subtype found.
std::vector<std::string> subtype_names(const data::Manifest& m) {
  std::vector<std::string> names{"normal", "viral", "bacterial"};
  std::set<std::string> others;
  for (const data::Record& r : m.records)
    if (!r.subtype.empty() && std::find(names.begin(), names.end(), r.subtype) == names.end()) others.insert(r.subtype);
  names.insert(names.end(), others.begin(), others.end());
  return names;
}

// The backbone of `model` with the checkpoint's weights. The checkpoint may hold a
// classifier of any class count (or none: a pneuma-simclr backbone); every other tensor of
// the architecture must be in it.
std::shared_ptr<models::ImageClassifier> load_backbone(const std::string& model, const std::string& weights) {
  const auto backbone = models::create_classifier(model, 0);
  const io::SafetensorsHeader header = io::read_safetensors_header(weights);
  const io::LoadReport report = io::compare_state_dict(*backbone, header);
  std::vector<std::string> foreign;
  for (const std::string& name : report.unexpected_keys)
    if (!models::matches_prefix(name, backbone->classifier_prefix())) foreign.push_back(name);
  std::string problems = report.missing_keys.empty() && report.mismatched.empty() ? "" : report.str();
  if (!foreign.empty())
    problems += (problems.empty() ? "" : "; ") + std::string("not part of ") + model + ": \"" + foreign.front() +
                "\"" + (foreign.size() > 1 ? " and " + std::to_string(foreign.size() - 1) + " more" : "");
  PNEUMA_CHECK(problems.empty(), weights, " does not fit ", model, ": ", problems);
  io::LoadOptions options;
  options.strict = false;  // the classifier's tensors are not part of the backbone
  io::load_checkpoint(*backbone, weights, options);
  return backbone;
}

int run(Options o) {
  const Device device = tools::select_device(o.device);
  if (o.threads > 0) cpu::set_num_threads(o.threads);
  const auto started = std::chrono::steady_clock::now();

  const io::SafetensorsHeader header = io::read_safetensors_header(o.weights);
  const io::Metadata& meta = header.metadata;
  if (o.model.empty()) {
    PNEUMA_CHECK(meta.count("model"), "--model is required: ", o.weights, " names no model in its metadata");
    o.model = meta.at("model");
  }
  const auto names = models::classifier_names();
  PNEUMA_CHECK(std::find(names.begin(), names.end(), o.model) != names.end(), "unknown model '", o.model,
               "' (features come from a classifier: ", o.weights, ")");
  if (o.img_size <= 0) o.img_size = meta.count("img_size") ? tools::metadata_positive_int(meta, "img_size") : 224;
  data::Normalization normalization = data::Normalization::imagenet();
  if (meta.count("mean")) normalization.mean = tools::metadata_numbers(meta, "mean");
  if (meta.count("std")) normalization.std = tools::metadata_numbers(meta, "std");

  const auto backbone = load_backbone(o.model, o.weights);
  backbone->to(device);
  backbone->eval();

  int64_t skipped = 0;
  const data::Manifest manifest = train::open_image_set(o.data, o.skip_bad, std::max(1, o.threads), &skipped);
  if (skipped > 0)
    std::fprintf(stderr, "pneuma-features: skipped %lld bad file(s) or row(s)\n", static_cast<long long>(skipped));

  data::Pipeline pipeline = data::Pipeline::eval(o.img_size);
  pipeline.normalize(normalization);
  const auto dataset = std::make_shared<data::ImageDataset>(manifest, pipeline);
  data::LoaderOptions loader_options;
  loader_options.batch_size = o.batch;
  loader_options.workers = o.workers;
  loader_options.seed = o.seed;
  loader_options.pin_memory = device.is_cuda();  // data::to_device uploads pinned batches asynchronously
  data::DataLoader loader(dataset, std::make_shared<data::SequentialSampler>(manifest.size()), loader_options);

  std::vector<Tensor> chunks;
  std::vector<int64_t> order;
  {
    NoGradGuard no_grad;
    loader.start_epoch(0);
    train::ProgressBar bar("features", loader.batches_per_epoch());
    while (std::optional<data::Batch> b = loader.next()) {
      chunks.push_back(backbone->features(data::to_device(*b, device).images()).to(Device::cpu()).contiguous());
      order.insert(order.end(), b->indices.begin(), b->indices.end());
      bar.update(b->index + 1);
    }
    bar.finish(std::to_string(manifest.size()) + " images");
  }
  const Tensor features = cat(chunks, 0).contiguous();
  PNEUMA_CHECK(static_cast<int64_t>(order.size()) == manifest.size(), "features: ", order.size(), " of ",
               manifest.size(), " images came back from the loader");

  std::vector<int64_t> labels;
  nlohmann::json paths = nlohmann::json::array(), patients = nlohmann::json::array();
  for (int64_t index : order) {
    const data::Record& r = manifest.records[static_cast<size_t>(index)];
    labels.push_back(r.label);
    paths.push_back(r.path);
    if (manifest.has_patient) patients.push_back(r.patient);
  }
  nn::NamedTensors tensors{{"features", features},
                           {"labels", Tensor::from_indices(labels, {static_cast<int64_t>(labels.size())})}};
  io::Metadata out_meta{{"format", "pneuma-features"},
                        {"model", o.model},
                        {"img_size", std::to_string(o.img_size)},
                        {"mean", train::format_numbers(normalization.mean)},
                        {"std", train::format_numbers(normalization.std)},
                        {"weights", fs::absolute(o.weights).lexically_normal().string()},
                        {"source", manifest.source},
                        {"feature_dim", std::to_string(features.size(1))},
                        {"num_samples", std::to_string(features.size(0))},
                        {"paths", paths.dump()}};
  if (manifest.has_patient) out_meta["patients"] = patients.dump();
  if (manifest.has_subtype) {
    const std::vector<std::string> subtypes = subtype_names(manifest);
    std::vector<int64_t> codes;
    int64_t missing = 0;
    for (int64_t index : order) {
      const std::string& s = manifest.records[static_cast<size_t>(index)].subtype;
      const auto found = std::find(subtypes.begin(), subtypes.end(), s);
      codes.push_back(s.empty() ? -1 : static_cast<int64_t>(found - subtypes.begin()));
      missing += s.empty();
    }
    if (missing > 0)
      std::fprintf(stderr, "pneuma-features: %lld record(s) without a subtype (subtypes -1)\n",
                   static_cast<long long>(missing));
    tensors.emplace_back("subtypes", Tensor::from_indices(codes, {static_cast<int64_t>(codes.size())}));
    std::string joined;
    for (const std::string& s : subtypes) joined += (joined.empty() ? "" : ",") + s;
    out_meta["subtype_names"] = joined;
  }
  const fs::path out_path = fs::absolute(o.out);
  if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
  io::save_safetensors(out_path.string(), tensors, out_meta);

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << nlohmann::json{{"samples", features.size(0)},   {"feature_dim", features.size(1)},
                              {"subtypes", manifest.has_subtype}, {"skipped", skipped},
                              {"out", out_path.string()},         {"seconds", seconds}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Penultimate features of a classifier checkpoint for every image, to a safetensors file",
               "pneuma-features"};
  Options o;
  app.add_option("--weights", o.weights, "classifier checkpoint (pneuma-train best.safetensors, a pneuma-simclr "
                                         "backbone.safetensors, or converted torchvision weights)")
      ->required();
  app.add_option("--model", o.model, "architecture (default: the checkpoint's metadata 'model')");
  app.add_option("--data", o.data, "images: CSV manifest, Kermany folder, or any folder of PNG/JPEG/BMP")->required();
  app.add_option("--out", o.out, "output safetensors file (features, labels, subtypes)")->required();
  app.add_option("--img-size", o.img_size, "square input size (default: the checkpoint's img_size, else 224)")
      ->check(CLI::Range(8, 4096));
  app.add_option("--batch", o.batch, "images per forward pass (default 32)")
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable images instead of stopping");
  app.add_option("--workers", o.workers, "data loader threads (default 2)")->check(CLI::Range(0, 256));
  app.add_option("--threads", o.threads, "CPU compute threads (default: all)")->check(CLI::Range(0, 1024));
  app.add_option("--seed", o.seed, "seed (the extraction itself is deterministic; default 0)");
  tools::add_device_flag(app, o.device);
  return tools::run_tool(app, argc, argv, [&] { return run(o); });
}
