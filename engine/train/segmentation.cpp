#include "engine/train/segmentation.h"

#include <cmath>

#include "engine/core/error.h"
#include "engine/ops/upsample/upsample.h"

namespace pneuma::train {

SegmentationDataset::SegmentationDataset(data::Manifest manifest, int64_t size, bool with_masks,
                                         data::Normalization normalization)
    : manifest_(std::move(manifest)), size_(size), with_masks_(with_masks), normalization_(std::move(normalization)) {
  PNEUMA_CHECK(size_ >= 1, "SegmentationDataset: image size ", size_, " < 1");
  if (with_masks_) {
    PNEUMA_CHECK(manifest_.has_mask, manifest_.source, ": no mask column (a segmentation set needs one)");
    for (const data::Record& r : manifest_.records)
      PNEUMA_CHECK(!r.mask.empty(), manifest_.source, ": line ", r.line, ": no mask for '", r.path, "'");
  }
}

Tensor SegmentationDataset::image_tensor(const data::Image& gray) const {
  const data::Image resized =
      gray.height == size_ && gray.width == size_ ? gray : data::resize(gray, size_, size_);
  return data::to_tensor(resized, 1, normalization_);
}

Tensor SegmentationDataset::mask_tensor(const data::Image& mask) const {
  const Tensor full = data::to_tensor(mask, 1).unsqueeze(0);  // [1, 1, h, w]
  const Tensor resized = upsample_nearest2d(full, {size_, size_}).reshape({1, size_, size_}).contiguous();
  // Binary targets whatever the file stores (0/255, 0/1, antialiased edges).
  float* v = resized.data<float>();
  for (int64_t i = 0; i < resized.numel(); ++i) v[i] = v[i] >= 0.5f ? 1.0f : 0.0f;
  return resized;
}

data::Example SegmentationDataset::get(int64_t index, uint64_t /*seed: no augmentation*/) const {
  const data::Record& r = manifest_.records.at(static_cast<size_t>(index));
  data::Example example;
  example.label = r.label;
  example.views.push_back(image_tensor(data::read_image(r.file, 1)));
  if (with_masks_) example.views.push_back(mask_tensor(data::read_image(r.mask, 1)));
  return example;
}

std::vector<MaskScore> mask_scores(const Tensor& logits, const Tensor& targets, double threshold) {
  PNEUMA_CHECK(logits.shape() == targets.shape(), "mask_scores: logits ", logits.str(), " and targets ",
               targets.str(), " differ in shape");
  PNEUMA_CHECK(logits.dim() >= 2, "mask_scores: need [N, ...] masks, got ", logits.str());
  PNEUMA_CHECK(threshold > 0 && threshold < 1, "mask_scores: threshold ", threshold, " is not in (0, 1)");
  const double logit_threshold = std::log(threshold / (1 - threshold));
  const int64_t n = logits.size(0);
  const int64_t per_image = n > 0 ? logits.numel() / n : 0;
  const std::vector<double> l = logits.to_vector(), t = targets.to_vector();
  std::vector<MaskScore> scores(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t both = 0, predicted = 0, truth = 0;
    for (int64_t j = i * per_image; j < (i + 1) * per_image; ++j) {
      const bool p = l[static_cast<size_t>(j)] >= logit_threshold;
      const bool g = t[static_cast<size_t>(j)] >= 0.5;
      both += p && g;
      predicted += p;
      truth += g;
    }
    const int64_t either = predicted + truth - both;
    MaskScore& s = scores[static_cast<size_t>(i)];
    s.dice = predicted + truth == 0 ? 1.0 : 2.0 * static_cast<double>(both) / static_cast<double>(predicted + truth);
    s.iou = either == 0 ? 1.0 : static_cast<double>(both) / static_cast<double>(either);
  }
  return scores;
}

}  // namespace pneuma::train
