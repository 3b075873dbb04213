#pragma once
// Grad-CAM (Selvaraju et al., ICCV 2017) for the classification models: which regions of
// the last convolutional feature map A (ImageClassifier::feature_map, [K, h, w]) raise the
// explained logit y. Channel weights are the spatial means of dy/dA_k, the map is
// ReLU(sum_k w_k A_k), upsampled bilinearly (align_corners false, as F.interpolate) to the
// requested size and min-max normalized to [0, 1].
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/data/image.h"
#include "models/classifier.h"

namespace pneuma::models {

struct GradCam {
  int64_t target = 0;           // the class whose logit was explained
  std::vector<double> logits;   // the model's logits for the image
  std::vector<double> weights;  // [K] channel weights
  Tensor activation;            // float32 [h, w]: ReLU(sum_k w_k A_k), before upsampling
  Tensor heatmap;               // float32 [H, W] in [0, 1]; all zeros when the map is constant
};

// input: one preprocessed image [1, C, H, W]. target: a class index, or nullopt for the
// predicted class (argmax; the single logit of a binary model). output_size: the
// heatmap's size, default the input's H x W (e.g. the original image's size for an overlay).
// Runs with the model's current train/eval mode (callers explain a model in eval mode) and
// leaves its parameters, their gradients and requires_grad flags as they were.
GradCam grad_cam(const ImageClassifier& model, const Tensor& input, std::optional<int64_t> target = std::nullopt,
                 std::optional<std::array<int64_t, 2>> output_size = std::nullopt);

// matplotlib's "jet" colormap (its 256-entry lookup table) at value in [0, 1]: RGB in [0, 1].
std::array<float, 3> jet_color(double value);

// The heatmap [H, W] through the jet colormap, blended over the image (gray or RGB, H x W):
// (1 - alpha) * image + alpha * colour, as an RGB image.
data::Image gradcam_overlay(const data::Image& image, const Tensor& heatmap, double alpha = 0.5);

}  // namespace pneuma::models
