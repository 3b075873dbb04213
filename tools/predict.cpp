// pneuma-predict: one image through a classifier checkpoint (seed 002: a clinician
// submits one image). Preprocessing, unless the checkpoint's metadata says otherwise
// (keys img_size, mean, std as comma-separated numbers): decode, replicate gray to 3
// channels, resize to --img-size (bilinear), scale to [0, 1], normalize with ImageNet
// mean/std. Prints logits and probabilities (sigmoid for one class, softmax otherwise);
// with --json as one JSON object.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "engine/autograd/grad_mode.h"
#include "engine/data/image.h"
#include "engine/io/checkpoint.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/softmax/softmax.h"
#include "models/registry.h"
#include "models/unet.h"
#include "tools/common/cli.h"

using namespace pneuma;

namespace {

std::vector<double> parse_numbers(const std::string& text, const std::string& key) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      PNEUMA_CHECK(used == item.size(), "");
    } catch (const std::exception&) {
      PNEUMA_FAIL("checkpoint metadata ", key, "='", text, "' is not a comma-separated list of numbers");
    }
  }
  PNEUMA_CHECK(out.size() == 1 || out.size() == 3, "checkpoint metadata ", key, "='", text,
               "' needs 1 or 3 values");
  return out;
}

int64_t metadata_int(const io::Metadata& meta, const std::string& key) {
  try {
    size_t used = 0;
    const int64_t v = std::stoll(meta.at(key), &used);
    if (used == meta.at(key).size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  PNEUMA_FAIL("checkpoint metadata ", key, "='", meta.at(key), "' is not a positive integer");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Predict one image with a trained classifier (logits and probabilities)", "pneuma-predict"};
  std::string model_name, weights, image_path;
  int64_t num_classes = 0, img_size = 224;
  bool json = false;
  app.add_option("--model", model_name, "model name (default: the checkpoint's metadata 'model')");
  app.add_option("--num-classes", num_classes, "number of classes (default: the checkpoint's metadata)")
      ->check(CLI::PositiveNumber);
  app.add_option("--weights", weights, "safetensors checkpoint")->required();
  app.add_option("--image", image_path, "image file (PNG, JPEG, BMP; gray or RGB)")->required();
  auto* size_option = app.add_option("--img-size", img_size, "square input size (default 224, or the checkpoint's "
                                                             "metadata img_size)")
                          ->check(CLI::Range(8, 8192));
  app.add_flag("--json", json, "print one JSON object");
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;

  try {
    const io::SafetensorsHeader header = io::read_safetensors_header(weights);
    const io::Metadata& meta = header.metadata;
    if (model_name.empty()) {
      PNEUMA_CHECK(meta.count("model"), "--model is required: ", weights, " names no model in its metadata");
      model_name = meta.at("model");
    }
    if (num_classes == 0) {
      PNEUMA_CHECK(meta.count("num_classes"), "--num-classes is required: ", weights,
                   " has no num_classes in its metadata");
      num_classes = metadata_int(meta, "num_classes");
    }
    if (size_option->count() == 0 && meta.count("img_size")) img_size = metadata_int(meta, "img_size");
    data::Normalization norm = data::Normalization::imagenet();
    if (meta.count("mean")) norm.mean = parse_numbers(meta.at("mean"), "mean");
    if (meta.count("std")) norm.std = parse_numbers(meta.at("std"), "std");

    const auto model = models::create_model(model_name, num_classes);
    PNEUMA_CHECK(!dynamic_cast<const models::UNet*>(model.get()), model_name,
                 " is a segmentation model; pneuma-predict takes classifiers");
    io::load_checkpoint(*model, weights);
    model->eval();

    data::Image image = data::read_image(image_path);
    image = data::to_channels(image, 3);
    if (image.height != img_size || image.width != img_size)
      image = data::resize(image, img_size, img_size, data::Interpolation::Bilinear);
    const Tensor x = data::to_tensor(image, 3, norm).unsqueeze(0);

    NoGradGuard no_grad;
    const Tensor logits = models::forward_any(*model, x).reshape({-1});
    const Tensor probabilities = num_classes == 1 ? sigmoid(logits) : softmax(logits, 0);
    const std::vector<double> l = logits.to_vector(), p = probabilities.to_vector();
    nlohmann::json out = {{"image", image_path}, {"model", model_name}, {"logits", l}, {"probabilities", p}};
    if (num_classes == 1) {
      const double threshold = meta.count("threshold") ? parse_numbers(meta.at("threshold"), "threshold").at(0) : 0.5;
      out["threshold"] = threshold;
      out["label"] = p[0] >= threshold ? 1 : 0;
    } else {
      out["label"] = static_cast<int64_t>(std::max_element(p.begin(), p.end()) - p.begin());
    }
    if (json) {
      std::cout << out.dump() << std::endl;
    } else {
      std::cout << "image " << image_path << "\nlabel " << out["label"].dump() << "\nlogits "
                << out["logits"].dump() << "\nprobabilities " << out["probabilities"].dump() << std::endl;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pneuma-predict: %s\n", e.what());
    return 1;
  }
  return 0;
}
