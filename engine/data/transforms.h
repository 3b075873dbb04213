#pragma once
// Transforms and augmentations, after torchvision's, seeded per (epoch, sample, view):
// a Pipeline is applied to one source image with one seed, and transform k of the
// pipeline draws from its own stream derive_seed(seed, k). The same seed gives the same
// output on any thread, so runs are reproducible with any number of loader workers.
//
// Geometric transforms (resizes, crops, rotation, translation, flip) are affine maps;
// the pipeline composes consecutive ones and resamples the source once: bilinear where
// the map enlarges or rotates; stb_image_resize on the source region (box filter along
// shrinking axes) where an axis-aligned map shrinks; an area pre-shrink first where a
// rotated map shrinks by more than 1.5x. One consequence differs
// from running torchvision's steps one by one: where a later step (say a rotation)
// uncovers pixels outside an earlier crop, the fused map shows the source image there
// and `fill` appears only outside the source itself.
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "engine/data/image.h"
#include "engine/data/rng.h"

namespace pneuma::data {

// Maps an output position (x, y) (continuous, pixel centres at +0.5) to the input:
// x_in = a x + b y + tx, y_in = c x + d y + ty.
struct Affine {
  double a = 1, b = 0, tx = 0;
  double c = 0, d = 1, ty = 0;
  static Affine scale_translate(double sx, double sy, double tx, double ty) { return {sx, 0, tx, 0, sy, ty}; }
  bool is_identity() const { return a == 1 && b == 0 && tx == 0 && c == 0 && d == 1 && ty == 0; }
};
// outer(inner(p)): `inner` maps the final output to an intermediate image, `outer` maps
// that to the source.
Affine compose(const Affine& outer, const Affine& inner);

// Resamples `image` to height x width through to_source (bilinear; `fill` outside).
Image warp_affine(const Image& image, int64_t height, int64_t width, const Affine& to_source, float fill = 0.0f);

struct Warp {
  int64_t height = 0, width = 0;
  Affine to_source;
  float fill = 0.0f;
};

class Transform {
 public:
  virtual ~Transform() = default;
  virtual std::string name() const = 0;
  virtual bool geometric() const { return false; }
  // Geometric transforms: the output size and map for an input of height x width.
  virtual Warp warp(int64_t height, int64_t width, Rng& rng) const;
  // The others: change the image in place.
  virtual void apply(Image& image, Rng& rng) const;
};

// ---- deterministic geometry
class Resize : public Transform {  // to height x width, aspect not kept ("squash")
 public:
  Resize(int64_t height, int64_t width);
  std::string name() const override { return "Resize"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  int64_t height_, width_;
};

class ResizeShorter : public Transform {  // torchvision Resize(int)
 public:
  explicit ResizeShorter(int64_t size);
  std::string name() const override { return "ResizeShorter"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  int64_t size_;
};

class ResizePad : public Transform {  // aspect kept, centred, padded with fill
 public:
  ResizePad(int64_t height, int64_t width, float fill = 0.0f);
  std::string name() const override { return "ResizePad"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  int64_t height_, width_;
  float fill_;
};

class CenterCrop : public Transform {
 public:
  CenterCrop(int64_t height, int64_t width);
  std::string name() const override { return "CenterCrop"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  int64_t height_, width_;
};

// ---- random geometry
class RandomResizedCrop : public Transform {  // torchvision's parameters and sampling
 public:
  RandomResizedCrop(int64_t height, int64_t width, std::array<double, 2> scale = {0.08, 1.0},
                    std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0});
  std::string name() const override { return "RandomResizedCrop"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  int64_t height_, width_;
  std::array<double, 2> scale_, ratio_;
};

class RandomRotation : public Transform {  // angle uniform in [-degrees, degrees], about the centre
 public:
  explicit RandomRotation(double degrees, float fill = 0.0f);
  std::string name() const override { return "RandomRotation"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  double degrees_;
  float fill_;
};

class RandomTranslate : public Transform {  // RandomAffine(translate=(fx, fy)): shift up to fx*W, fy*H
 public:
  RandomTranslate(double fraction_x, double fraction_y, float fill = 0.0f);
  std::string name() const override { return "RandomTranslate"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  double fx_, fy_;
  float fill_;
};

// Not in any default CXR pipeline: the heart's side is anatomy, not noise.
class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  std::string name() const override { return "RandomHorizontalFlip"; }
  bool geometric() const override { return true; }
  Warp warp(int64_t height, int64_t width, Rng& rng) const override;

 private:
  double p_;
};

// ---- intensity
// torchvision ColorJitter(brightness, contrast), its two factors applied in random
// order, the whole jitter applied with probability p (RandomApply).
class ColorJitter : public Transform {
 public:
  ColorJitter(double brightness, double contrast, double p = 1.0);
  std::string name() const override { return "ColorJitter"; }
  void apply(Image& image, Rng& rng) const override;

 private:
  double brightness_, contrast_, p_;
};

class GaussianNoise : public Transform {  // x + N(0, std^2), clamped to [0, 1]
 public:
  explicit GaussianNoise(double std, double p = 1.0);
  std::string name() const override { return "GaussianNoise"; }
  void apply(Image& image, Rng& rng) const override;

 private:
  double std_, p_;
};

// torchvision GaussianBlur(kernel_size, sigma=(lo, hi)) with reflect padding, applied
// with probability p (SimCLR: kernel 10% of the image side, p = 0.5).
class GaussianBlur : public Transform {
 public:
  GaussianBlur(int64_t kernel_size, std::array<double, 2> sigma = {0.1, 2.0}, double p = 0.5);
  std::string name() const override { return "GaussianBlur"; }
  void apply(Image& image, Rng& rng) const override;

 private:
  int64_t kernel_;
  std::array<double, 2> sigma_;
  double p_;
};

// Transforms, then conversion to `channels` and normalization, into a float32 [C, H, W].
class Pipeline {
 public:
  Pipeline() = default;
  Pipeline& add(std::shared_ptr<const Transform> transform);
  template <class T, class... Args>
  Pipeline& add(Args&&... args) {
    return add(std::make_shared<const T>(std::forward<Args>(args)...));
  }
  Pipeline& channels(int64_t channels);          // 0 keeps the decoded channels; default 3
  Pipeline& normalize(Normalization normalization);  // default ImageNet mean/std

  int64_t output_channels() const { return channels_; }
  const Normalization& normalization() const { return normalization_; }
  const std::vector<std::shared_ptr<const Transform>>& transforms() const { return transforms_; }
  std::string str() const;

  // The transformed image, before channel conversion and normalization.
  Image apply(const Image& source, uint64_t seed) const;
  Tensor operator()(const Image& source, uint64_t seed) const;

  // Standard pipelines at size x size. eval: shorter side to size, centre crop.
  // cxr_train: random resized crop (scale 0.7-1, ratio 0.9-1.1), rotation +-10 degrees,
  // translation 5%, brightness/contrast jitter 0.2; no flip. simclr: one SimCLR view
  // for gray CXRs: random resized crop (scale 0.2-1), jitter 0.4/0.4 with p 0.8, blur
  // (kernel ~10% of size, p 0.5); no flip, no hue/saturation/grayscale.
  static Pipeline eval(int64_t size);
  static Pipeline cxr_train(int64_t size);
  static Pipeline simclr(int64_t size);

 private:
  std::vector<std::shared_ptr<const Transform>> transforms_;
  int64_t channels_ = 3;
  Normalization normalization_ = Normalization::imagenet();
};

}  // namespace pneuma::data
