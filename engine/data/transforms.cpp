#include "engine/data/transforms.h"

#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cmath>

#include "engine/core/error.h"

namespace pneuma::data {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Above this many source pixels per output pixel, bilinear sampling would alias.
constexpr double kMaxBilinearShrink = 1.5;

int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

// The channels intensity transforms touch: an alpha channel is left alone.
int64_t color_channels(const Image& image) { return image.channels == 2 || image.channels == 4 ? image.channels - 1 : image.channels; }

void check_size(int64_t height, int64_t width, const char* what) {
  PNEUMA_CHECK(height >= 1 && width >= 1, what, ": output size must be positive, got ", height, "x", width);
}

// Crops, resizes, translations and flips that shrink: stb_image_resize filters the
// source region straight onto the output grid (box filter along shrinking axes,
// triangle along enlarging ones), as an area/antialiased resize does.
Image shrink_axis_aligned(const Image& image, int64_t height, int64_t width, const Affine& map, float fill) {
  double x0 = map.tx, x1 = map.a * width + map.tx, y0 = map.ty, y1 = map.d * height + map.ty;
  const bool flip_x = x1 < x0, flip_y = y1 < y0;
  if (flip_x) std::swap(x0, x1);
  if (flip_y) std::swap(y0, y1);
  // Parts outside the source become fill pixels of an enlarged source first.
  const Image* src = &image;
  Image padded;
  if (x0 < 0 || y0 < 0 || x1 > image.width || y1 > image.height) {
    const int64_t left = static_cast<int64_t>(std::floor(x0)), top = static_cast<int64_t>(std::floor(y0));
    const int64_t right = static_cast<int64_t>(std::ceil(x1)), bottom = static_cast<int64_t>(std::ceil(y1));
    padded = crop(image, top, left, bottom - top, right - left, fill);
    x0 -= left;
    x1 -= left;
    y0 -= top;
    y1 -= top;
    src = &padded;
  }
  Image out(image.channels, height, width);
  out.source_bits = image.source_bits;
  const int64_t W = src->width, H = src->height;
  const auto filter = [](double from, int64_t to) { return from > to ? STBIR_FILTER_BOX : STBIR_FILTER_TRIANGLE; };
  for (int64_t c = 0; c < image.channels; ++c) {
    const int ok = stbir_resize_region(
        src->plane(c).data(), static_cast<int>(W), static_cast<int>(H), static_cast<int>(W * sizeof(float)),
        out.plane(c).data(), static_cast<int>(width), static_cast<int>(height), static_cast<int>(width * sizeof(float)),
        STBIR_TYPE_FLOAT, 1, STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, filter(x1 - x0, width),
        filter(y1 - y0, height), STBIR_COLORSPACE_LINEAR, nullptr, static_cast<float>(x0 / W),
        static_cast<float>(y0 / H), static_cast<float>(x1 / W), static_cast<float>(y1 / H));
    PNEUMA_CHECK(ok, "warp_affine: stb_image_resize failed for ", image.str(), " -> ", width, "x", height);
    std::span<float> p = out.plane(c);
    if (flip_x)
      for (int64_t y = 0; y < height; ++y) std::reverse(p.begin() + y * width, p.begin() + (y + 1) * width);
    if (flip_y)
      for (int64_t y = 0; y < height / 2; ++y)
        std::swap_ranges(p.begin() + y * width, p.begin() + (y + 1) * width, p.begin() + (height - 1 - y) * width);
  }
  return out;
}

}  // namespace

Affine compose(const Affine& f, const Affine& g) {
  Affine r;
  r.a = f.a * g.a + f.b * g.c;
  r.b = f.a * g.b + f.b * g.d;
  r.tx = f.a * g.tx + f.b * g.ty + f.tx;
  r.c = f.c * g.a + f.d * g.c;
  r.d = f.c * g.b + f.d * g.d;
  r.ty = f.c * g.tx + f.d * g.ty + f.ty;
  return r;
}

