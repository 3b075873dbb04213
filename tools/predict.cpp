// pneuma-predict: one image through a classifier checkpoint (seed 002: a clinician
// submits one image). Preprocessing, unless the checkpoint's metadata says otherwise
// (keys img_size, mean, std as comma-separated numbers): decode as gray, then the eval
// pipeline of pneuma-train and pneuma-eval (shorter side to --img-size, centre crop, gray
// to 3 channels, scale to [0, 1], normalize with ImageNet mean/std). Prints logits and probabilities (sigmoid for one class, softmax otherwise);
// with --json as one JSON object. --gradcam OUT.png writes a Grad-CAM overlay
// (models/gradcam.h) of the predicted class (or --gradcam-class) over the original image.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/autograd/grad_mode.h"
#include "engine/data/image.h"
#include "engine/data/transforms.h"
#include "engine/io/checkpoint.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/softmax/softmax.h"
#include "models/gradcam.h"
#include "models/registry.h"
#include "models/unet.h"
#include "tools/common/checkpoint_metadata.h"
#include "tools/common/cli.h"
#include "tools/common/device.h"

using namespace pneuma;

int main(int argc, char** argv) {
  CLI::App app{"Predict one image with a trained classifier (logits and probabilities)", "pneuma-predict"};
  std::string model_name, weights, image_path;
  int64_t num_classes = 0, img_size = 224;
  bool json = false;
  std::string gradcam_path;
  double gradcam_alpha = 0.5;
  int64_t gradcam_class = -1;
  std::string device_name = "cpu";
  app.add_option("--model", model_name, "model name (default: the checkpoint's metadata 'model')");
  app.add_option("--num-classes", num_classes, "number of classes (default: the checkpoint's metadata)")
      ->check(CLI::PositiveNumber);
  app.add_option("--weights", weights, "safetensors checkpoint")->required();
  app.add_option("--image", image_path, "image file (PNG, JPEG, BMP; gray or RGB)")->required();
  auto* size_option = app.add_option("--img-size", img_size, "square input size (default 224, or the checkpoint's "
                                                             "metadata img_size)")
                          ->check(CLI::Range(8, 8192));
  app.add_flag("--json", json, "print one JSON object");
  app.add_option("--gradcam", gradcam_path, "write a Grad-CAM overlay (PNG) of the explained class on the image");
  app.add_option("--gradcam-alpha", gradcam_alpha, "weight of the heatmap colours in the overlay (default 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--gradcam-class", gradcam_class, "class to explain (default: the predicted one; the single logit "
                                                   "of a binary model)")
      ->check(CLI::NonNegativeNumber);
  tools::add_device_flag(app, device_name);
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;

  try {
    const Device device = tools::select_device(device_name);
    const io::SafetensorsHeader header = io::read_safetensors_header(weights);
    const tools::ClassifierSpec spec =
        tools::classifier_spec(header.metadata, weights, model_name, num_classes,
                               size_option->count() ? std::optional<int64_t>(img_size) : std::nullopt);
    model_name = spec.model;
    num_classes = spec.num_classes;
    img_size = spec.img_size;
    const data::Normalization& norm = spec.normalization;

    const auto model = models::create_model(model_name, num_classes);
    PNEUMA_CHECK(!dynamic_cast<const models::UNet*>(model.get()), model_name,
                 " is a segmentation model; pneuma-predict takes classifiers");
    io::load_checkpoint(*model, weights);
    model->to(device);
    model->eval();

    const data::Image original = data::read_image(image_path);
    // Exactly what pneuma-train validates and pneuma-eval evaluates on: decoded as gray
    // (data::ImageDataset's default), then the eval pipeline.
    data::Pipeline pipeline = data::Pipeline::eval(img_size);
    pipeline.normalize(norm);
    const Tensor x = pipeline(data::read_image(image_path, 1), 0).unsqueeze(0).to(device);

    NoGradGuard no_grad;
    const Tensor logits = models::forward_any(*model, x).reshape({-1});
    const Tensor probabilities = num_classes == 1 ? sigmoid(logits) : softmax(logits, 0);
    const std::vector<double> l = logits.to_vector(), p = probabilities.to_vector();
    nlohmann::json out = {{"image", image_path}, {"model", model_name}, {"logits", l}, {"probabilities", p}};
    if (num_classes == 1) {
      const double threshold = spec.threshold.value_or(0.5);
      out["threshold"] = threshold;
      out["label"] = p[0] >= threshold ? 1 : 0;
    } else {
      out["label"] = static_cast<int64_t>(std::max_element(p.begin(), p.end()) - p.begin());
    }
    if (!gradcam_path.empty()) {
      // grad_cam records the classifier head's gradient itself, no-grad scope or not.
      const auto* classifier = dynamic_cast<const models::ImageClassifier*>(model.get());
      PNEUMA_CHECK(classifier != nullptr, "--gradcam: ", model_name, " is not a ResNet/DenseNet-style classifier");
      const models::GradCam cam = models::grad_cam(
          *classifier, x, gradcam_class >= 0 ? std::optional<int64_t>(gradcam_class) : std::nullopt,
          std::array<int64_t, 2>{original.height, original.width});
      if (cam.activation.numel() == 1)
        std::fprintf(stderr, "pneuma-predict: --gradcam: the feature map is 1x1 at --img-size %lld, so the map is flat; "
                             "use a larger input size\n", static_cast<long long>(img_size));
      data::write_png(models::gradcam_overlay(original, cam.heatmap, gradcam_alpha), gradcam_path);
      out["gradcam"] = gradcam_path;
      out["gradcam_class"] = cam.target;
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
