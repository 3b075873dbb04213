#pragma once
// Images of the data pipeline. Files are decoded with stb_image (JPEG, PNG 8/16-bit,
// BMP) and resized with stb_image_resize; every other step works on one in-memory
// format, planar float values in [0, 1], so 8- and 16-bit sources, augmentations and
// the final tensor share the same code.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::data {

struct Image {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<float> values;  // [channels][height][width], in [0, 1]
  int source_bits = 8;        // bit depth per channel of the file it came from

  Image() = default;
  Image(int64_t channels, int64_t height, int64_t width, float fill = 0.0f);

  bool empty() const { return values.empty(); }
  int64_t plane_size() const { return height * width; }
  float& at(int64_t c, int64_t y, int64_t x) { return values[(c * height + y) * width + x]; }
  float at(int64_t c, int64_t y, int64_t x) const { return values[(c * height + y) * width + x]; }
  std::span<float> plane(int64_t c) { return {values.data() + c * plane_size(), static_cast<size_t>(plane_size())}; }
  std::span<const float> plane(int64_t c) const {
    return {values.data() + c * plane_size(), static_cast<size_t>(plane_size())};
  }
  std::string str() const;  // "RGB 224x224 (8-bit)"
};

// What a file holds, from its header alone (no pixel decoding).
struct ImageInfo {
  std::string format;  // "JPEG", "PNG", "BMP"
  int64_t width = 0, height = 0, channels = 0;
  int bits = 8;
};

// The whole file; errors name the file (cannot open, empty).
std::vector<uint8_t> read_file_bytes(const std::string& path);

// channels: 0 keeps what the file stores (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA); 1-4
// converts as stb_image does (luma for gray, opaque alpha added). Only JPEG, PNG and BMP
// are accepted; unreadable, empty, truncated, CMYK or otherwise undecodable files throw
// pneuma::Error naming `name` (the path) and the reason.
Image decode_image(std::span<const uint8_t> bytes, const std::string& name, int channels = 0);
Image read_image(const std::string& path, int channels = 0);
ImageInfo probe_image(std::span<const uint8_t> bytes, const std::string& name);
ImageInfo probe_image(const std::string& path);

// Encoders: 8-bit PNG and JPEG through stb_image_write; 16-bit PNG and 1-bit gray PNG
// (binary masks: values >= 0.5 are set) are framed here around stb_image_write's
// deflate, since it has no writer for them. Values are clamped to [0, 1] and rounded.
std::vector<uint8_t> encode_png(const Image& image, int bits = 8);
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 95);
// Writes to a temporary file and renames it, so readers never see half a file.
void write_file_bytes(const std::string& path, std::span<const uint8_t> bytes);
void write_png(const Image& image, const std::string& path, int bits = 8);
void write_jpeg(const Image& image, const std::string& path, int quality = 95);

// Auto: triangle (bilinear, antialiased) filter when enlarging, box (area) when
// shrinking. Bilinear is the triangle filter both ways, as PIL's BILINEAR.
enum class Interpolation { Auto, Bilinear, Area, Bicubic };

Image resize(const Image& image, int64_t height, int64_t width, Interpolation mode = Interpolation::Auto);
// Shorter side to `size`, aspect kept (torchvision Resize(int)).
Image resize_shorter(const Image& image, int64_t size, Interpolation mode = Interpolation::Auto);
// Fits the whole image into height x width with its aspect kept, centred, padded with fill.
Image resize_pad(const Image& image, int64_t height, int64_t width, float fill = 0.0f,
                 Interpolation mode = Interpolation::Auto);
// Region [top, top + height) x [left, left + width); parts outside the image are fill
// (torchvision's crop pads the same way).
Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width, float fill = 0.0f);
// torchvision CenterCrop: top = round((H - height) / 2), left likewise.
Image center_crop(const Image& image, int64_t height, int64_t width);
// 1 -> 3 replicates gray; 3 -> 1 is PIL's luma (0.299, 0.587, 0.114); an alpha channel
// (2 or 4 channels) is dropped; 1 or 3 -> 2 or 4 adds an opaque alpha.
Image to_channels(const Image& image, int64_t channels);

struct Normalization {
  std::vector<double> mean, std;  // one value, or one per channel
  static Normalization imagenet() { return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}}; }
  static Normalization none() { return {}; }
  bool enabled() const { return !mean.empty(); }
};

// float32 [C, H, W]. With channels > 0 the image is first converted (to_channels);
// with a normalization each channel c becomes (x - mean[c]) / std[c].
Tensor to_tensor(const Image& image, int64_t channels = 0, const Normalization& norm = Normalization::none());
// Same, written into `out`, a contiguous float32 [C, H, W] tensor or view (a batch slot).
void write_tensor(const Image& image, const Tensor& out, const Normalization& norm = Normalization::none());
// A float tensor [C, H, W] (or [H, W]) back to an image, values clamped to [0, 1].
Image from_tensor(const Tensor& chw);
// Per-channel (x - mean) / std on a float [C, H, W] or [N, C, H, W] tensor (new tensor).
Tensor normalize_image(const Tensor& images, const Normalization& norm = Normalization::imagenet());

}  // namespace pneuma::data