Image warp_affine(const Image& image, int64_t height, int64_t width, const Affine& map, float fill) {
  PNEUMA_CHECK(!image.empty(), "warp_affine: empty image");
  check_size(height, width, "warp_affine");
  if (map.is_identity() && height == image.height && width == image.width) return image;
  if (map.b == 0 && map.c == 0 && (std::abs(map.a) > 1.0 || std::abs(map.d) > 1.0)) return shrink_axis_aligned(image, height, width, map, fill);
  const double kx = std::hypot(map.a, map.b), ky = std::hypot(map.c, map.d);
  if (std::max(kx, ky) > kMaxBilinearShrink) {
    // Area-shrink the source first so that the bilinear step samples a band-limited image.
    const int64_t w = std::max<int64_t>(1, std::llround(image.width / std::max(1.0, kx)));
    const int64_t h = std::max<int64_t>(1, std::llround(image.height / std::max(1.0, ky)));
    const double rx = static_cast<double>(w) / image.width, ry = static_cast<double>(h) / image.height;
    const Affine scaled{map.a * rx, map.b * rx, map.tx * rx, map.c * ry, map.d * ry, map.ty * ry};
    return warp_affine(resize(image, h, w, Interpolation::Area), height, width, scaled, fill);
  }
  Image out(image.channels, height, width);
  out.source_bits = image.source_bits;
  const int64_t W = image.width, H = image.height, plane = image.plane_size(), oplane = out.plane_size();
  const int64_t channels = image.channels;
  for (int64_t y = 0; y < height; ++y) {
    const double py = y + 0.5;
    double sx = map.a * 0.5 + map.b * py + map.tx - 0.5;
    double sy = map.c * 0.5 + map.d * py + map.ty - 0.5;
    for (int64_t x = 0; x < width; ++x, sx += map.a, sy += map.c) {
      const int64_t o = y * width + x;
      if (!(sx >= -0.5 && sx <= W - 0.5 && sy >= -0.5 && sy <= H - 0.5)) {
        for (int64_t c = 0; c < channels; ++c) out.values[c * oplane + o] = fill;
        continue;
      }
      const double fx0 = std::floor(sx), fy0 = std::floor(sy);
      const float wx = static_cast<float>(sx - fx0), wy = static_cast<float>(sy - fy0);
      const int64_t x0 = std::clamp<int64_t>(static_cast<int64_t>(fx0), 0, W - 1);
      const int64_t x1 = std::clamp<int64_t>(static_cast<int64_t>(fx0) + 1, 0, W - 1);
      const int64_t y0 = std::clamp<int64_t>(static_cast<int64_t>(fy0), 0, H - 1);
      const int64_t y1 = std::clamp<int64_t>(static_cast<int64_t>(fy0) + 1, 0, H - 1);
      for (int64_t c = 0; c < channels; ++c) {
        const float* p = image.values.data() + c * plane;
        const float top = p[y0 * W + x0] + wx * (p[y0 * W + x1] - p[y0 * W + x0]);
        const float bottom = p[y1 * W + x0] + wx * (p[y1 * W + x1] - p[y1 * W + x0]);
        out.values[c * oplane + o] = top + wy * (bottom - top);
      }
    }
  }
  return out;
}

Warp Transform::warp(int64_t, int64_t, Rng&) const { PNEUMA_FAIL(name(), ": not a geometric transform"); }
void Transform::apply(Image&, Rng&) const { PNEUMA_FAIL(name(), ": a geometric transform runs through a Pipeline"); }

Resize::Resize(int64_t height, int64_t width) : height_(height), width_(width) { check_size(height, width, "Resize"); }

Warp Resize::warp(int64_t height, int64_t width, Rng&) const {
  return {height_, width_,
          Affine::scale_translate(static_cast<double>(width) / width_, static_cast<double>(height) / height_, 0, 0)};
}

ResizeShorter::ResizeShorter(int64_t size) : size_(size) { check_size(size, size, "ResizeShorter"); }

Warp ResizeShorter::warp(int64_t height, int64_t width, Rng&) const {
  const int64_t h = height <= width ? size_ : std::max<int64_t>(1, size_ * height / width);
  const int64_t w = height <= width ? std::max<int64_t>(1, size_ * width / height) : size_;
  return {h, w, Affine::scale_translate(static_cast<double>(width) / w, static_cast<double>(height) / h, 0, 0)};
}

ResizePad::ResizePad(int64_t height, int64_t width, float fill) : height_(height), width_(width), fill_(fill) {
  check_size(height, width, "ResizePad");
}

Warp ResizePad::warp(int64_t height, int64_t width, Rng&) const {
  const double scale = std::min(static_cast<double>(height_) / height, static_cast<double>(width_) / width);
  const int64_t h = std::clamp<int64_t>(std::llround(height * scale), 1, height_);
  const int64_t w = std::clamp<int64_t>(std::llround(width * scale), 1, width_);
  const double sx = static_cast<double>(width) / w, sy = static_cast<double>(height) / h;
  const int64_t ox = (width_ - w) / 2, oy = (height_ - h) / 2;
  return {height_, width_, Affine::scale_translate(sx, sy, -ox * sx, -oy * sy), fill_};
}

