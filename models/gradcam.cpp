#include "models/gradcam.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/core/error.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/reduce/minmax.h"
#include "engine/ops/reduce/reduce.h"
#include "engine/ops/upsample/upsample.h"

namespace pneuma::models {

namespace {

// Turns gradient recording on in its scope, and off for the model's parameters: only the
// detached feature map is a leaf that requires grad, so backward computes dy/dA alone and
// never touches the parameters' .grad (a caller may be between backward and step).
class FeatureMapOnlyGrad {
 public:
  explicit FeatureMapOnlyGrad(const ImageClassifier& model)
      : parameters_(model.parameters()), previous_mode_(autograd::grad_enabled()) {
    for (Tensor& p : parameters_) {
      flags_.push_back(p.requires_grad());
      p.set_requires_grad(false);
    }
    autograd::set_grad_enabled(true);
  }
  ~FeatureMapOnlyGrad() {
    autograd::set_grad_enabled(previous_mode_);
    for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].set_requires_grad(flags_[i]);
  }
  FeatureMapOnlyGrad(const FeatureMapOnlyGrad&) = delete;
  FeatureMapOnlyGrad& operator=(const FeatureMapOnlyGrad&) = delete;

 private:
  std::vector<Tensor> parameters_;
  std::vector<bool> flags_;
  bool previous_mode_;
};

struct Segment {
  double x, y;
};

double piecewise_linear(const std::vector<Segment>& points, double x) {
  for (size_t i = 1; i < points.size(); ++i)
    if (x <= points[i].x) {
      const Segment& a = points[i - 1];
      const Segment& b = points[i];
      return a.y + (x - a.x) / (b.x - a.x) * (b.y - a.y);
    }
  return points.back().y;
}

}  // namespace

GradCam grad_cam(const ImageClassifier& model, const Tensor& input, std::optional<int64_t> target,
                 std::optional<std::array<int64_t, 2>> output_size) {
  PNEUMA_CHECK(input.dim() == 4 && input.size(0) == 1, "grad_cam: input must be one image [1, C, H, W], got ",
               input.str());
  const std::array<int64_t, 2> size = output_size.value_or(std::array<int64_t, 2>{input.size(2), input.size(3)});
  PNEUMA_CHECK(size[0] > 0 && size[1] > 0, "grad_cam: output size ", size[0], "x", size[1], " is empty");

  Tensor activations;
  {
    // The backbone's graph is not needed: the gradient is taken w.r.t. the feature map.
    NoGradGuard no_grad;
    activations = model.feature_map(input);
  }
  PNEUMA_CHECK(activations.dim() == 4, "grad_cam: feature map must be [1, K, h, w], got ", activations.str());
  activations = activations.detach().contiguous();

  GradCam out;
  Tensor gradients;
  {
    FeatureMapOnlyGrad guard(model);
    activations.set_requires_grad(true);
    const Tensor logits = model.classify(model.pool(activations));
    PNEUMA_CHECK(logits.dim() == 2 && logits.size(0) == 1, "grad_cam: logits must be [1, classes], got ",
                 logits.str());
    out.logits = logits.detach().to_vector();
    const int64_t classes = logits.size(1);
    out.target = target.value_or(static_cast<int64_t>(std::max_element(out.logits.begin(), out.logits.end()) -
                                                      out.logits.begin()));
    PNEUMA_CHECK(out.target >= 0 && out.target < classes, "grad_cam: target class ", out.target,
                 " is not in [0, ", classes, ")");
    sum(logits.select(1, out.target)).backward();
    gradients = activations.grad();
    activations.set_requires_grad(false);
  }
  PNEUMA_CHECK(gradients.defined(), "grad_cam: the logit does not depend on the feature map");

  NoGradGuard no_grad;
  const Tensor weights = mean(gradients, {2, 3}, /*keepdim=*/true);  // [1, K, 1, 1]
  out.weights = weights.to_vector();
  const Tensor cam = relu(sum(mul(activations.detach(), weights), {1}, /*keepdim=*/true));  // [1, 1, h, w]
  out.activation = cam.reshape({activations.size(2), activations.size(3)}).contiguous();
  Tensor up = upsample_bilinear2d(cam, size, /*align_corners=*/false).reshape({size[0], size[1]});
  const double low = min(up).item(), high = max(up).item();
  out.heatmap = high > low ? div(sub(up, low), high - low).contiguous() : Tensor::zeros({size[0], size[1]});
  return out;
}

std::array<float, 3> jet_color(double value) {
  // matplotlib's _jet_data segments, sampled like its 256-entry lookup table.
  static const std::vector<Segment> red{{0, 0}, {0.35, 0}, {0.66, 1}, {0.89, 1}, {1, 0.5}};
  static const std::vector<Segment> green{{0, 0}, {0.125, 0}, {0.375, 1}, {0.64, 1}, {0.91, 0}, {1, 0}};
  static const std::vector<Segment> blue{{0, 0.5}, {0.11, 1}, {0.34, 1}, {0.65, 0}, {1, 0}};
  const double clamped = std::isnan(value) ? 0.0 : std::clamp(value, 0.0, 1.0);
  const int64_t index = std::min<int64_t>(static_cast<int64_t>(clamped * 256.0), 255);
  const double x = static_cast<double>(index) / 255.0;
  return {static_cast<float>(piecewise_linear(red, x)), static_cast<float>(piecewise_linear(green, x)),
          static_cast<float>(piecewise_linear(blue, x))};
}

data::Image gradcam_overlay(const data::Image& image, const Tensor& heatmap, double alpha) {
  PNEUMA_CHECK(heatmap.dim() == 2 && heatmap.size(0) == image.height && heatmap.size(1) == image.width,
               "gradcam_overlay: heatmap ", heatmap.str(), " does not match the image ", image.str());
  PNEUMA_CHECK(alpha >= 0 && alpha <= 1, "gradcam_overlay: alpha ", alpha, " is not in [0, 1]");
  const data::Image rgb = data::to_channels(image, 3);
  const std::vector<double> heat = heatmap.to_vector();
  data::Image out(3, image.height, image.width);
  const auto a = static_cast<float>(alpha);
  for (int64_t y = 0; y < image.height; ++y)
    for (int64_t x = 0; x < image.width; ++x) {
      const std::array<float, 3> color = jet_color(heat[static_cast<size_t>(y * image.width + x)]);
      for (int64_t c = 0; c < 3; ++c) out.at(c, y, x) = (1 - a) * rgb.at(c, y, x) + a * color[static_cast<size_t>(c)];
    }
  return out;
}

}  // namespace pneuma::models
