#pragma once
// Lung segmentation data and scores for the U-Net tool (pneuma-train-unet): images with
// their masks at one square size, and per-image Dice / IoU of thresholded predictions.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/data/dataset.h"
#include "engine/data/image.h"
#include "engine/data/manifest.h"

namespace pneuma::train {

// The images of a manifest for a one-channel U-Net: decoded gray, resized to size x size
// (data::resize, Auto filter), values in [0, 1] normalized with `normalization` (default
// none). With masks (the manifest's mask column, required then) the example's second view
// is the mask resized with torch's 'nearest' (upsample_nearest2d, so a mask stays binary)
// and binarized at 0.5: views {image [1, S, S], mask [1, S, S]}; without masks, {image}.
class SegmentationDataset : public data::Dataset {
 public:
  SegmentationDataset(data::Manifest manifest, int64_t size, bool with_masks,
                      data::Normalization normalization = data::Normalization::none());
  int64_t size() const override { return manifest_.size(); }
  data::Example get(int64_t index, uint64_t seed) const override;
  const data::Manifest& manifest() const { return manifest_; }

  // One image as the model's input [1, S, S] (what get() puts in view 0).
  Tensor image_tensor(const data::Image& gray) const;
  // One mask file as a binary float32 [1, S, S] target.
  Tensor mask_tensor(const data::Image& mask) const;

 private:
  data::Manifest manifest_;
  int64_t size_;
  bool with_masks_;
  data::Normalization normalization_;
};

// Dice 2|P and T| / (|P| + |T|) and IoU |P and T| / |P or T| of one image, P = sigmoid(logit)
// >= threshold (logit >= logit(threshold)), T = target >= 0.5; both empty counts as 1 (a
// correct "no lung").
struct MaskScore {
  double dice = 0, iou = 0;
};
// logits and targets [N, 1, H, W] (or [N, H, W]): one score per image.
std::vector<MaskScore> mask_scores(const Tensor& logits, const Tensor& targets, double threshold = 0.5);

}  // namespace pneuma::train