CenterCrop::CenterCrop(int64_t height, int64_t width) : height_(height), width_(width) {
  check_size(height, width, "CenterCrop");
}

Warp CenterCrop::warp(int64_t height, int64_t width, Rng&) const {
  const double top = std::round((height - height_) / 2.0), left = std::round((width - width_) / 2.0);
  return {height_, width_, Affine::scale_translate(1, 1, left, top)};
}

RandomResizedCrop::RandomResizedCrop(int64_t height, int64_t width, std::array<double, 2> scale,
                                     std::array<double, 2> ratio)
    : height_(height), width_(width), scale_(scale), ratio_(ratio) {
  check_size(height, width, "RandomResizedCrop");
  PNEUMA_CHECK(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1, "RandomResizedCrop: scale must satisfy 0 < ",
               "min <= max <= 1, got (", scale[0], ", ", scale[1], ")");
  PNEUMA_CHECK(ratio[0] > 0 && ratio[0] <= ratio[1], "RandomResizedCrop: ratio must satisfy 0 < min <= max, got (",
               ratio[0], ", ", ratio[1], ")");
}

Warp RandomResizedCrop::warp(int64_t height, int64_t width, Rng& rng) const {
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(ratio_[0]), log_hi = std::log(ratio_[1]);
  int64_t top = 0, left = 0, h = 0, w = 0;
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target = area * rng.uniform(scale_[0], scale_[1]);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    w = std::llround(std::sqrt(target * aspect));
    h = std::llround(std::sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      top = rng.integer(0, height - h);
      left = rng.integer(0, width - w);
      found = true;
    }
  }
  if (!found) {  // torchvision's fallback: the centre crop of the clamped aspect
    const double in_ratio = static_cast<double>(width) / height;
    if (in_ratio < ratio_[0]) {
      w = width;
      h = std::llround(w / ratio_[0]);
    } else if (in_ratio > ratio_[1]) {
      h = height;
      w = std::llround(h * ratio_[1]);
    } else {
      w = width;
      h = height;
    }
    top = (height - h) / 2;
    left = (width - w) / 2;
  }
  return {height_, width_,
          Affine::scale_translate(static_cast<double>(w) / width_, static_cast<double>(h) / height_,
                                  static_cast<double>(left), static_cast<double>(top))};
}

RandomRotation::RandomRotation(double degrees, float fill) : degrees_(degrees), fill_(fill) {
  PNEUMA_CHECK(degrees >= 0, "RandomRotation: degrees must be >= 0, got ", degrees);
}

Warp RandomRotation::warp(int64_t height, int64_t width, Rng& rng) const {
  const double angle = rng.uniform(-degrees_, degrees_) * kPi / 180.0;
  const double cs = std::cos(angle), sn = std::sin(angle);
  const double cx = width / 2.0, cy = height / 2.0;
  // p_in = centre + R (p_out - centre)
  return {height, width, {cs, -sn, cx - cs * cx + sn * cy, sn, cs, cy - sn * cx - cs * cy}, fill_};
}

RandomTranslate::RandomTranslate(double fraction_x, double fraction_y, float fill)
    : fx_(fraction_x), fy_(fraction_y), fill_(fill) {
  PNEUMA_CHECK(fraction_x >= 0 && fraction_x <= 1 && fraction_y >= 0 && fraction_y <= 1,
               "RandomTranslate: fractions must be in [0, 1], got (", fraction_x, ", ", fraction_y, ")");
}

Warp RandomTranslate::warp(int64_t height, int64_t width, Rng& rng) const {
  const double max_dx = fx_ * width, max_dy = fy_ * height;
  const double dx = std::round(rng.uniform(-max_dx, max_dx)), dy = std::round(rng.uniform(-max_dy, max_dy));
  return {height, width, Affine::scale_translate(1, 1, -dx, -dy), fill_};
}

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  PNEUMA_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
}

Warp RandomHorizontalFlip::warp(int64_t height, int64_t width, Rng& rng) const {
  if (!rng.bernoulli(p_)) return {height, width, Affine{}};
  return {height, width, {-1, 0, static_cast<double>(width), 0, 1, 0}};
}

