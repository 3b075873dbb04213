#include <doctest/doctest.h>

#include <cmath>

#include "engine/data/transforms.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using namespace pneuma::data;

namespace {

Image pattern(int64_t channels, int64_t h, int64_t w) {
  Image img(channels, h, w);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        img.at(c, y, x) = static_cast<float>(0.5 + 0.4 * std::sin(0.3 * x + 0.2 * y + c));
  return img;
}

double mean_of(const Image& img) {
  double s = 0;
  for (float v : img.values) s += v;
  return s / static_cast<double>(img.values.size());
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("transforms: geometry is exact where it should be") {
    const Image src = pattern(1, 20, 30);
    // identity-like steps copy exactly
    Pipeline p;
    p.add<Resize>(20, 30).add<CenterCrop>(20, 30);
    CHECK(p.apply(src, 1).values == src.values);
    // centre crop picks the torchvision window
    Pipeline cc;
    cc.add<CenterCrop>(10, 10);
    const Image c = cc.apply(src, 1);
    CHECK(c.at(0, 0, 0) == src.at(0, 5, 10));
    CHECK(c.at(0, 9, 9) == src.at(0, 14, 19));
    // a flip with p = 1 mirrors
    Pipeline flip;
    flip.add<RandomHorizontalFlip>(1.0);
    const Image f = flip.apply(src, 3);
    CHECK(f.at(0, 4, 0) == src.at(0, 4, 29));
    // fused steps equal the composition: crop then resize x2 samples source pixel centres
    Pipeline fused;
    fused.add<CenterCrop>(10, 10).add<Resize>(5, 5);
    const Image r = fused.apply(src, 0);
    CHECK(r.at(0, 0, 0) == doctest::Approx((src.at(0, 5, 10) + src.at(0, 5, 11) + src.at(0, 6, 10) + src.at(0, 6, 11)) / 4).epsilon(1e-5));
    // pad keeps the aspect
    Pipeline pad;
    pad.add<ResizePad>(30, 30, 0.25f);
    const Image pd = pad.apply(src, 0);
    CHECK(pd.height == 30);
    CHECK(pd.at(0, 2, 15) == 0.25f);
    CHECK(pd.at(0, 15, 15) != 0.25f);
    // a shrinking flip (axis-aligned fast path) mirrors too
    Pipeline flip_shrink;
    flip_shrink.add<RandomHorizontalFlip>(1.0).add<Resize>(10, 15);
    Pipeline shrink_only;
    shrink_only.add<Resize>(10, 15);
    const Image fs = flip_shrink.apply(src, 3), so = shrink_only.apply(src, 3);
    for (int64_t y = 0; y < 10; ++y)
      for (int64_t x = 0; x < 15; ++x) CHECK(fs.at(0, y, x) == doctest::Approx(so.at(0, y, 14 - x)).epsilon(1e-5));
    // a rotation of 0 degrees is the identity
    Pipeline rot0;
    rot0.add<RandomRotation>(0.0);
    CHECK(rot0.apply(src, 9).values == src.values);
  }

  TEST_CASE("transforms: augmentations are a pure function of the seed") {
    const Image src = pattern(3, 64, 48);
    Pipeline p = Pipeline::cxr_train(32);
    p.add<GaussianNoise>(0.05).add<GaussianBlur>(5, std::array<double, 2>{0.5, 1.5}, 1.0);
    const Tensor a = p(src, sample_seed(7, 2, 13)), b = p(src, sample_seed(7, 2, 13));
    CHECK(a.shape() == Shape{3, 32, 32});
    CHECK(a.to_vector() == b.to_vector());
    int differing = 0;
    for (int64_t s = 0; s < 8; ++s) differing += p(src, sample_seed(7, 2, 14 + s)).to_vector() != a.to_vector();
    CHECK(differing == 8);
    CHECK(sample_seed(7, 1, 13) != sample_seed(7, 2, 13));
    CHECK(sample_seed(7, 2, 13, 0) != sample_seed(7, 2, 13, 1));
    CHECK(p.str() == "RandomResizedCrop > RandomRotation > RandomTranslate > ColorJitter > GaussianNoise > GaussianBlur");
  }

  TEST_CASE("transforms: random resized crop / rotation / translation / jitter / noise / blur behave") {
    // RandomResizedCrop of a constant image is constant; of a ramp, its range shrinks with the scale.
    Image ramp(1, 100, 100);
    for (int64_t y = 0; y < 100; ++y)
      for (int64_t x = 0; x < 100; ++x) ramp.at(0, y, x) = static_cast<float>(x) / 99.0f;
    Pipeline rrc;
    rrc.add<RandomResizedCrop>(50, 50, std::array<double, 2>{0.25, 0.25}, std::array<double, 2>{1.0, 1.0});
    for (uint64_t s = 0; s < 10; ++s) {
      const Image out = rrc.apply(ramp, s);
      const float span = out.at(0, 25, 49) - out.at(0, 25, 0);
      CHECK(span == doctest::Approx(49.0 / 99 * 49.0 / 50).epsilon(0.05));  // a 50x50 window, resampled
    }
    // Rotation by up to 30 degrees keeps the centre pixel and fills corners.
    const Image img = pattern(1, 41, 41);
    Pipeline rot;
    rot.add<RandomRotation>(30.0, 0.0f);
    int filled = 0;
    for (uint64_t s = 0; s < 10; ++s) {
      const Image out = rot.apply(img, s);
      CHECK(out.at(0, 20, 20) == doctest::Approx(img.at(0, 20, 20)).epsilon(1e-5));
      filled += out.at(0, 0, 0) == 0.0f;
    }
    CHECK(filled >= 6);  // |angle| > ~1 degree puts the corner outside the source
    // Translation by whole pixels moves content without resampling.
    Pipeline tr;
    tr.add<RandomTranslate>(0.1, 0.1);
    const Image t = tr.apply(img, 4);
    bool found = false;
    for (int64_t dy = -4; dy <= 4 && !found; ++dy)
      for (int64_t dx = -4; dx <= 4 && !found; ++dx)
        found = t.at(0, 20, 20) == img.at(0, 20 - dy, 20 - dx) && t.at(0, 25, 18) == img.at(0, 25 - dy, 18 - dx);
    CHECK(found);
    // Brightness/contrast jitter stays in [0, 1] and within its factor range.
    Pipeline jit;
    jit.add<ColorJitter>(0.2, 0.0);
    for (uint64_t s = 0; s < 20; ++s) {
      const Image out = jit.apply(img, s);
      const double ratio = out.at(0, 3, 3) / img.at(0, 3, 3);
      CHECK(ratio >= 0.8 - 1e-5);
      CHECK(ratio <= 1.2 + 1e-5);
    }
    // Gaussian noise has the asked spread; blur keeps the mean and lowers the spread.
    Image flat(1, 64, 64, 0.5f);
    Pipeline noise;
    noise.add<GaussianNoise>(0.05);
    const Image n = noise.apply(flat, 1);
    double var = 0;
    for (float v : n.values) var += (v - 0.5) * (v - 0.5);
    CHECK(std::sqrt(var / n.values.size()) == doctest::Approx(0.05).epsilon(0.05));
    Pipeline blur;
    blur.add<GaussianBlur>(7, std::array<double, 2>{1.5, 1.5}, 1.0);
    const Image b = blur.apply(n, 1);
    CHECK(mean_of(b) == doctest::Approx(mean_of(n)).epsilon(1e-3));
    double var_b = 0;
    for (float v : b.values) var_b += (v - 0.5) * (v - 0.5);
    CHECK(var_b < var / 4);
  }

  TEST_CASE("transforms: standard pipelines give normalized 3-channel tensors and shrinking warps are antialiased") {
    Image big(1, 448, 448);
    for (int64_t y = 0; y < 448; ++y)
      for (int64_t x = 0; x < 448; ++x) big.at(0, y, x) = ((x + y) % 2) ? 1.0f : 0.0f;  // finest checkerboard
    const Tensor e = Pipeline::eval(224)(big, 0);
    CHECK(e.shape() == Shape{3, 224, 224});
    // Area pre-shrink: the checkerboard averages to gray instead of aliasing to black or white.
    const Image gray = Pipeline().channels(1).apply(big, 0);
    CHECK(gray.values == big.values);
    Pipeline shrink;
    shrink.add<Resize>(56, 56);
    const Image s = shrink.apply(big, 0);
    for (int64_t i = 0; i < s.plane_size(); i += 97) CHECK(s.values[i] == doctest::Approx(0.5).epsilon(0.02));
    const std::vector<double> v = e.to_vector();
    CHECK(v[0] == doctest::Approx((0.5 - 0.485) / 0.229).epsilon(0.05));
    const Tensor sim = Pipeline::simclr(64)(big, 3);
    CHECK(sim.shape() == Shape{3, 64, 64});
    CHECK_THROWS_WITH_AS(RandomResizedCrop(8, 8, std::array<double, 2>{0.5, 0.2}), doctest::Contains("RandomResizedCrop: scale"), Error);
    CHECK_THROWS_WITH_AS(GaussianBlur(4), "GaussianBlur: kernel_size must be odd and positive, got 4", Error);
  }
}