ColorJitter::ColorJitter(double brightness, double contrast, double p) : brightness_(brightness), contrast_(contrast), p_(p) {
  PNEUMA_CHECK(brightness >= 0 && contrast >= 0, "ColorJitter: brightness and contrast must be >= 0, got ", brightness,
               ", ", contrast);
  PNEUMA_CHECK(p >= 0 && p <= 1, "ColorJitter: p must be in [0, 1], got ", p);
}

void ColorJitter::apply(Image& image, Rng& rng) const {
  if (!rng.bernoulli(p_)) return;
  const double bf = rng.uniform(std::max(0.0, 1.0 - brightness_), 1.0 + brightness_);
  const double cf = rng.uniform(std::max(0.0, 1.0 - contrast_), 1.0 + contrast_);
  const bool brightness_first = rng.bernoulli(0.5);
  const int64_t plane = image.plane_size(), channels = color_channels(image);
  auto brightness = [&] {
    if (brightness_ == 0) return;
    const float f = static_cast<float>(bf);
    for (int64_t i = 0; i < plane * channels; ++i) image.values[i] = std::min(1.0f, image.values[i] * f);
  };
  auto contrast = [&] {
    if (contrast_ == 0) return;
    double mean = 0;
    if (channels == 3) {
      for (int64_t i = 0; i < plane; ++i)
        mean += 0.299 * image.values[i] + 0.587 * image.values[plane + i] + 0.114 * image.values[2 * plane + i];
    } else {
      for (int64_t i = 0; i < plane; ++i) mean += image.values[i];
    }
    const float m = static_cast<float>(mean / plane), f = static_cast<float>(cf);
    for (int64_t i = 0; i < plane * channels; ++i) image.values[i] = std::clamp(m + f * (image.values[i] - m), 0.0f, 1.0f);
  };
  if (brightness_first) {
    brightness();
    contrast();
  } else {
    contrast();
    brightness();
  }
}

GaussianNoise::GaussianNoise(double std, double p) : std_(std), p_(p) {
  PNEUMA_CHECK(std >= 0, "GaussianNoise: std must be >= 0, got ", std);
  PNEUMA_CHECK(p >= 0 && p <= 1, "GaussianNoise: p must be in [0, 1], got ", p);
}

void GaussianNoise::apply(Image& image, Rng& rng) const {
  if (!rng.bernoulli(p_) || std_ == 0) return;
  const uint64_t stream = rng.bits();
  const int64_t n = image.plane_size() * color_channels(image);
  const float s = static_cast<float>(std_);
  for (int64_t i = 0; i < n; i += 2) {  // Box-Muller gives two normals per pair of uniforms
    const double u1 = 1.0 - random::uniform(stream, static_cast<uint64_t>(i));
    const double u2 = random::uniform(stream, static_cast<uint64_t>(i) + 1);
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * kPi * u2;
    image.values[i] = std::clamp(image.values[i] + s * static_cast<float>(r * std::cos(t)), 0.0f, 1.0f);
    if (i + 1 < n) image.values[i + 1] = std::clamp(image.values[i + 1] + s * static_cast<float>(r * std::sin(t)), 0.0f, 1.0f);
  }
}

GaussianBlur::GaussianBlur(int64_t kernel_size, std::array<double, 2> sigma, double p)
    : kernel_(kernel_size), sigma_(sigma), p_(p) {
  PNEUMA_CHECK(kernel_size >= 1 && kernel_size % 2 == 1, "GaussianBlur: kernel_size must be odd and positive, got ",
               kernel_size);
  PNEUMA_CHECK(sigma[0] > 0 && sigma[0] <= sigma[1], "GaussianBlur: sigma must satisfy 0 < min <= max, got (",
               sigma[0], ", ", sigma[1], ")");
  PNEUMA_CHECK(p >= 0 && p <= 1, "GaussianBlur: p must be in [0, 1], got ", p);
}

void GaussianBlur::apply(Image& image, Rng& rng) const {
  if (!rng.bernoulli(p_)) return;
  const double sigma = rng.uniform(sigma_[0], sigma_[1]);
  const int64_t half = kernel_ / 2;
  std::vector<float> k(static_cast<size_t>(kernel_));
  double total = 0;
  for (int64_t i = 0; i < kernel_; ++i) {
    const double x = static_cast<double>(i - half) / sigma;
    total += (k[i] = static_cast<float>(std::exp(-0.5 * x * x)));
  }
  for (float& v : k) v = static_cast<float>(v / total);
  const int64_t H = image.height, W = image.width;
  std::vector<float> tmp(static_cast<size_t>(H * W));
  std::vector<int64_t> xs(static_cast<size_t>(W + 2 * half)), ys(static_cast<size_t>(H + 2 * half));
  for (int64_t i = 0; i < W + 2 * half; ++i) xs[i] = reflect_index(i - half, W);
  for (int64_t i = 0; i < H + 2 * half; ++i) ys[i] = reflect_index(i - half, H);
  for (int64_t c = 0; c < color_channels(image); ++c) {
    std::span<float> p = image.plane(c);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        float s = 0;
        for (int64_t j = 0; j < kernel_; ++j) s += k[j] * p[y * W + xs[x + j]];
        tmp[y * W + x] = s;
      }
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        float s = 0;
        for (int64_t j = 0; j < kernel_; ++j) s += k[j] * tmp[ys[y + j] * W + x];
        p[y * W + x] = s;
      }
  }
}

Pipeline& Pipeline::add(std::shared_ptr<const Transform> transform) {
  PNEUMA_CHECK(transform != nullptr, "Pipeline::add: null transform");
  transforms_.push_back(std::move(transform));
  return *this;
}

Pipeline& Pipeline::channels(int64_t channels) {
  PNEUMA_CHECK(channels >= 0 && channels <= 4, "Pipeline::channels: must be 0 (as decoded) or 1-4, got ", channels);
  channels_ = channels;
  return *this;
}

Pipeline& Pipeline::normalize(Normalization normalization) {
  PNEUMA_CHECK(normalization.mean.empty() == normalization.std.empty(), "Pipeline::normalize: mean has ",
               normalization.mean.size(), " values, std ", normalization.std.size());
  for (double s : normalization.std) PNEUMA_CHECK(s != 0, "Pipeline::normalize: std has a zero");
  normalization_ = std::move(normalization);
  return *this;
}

std::string Pipeline::str() const {
  std::string out;
  for (const auto& t : transforms_) out += (out.empty() ? "" : " > ") + t->name();
  return out.empty() ? "identity" : out;
}

Image Pipeline::apply(const Image& source, uint64_t seed) const {
  PNEUMA_CHECK(!source.empty(), "Pipeline: empty source image");
  Image current;
  bool owned = false;  // current holds the work image (else it is still `source`)
  bool pending = false;
  Affine total;
  int64_t height = source.height, width = source.width;
  float fill = 0.0f;
  auto flush = [&] {
    current = warp_affine(owned ? current : source, height, width, total, fill);
    owned = true;
    pending = false;
  };
  for (size_t k = 0; k < transforms_.size(); ++k) {
    Rng rng(derive_seed(seed, k));
    const Transform& t = *transforms_[k];
    if (t.geometric()) {
      const Warp w = t.warp(height, width, rng);
      total = pending ? compose(total, w.to_source) : w.to_source;
      height = w.height;
      width = w.width;
      fill = w.fill;
      pending = true;
      continue;
    }
    if (pending) flush();
    if (!owned) {
      current = source;
      owned = true;
    }
    t.apply(current, rng);
  }
  if (pending) flush();
  return owned ? std::move(current) : source;
}

Tensor Pipeline::operator()(const Image& source, uint64_t seed) const {
  return to_tensor(apply(source, seed), channels_, normalization_);
}

Pipeline Pipeline::eval(int64_t size) {
  Pipeline p;
  p.add<ResizeShorter>(size).add<CenterCrop>(size, size);
  return p;
}

Pipeline Pipeline::cxr_train(int64_t size) {
  Pipeline p;
  p.add<RandomResizedCrop>(size, size, std::array<double, 2>{0.7, 1.0}, std::array<double, 2>{0.9, 1.1})
      .add<RandomRotation>(10.0)
      .add<RandomTranslate>(0.05, 0.05)
      .add<ColorJitter>(0.2, 0.2);
  return p;
}

Pipeline Pipeline::simclr(int64_t size) {
  Pipeline p;
  const int64_t kernel = std::max<int64_t>(3, (size / 10) | 1);
  p.add<RandomResizedCrop>(size, size, std::array<double, 2>{0.2, 1.0})
      .add<ColorJitter>(0.4, 0.4, 0.8)
      .add<GaussianBlur>(kernel, std::array<double, 2>{0.1, 2.0}, 0.5);
  return p;
}

}  // namespace pneuma::data
