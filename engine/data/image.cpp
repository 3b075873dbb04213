#include "engine/data/image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "engine/core/error.h"

// Exported by Debian's libstb (stb_image_write's deflate) but declared only inside the
// implementation section of the header; used for 16-bit PNG, which stb cannot write.
extern "C" unsigned char* stbi_zlib_compress(unsigned char* data, int data_len, int* out_len, int quality);

namespace pneuma::data {

namespace {

enum class Format { Jpeg, Png, Bmp, Unknown };

Format sniff(std::span<const uint8_t> b) {
  static constexpr uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format::Jpeg;
  if (b.size() >= 8 && std::memcmp(b.data(), png, 8) == 0) return Format::Png;
  if (b.size() >= 2 && b[0] == 'B' && b[1] == 'M') return Format::Bmp;
  return Format::Unknown;
}

const char* format_name(Format f) {
  switch (f) {
    case Format::Jpeg: return "JPEG";
    case Format::Png: return "PNG";
    case Format::Bmp: return "BMP";
    case Format::Unknown: break;
  }
  return "unknown";
}

std::string hex_prefix(std::span<const uint8_t> b) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < std::min<size_t>(b.size(), 8); ++i) {
    std::snprintf(buf, sizeof buf, i ? " %02x" : "%02x", b[i]);
    out += buf;
  }
  return out;
}

uint32_t le32(std::span<const uint8_t> b, size_t at) {
  return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 | uint32_t(b[at + 3]) << 24;
}

// stb_image decodes a JPEG whose scan data was cut short without complaint (it pads
// with zeros), and it turns CMYK into RGB by guesswork; both are caught here from the
// marker structure before any pixel is decoded.
void check_jpeg(std::span<const uint8_t> b, const std::string& name) {
  const size_t n = b.size();
  size_t i = 2;
  size_t scan_start = 0;
  int components = 0;
  bool frame = false;
  for (;;) {
    if (i >= n) PNEUMA_FAIL("image '", name, "': truncated JPEG (file ends before the image data)");
    if (b[i] != 0xFF) PNEUMA_FAIL("image '", name, "': corrupt JPEG (no marker at byte ", i, ")");
    while (i < n && b[i] == 0xFF) ++i;
    if (i >= n) PNEUMA_FAIL("image '", name, "': truncated JPEG (file ends before the image data)");
    const uint8_t marker = b[i++];
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == 0xD9) PNEUMA_FAIL("image '", name, "': corrupt JPEG (end-of-image marker before any image data)");
    if (i + 2 > n) PNEUMA_FAIL("image '", name, "': truncated JPEG (file ends inside a header)");
    const size_t length = size_t(b[i]) << 8 | b[i + 1];
    if (length < 2) PNEUMA_FAIL("image '", name, "': corrupt JPEG (segment length ", length, " at byte ", i, ")");
    if (i + length > n) PNEUMA_FAIL("image '", name, "': truncated JPEG (file ends inside a header)");
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof && length >= 8) {
      frame = true;
      components = b[i + 7];
    }
    if (marker == 0xDA) {
      scan_start = i + length;
      break;
    }
    i += length;
  }
  if (!frame) PNEUMA_FAIL("image '", name, "': corrupt JPEG (no frame header before the image data)");
  if (components == 4)
    PNEUMA_FAIL("image '", name,
                "': CMYK/YCCK JPEG (4 color components) is not supported; convert it to grayscale or RGB");
  if (components != 1 && components != 3)
    PNEUMA_FAIL("image '", name, "': JPEG with ", components, " color components is not supported");
  for (size_t j = n - 1; j > scan_start; --j)
    if (b[j] == 0xD9 && b[j - 1] == 0xFF) return;
  PNEUMA_FAIL("image '", name, "': truncated JPEG (no end-of-image marker after the image data)");
}

void check_png(std::span<const uint8_t> b, const std::string& name) {
  static constexpr char iend[4] = {'I', 'E', 'N', 'D'};
  const size_t tail = std::min<size_t>(b.size(), 64);
  const auto* end = b.data() + b.size();
  if (std::search(end - tail, end, iend, iend + 4) == end)
    PNEUMA_FAIL("image '", name, "': truncated PNG (no IEND chunk at the end of the file)");
}

// stb_image reads zeros past the end of a short BMP; the header says how long it must be.
void check_bmp(std::span<const uint8_t> b, const std::string& name) {
  if (b.size() < 34) PNEUMA_FAIL("image '", name, "': truncated BMP (", b.size(), " bytes, header is longer)");
  const uint32_t offset = le32(b, 10), header = le32(b, 14);
  if (header < 40) return;  // OS/2 headers: left to stb_image
  const int64_t width = static_cast<int32_t>(le32(b, 18));
  const int64_t height = std::abs(static_cast<int64_t>(static_cast<int32_t>(le32(b, 22))));
  const int64_t bpp = b[28] | b[29] << 8;
  const uint32_t compression = le32(b, 30);
  if (compression != 0 && compression != 3) return;  // RLE sizes are not known upfront
  const int64_t stride = (width * bpp + 31) / 32 * 4;
  const int64_t needed = int64_t(offset) + stride * height;
  if (width > 0 && static_cast<int64_t>(b.size()) < needed)
    PNEUMA_FAIL("image '", name, "': truncated BMP (", b.size(), " bytes, ", needed, " expected)");
}

Format check_structure(std::span<const uint8_t> bytes, const std::string& name) {
  PNEUMA_CHECK(!bytes.empty(), "image '", name, "': file is empty (0 bytes)");
  PNEUMA_CHECK(bytes.size() <= static_cast<size_t>(std::numeric_limits<int>::max()), "image '", name,
               "': file too large (", bytes.size(), " bytes)");
  const Format format = sniff(bytes);
  switch (format) {
    case Format::Jpeg: check_jpeg(bytes, name); break;
    case Format::Png: check_png(bytes, name); break;
    case Format::Bmp: check_bmp(bytes, name); break;
    case Format::Unknown:
      PNEUMA_FAIL("image '", name, "': not a JPEG, PNG or BMP file (", bytes.size(), " bytes starting ",
                  hex_prefix(bytes), ")");
  }
  return format;
}

template <class T>
struct StbFree {
  void operator()(T* p) const { stbi_image_free(p); }
};

const char* channel_name(int64_t c) {
  switch (c) {
    case 1: return "gray";
    case 2: return "gray+alpha";
    case 3: return "RGB";
    case 4: return "RGBA";
  }
  return "?";
}

// Interleaved samples -> planar float in [0, 1].
template <class T>
void deinterleave(const T* src, Image& image, float scale) {
  const int64_t plane = image.plane_size(), c_count = image.channels;
  if (c_count == 1) {
    for (int64_t i = 0; i < plane; ++i) image.values[i] = static_cast<float>(src[i]) * scale;
    return;
  }
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < c_count; ++c) image.values[c * plane + i] = static_cast<float>(src[i * c_count + c]) * scale;
}

template <class T>
std::vector<T> interleave(const Image& image, double max_value) {
  const int64_t plane = image.plane_size(), c_count = image.channels;
  std::vector<T> out(static_cast<size_t>(plane * c_count));
  const float scale = static_cast<float>(max_value);
  for (int64_t c = 0; c < c_count; ++c)
    for (int64_t i = 0; i < plane; ++i) {
      const float v = std::clamp(image.values[c * plane + i], 0.0f, 1.0f);
      out[i * c_count + c] = static_cast<T>(v * scale + 0.5f);  // round half up; v >= 0
    }
  return out;
}

void check_encodable(const Image& image, const char* what) {
  PNEUMA_CHECK(!image.empty() && image.channels >= 1 && image.channels <= 4, what, ": cannot encode image ",
               image.str());
}

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void put_chunk(std::vector<uint8_t>& out, const char type[4], const uint8_t* data, size_t n) {
  put_be32(out, static_cast<uint32_t>(n));
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data, data + n);
  put_be32(out, crc32(out.data() + start, n + 4));
}

// PNG container around rows already in PNG sample layout (filter byte "none" added
// here), compressed with stb_image_write's deflate. Used where stb_image_write has no
// writer: 16-bit samples and 1-bit masks.
std::vector<uint8_t> encode_png_rows(const Image& image, int bits, const std::vector<uint8_t>& packed) {
  const int64_t h = image.height;
  const size_t row_bytes = packed.size() / static_cast<size_t>(h);
  std::vector<uint8_t> raw;
  raw.reserve(packed.size() + static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), packed.begin() + static_cast<std::ptrdiff_t>(y * row_bytes),
               packed.begin() + static_cast<std::ptrdiff_t>((y + 1) * row_bytes));
  }
  int zlen = 0;
  std::unique_ptr<unsigned char, decltype(&std::free)> z(
      stbi_zlib_compress(raw.data(), static_cast<int>(raw.size()), &zlen, 8), &std::free);
  PNEUMA_CHECK(z != nullptr, "encode_png: compression failed");
  static constexpr uint8_t color_type[5] = {0, 0, 4, 2, 6};  // by channel count
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, static_cast<uint32_t>(image.width));
  put_be32(ihdr, static_cast<uint32_t>(h));
  ihdr.insert(ihdr.end(), {static_cast<uint8_t>(bits), color_type[image.channels], 0, 0, 0});
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
  put_chunk(out, "IDAT", z.get(), static_cast<size_t>(zlen));
  put_chunk(out, "IEND", nullptr, 0);
  return out;
}

std::vector<uint8_t> encode_png16(const Image& image) {
  const std::vector<uint16_t> samples = interleave<uint16_t>(image, 65535.0);
  std::vector<uint8_t> packed;
  packed.reserve(samples.size() * 2);
  for (uint16_t v : samples) {
    packed.push_back(static_cast<uint8_t>(v >> 8));
    packed.push_back(static_cast<uint8_t>(v & 0xFF));
  }
  return encode_png_rows(image, 16, packed);
}

// 1-bit gray: 8x less data to deflate than 8-bit, which matters for one mask per image.
std::vector<uint8_t> encode_png1(const Image& image) {
  PNEUMA_CHECK(image.channels == 1, "encode_png: 1-bit PNG needs a gray image, got ", image.str());
  const int64_t w = image.width, row_bytes = (w + 7) / 8;
  std::vector<uint8_t> packed(static_cast<size_t>(row_bytes * image.height), 0);
  for (int64_t y = 0; y < image.height; ++y)
    for (int64_t x = 0; x < w; ++x)
      if (image.values[y * w + x] >= 0.5f) packed[y * row_bytes + x / 8] |= static_cast<uint8_t>(0x80 >> (x % 8));
  return encode_png_rows(image, 1, packed);
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* bytes = static_cast<const uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

stbir_filter filter_for(Interpolation mode, int64_t from, int64_t to) {
  switch (mode) {
    case Interpolation::Bilinear: return STBIR_FILTER_TRIANGLE;
    case Interpolation::Area: return STBIR_FILTER_BOX;
    case Interpolation::Bicubic: return STBIR_FILTER_CATMULLROM;
    case Interpolation::Auto: break;
  }
  return to < from ? STBIR_FILTER_BOX : STBIR_FILTER_TRIANGLE;
}

}  // namespace

Image::Image(int64_t channels_, int64_t height_, int64_t width_, float fill)
    : channels(channels_), height(height_), width(width_) {
  PNEUMA_CHECK(channels_ >= 1 && height_ >= 1 && width_ >= 1, "Image: invalid size ", channels_, "x", height_, "x",
               width_);
  values.assign(static_cast<size_t>(channels_ * height_ * width_), fill);
}

std::string Image::str() const {
  if (empty()) return "empty image";
  return detail::concat(channels >= 1 && channels <= 4 ? channel_name(channels) : "multi-channel", " ", width, "x",
                        height, " (", source_bits, "-bit)");
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  PNEUMA_CHECK(!std::filesystem::is_directory(path, ec), "cannot read '", path, "': it is a directory");
  std::unique_ptr<FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) PNEUMA_FAIL("cannot open '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) bytes.insert(bytes.end(), buffer, buffer + got);
  if (std::ferror(file.get())) PNEUMA_FAIL("cannot read '", path, "': ", std::strerror(errno));
  return bytes;
}

void write_file_bytes(const std::string& path, std::span<const uint8_t> bytes) {
  const std::string temporary = path + ".tmp";
  {
    std::unique_ptr<FILE, decltype(&std::fclose)> file(std::fopen(temporary.c_str(), "wb"), &std::fclose);
    if (!file) PNEUMA_FAIL("cannot write '", temporary, "': ", std::strerror(errno));
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size())
      PNEUMA_FAIL("cannot write '", temporary, "': ", std::strerror(errno));
    if (std::fflush(file.get()) != 0) PNEUMA_FAIL("cannot write '", temporary, "': ", std::strerror(errno));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    PNEUMA_FAIL("cannot rename '", temporary, "' to '", path, "': ", std::strerror(errno));
}

ImageInfo probe_image(std::span<const uint8_t> bytes, const std::string& name) {
  const Format format = check_structure(bytes, name);
  ImageInfo info;
  info.format = format_name(format);
  int w = 0, h = 0, c = 0;
  const int len = static_cast<int>(bytes.size());
  if (!stbi_info_from_memory(bytes.data(), len, &w, &h, &c))
    PNEUMA_FAIL("image '", name, "': cannot read the ", info.format, " header (stb_image: ", stbi_failure_reason(),
                ")");
  info.width = w;
  info.height = h;
  info.channels = c;
  info.bits = stbi_is_16_bit_from_memory(bytes.data(), len) ? 16 : 8;
  return info;
}

ImageInfo probe_image(const std::string& path) { return probe_image(read_file_bytes(path), path); }

Image decode_image(std::span<const uint8_t> bytes, const std::string& name, int channels) {
  PNEUMA_CHECK(channels >= 0 && channels <= 4, "decode_image: channels must be 0 (as stored) or 1-4, got ", channels);
  const Format format = check_structure(bytes, name);
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, stored = 0;
  Image image;
  auto fail = [&]() {
    PNEUMA_FAIL("image '", name, "': cannot decode ", format_name(format), " (stb_image: ", stbi_failure_reason(), ")");
  };
  if (stbi_is_16_bit_from_memory(bytes.data(), len)) {
    std::unique_ptr<stbi_us, StbFree<stbi_us>> pixels(
        stbi_load_16_from_memory(bytes.data(), len, &w, &h, &stored, channels));
    if (!pixels) fail();
    image = Image(channels ? channels : stored, h, w);
    image.source_bits = 16;
    deinterleave(pixels.get(), image, 1.0f / 65535.0f);
  } else {
    std::unique_ptr<stbi_uc, StbFree<stbi_uc>> pixels(stbi_load_from_memory(bytes.data(), len, &w, &h, &stored, channels));
    if (!pixels) fail();
    image = Image(channels ? channels : stored, h, w);
    deinterleave(pixels.get(), image, 1.0f / 255.0f);
  }
  return image;
}

Image read_image(const std::string& path, int channels) { return decode_image(read_file_bytes(path), path, channels); }

std::vector<uint8_t> encode_png(const Image& image, int bits) {
  check_encodable(image, "encode_png");
  PNEUMA_CHECK(bits == 1 || bits == 8 || bits == 16, "encode_png: bits must be 1, 8 or 16, got ", bits);
  if (bits == 16) return encode_png16(image);
  if (bits == 1) return encode_png1(image);
  const std::vector<uint8_t> samples = interleave<uint8_t>(image, 255.0);
  std::vector<uint8_t> out;
  const int c = static_cast<int>(image.channels), w = static_cast<int>(image.width);
  if (!stbi_write_png_to_func(append_bytes, &out, w, static_cast<int>(image.height), c, samples.data(), w * c))
    PNEUMA_FAIL("encode_png: stb_image_write failed for ", image.str());
  return out;
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  check_encodable(image, "encode_jpeg");
  PNEUMA_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be in [1, 100], got ", quality);
  const std::vector<uint8_t> samples = interleave<uint8_t>(image, 255.0);
  std::vector<uint8_t> out;
  out.reserve(static_cast<size_t>(image.plane_size()));
  if (!stbi_write_jpg_to_func(append_bytes, &out, static_cast<int>(image.width), static_cast<int>(image.height),
                              static_cast<int>(image.channels), samples.data(), quality))
    PNEUMA_FAIL("encode_jpeg: stb_image_write failed for ", image.str());
  return out;
}

void write_png(const Image& image, const std::string& path, int bits) { write_file_bytes(path, encode_png(image, bits)); }

void write_jpeg(const Image& image, const std::string& path, int quality) {
  write_file_bytes(path, encode_jpeg(image, quality));
}

Image resize(const Image& image, int64_t height, int64_t width, Interpolation mode) {
  PNEUMA_CHECK(!image.empty(), "resize: empty image");
  PNEUMA_CHECK(height >= 1 && width >= 1, "resize: output size must be positive, got ", height, "x", width);
  if (height == image.height && width == image.width) return image;
  Image out(image.channels, height, width);
  out.source_bits = image.source_bits;
  for (int64_t c = 0; c < image.channels; ++c) {
    const int ok = stbir_resize(image.plane(c).data(), static_cast<int>(image.width), static_cast<int>(image.height),
                                static_cast<int>(image.width * sizeof(float)), out.plane(c).data(),
                                static_cast<int>(width), static_cast<int>(height),
                                static_cast<int>(width * sizeof(float)), STBIR_TYPE_FLOAT, 1,
                                STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                                filter_for(mode, image.width, width),
                                filter_for(mode, image.height, height),
                                STBIR_COLORSPACE_LINEAR, nullptr);
    PNEUMA_CHECK(ok, "resize: stb_image_resize failed for ", image.str(), " -> ", width, "x", height);
  }
  // Cubic filters overshoot; values stay in [0, 1] for every later step.
  if (mode == Interpolation::Bicubic)
    for (float& v : out.values) v = std::clamp(v, 0.0f, 1.0f);
  return out;
}

Image resize_shorter(const Image& image, int64_t size, Interpolation mode) {
  PNEUMA_CHECK(size >= 1, "resize_shorter: size must be positive, got ", size);
  PNEUMA_CHECK(!image.empty(), "resize_shorter: empty image");
  // torchvision: the longer side is int(size * long / short), truncated.
  if (image.height <= image.width)
    return resize(image, size, std::max<int64_t>(1, size * image.width / image.height), mode);
  return resize(image, std::max<int64_t>(1, size * image.height / image.width), size, mode);
}

Image resize_pad(const Image& image, int64_t height, int64_t width, float fill, Interpolation mode) {
  PNEUMA_CHECK(!image.empty(), "resize_pad: empty image");
  PNEUMA_CHECK(height >= 1 && width >= 1, "resize_pad: output size must be positive, got ", height, "x", width);
  const double scale = std::min(static_cast<double>(height) / image.height, static_cast<double>(width) / image.width);
  const int64_t h = std::clamp<int64_t>(std::llround(image.height * scale), 1, height);
  const int64_t w = std::clamp<int64_t>(std::llround(image.width * scale), 1, width);
  const Image scaled = resize(image, h, w, mode);
  return crop(scaled, -(height - h) / 2, -(width - w) / 2, height, width, fill);
}

Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width, float fill) {
  PNEUMA_CHECK(!image.empty(), "crop: empty image");
  PNEUMA_CHECK(height >= 1 && width >= 1, "crop: size must be positive, got ", height, "x", width);
  Image out(image.channels, height, width, fill);
  out.source_bits = image.source_bits;
  const int64_t y0 = std::max<int64_t>(0, -top), y1 = std::min(height, image.height - top);
  const int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min(width, image.width - left);
  if (y0 >= y1 || x0 >= x1) return out;
  for (int64_t c = 0; c < image.channels; ++c)
    for (int64_t y = y0; y < y1; ++y)
      std::copy_n(image.values.begin() + ((c * image.height + y + top) * image.width + x0 + left), x1 - x0,
                  out.values.begin() + ((c * height + y) * width + x0));
  return out;
}

Image center_crop(const Image& image, int64_t height, int64_t width) {
  PNEUMA_CHECK(!image.empty(), "center_crop: empty image");
  const int64_t top = std::llround((image.height - height) / 2.0);
  const int64_t left = std::llround((image.width - width) / 2.0);
  return crop(image, top, left, height, width);
}

Image to_channels(const Image& image, int64_t channels) {
  PNEUMA_CHECK(!image.empty(), "to_channels: empty image");
  PNEUMA_CHECK(channels >= 1 && channels <= 4, "to_channels: channels must be 1-4, got ", channels);
  PNEUMA_CHECK(image.channels >= 1 && image.channels <= 4, "to_channels: cannot convert ", image.str());
  if (channels == image.channels) return image;
  const int64_t plane = image.plane_size();
  const bool src_color = image.channels >= 3;
  Image out(channels, image.height, image.width);
  out.source_bits = image.source_bits;
  const bool dst_color = channels >= 3;
  for (int64_t i = 0; i < plane; ++i) {
    if (dst_color == src_color) {
      for (int64_t c = 0; c < (dst_color ? 3 : 1); ++c) out.values[c * plane + i] = image.values[c * plane + i];
    } else if (dst_color) {
      const float g = image.values[i];
      for (int64_t c = 0; c < 3; ++c) out.values[c * plane + i] = g;
    } else {
      out.values[i] = 0.299f * image.values[i] + 0.587f * image.values[plane + i] + 0.114f * image.values[2 * plane + i];
    }
  }
  const int64_t alpha_out = channels == 2 ? 1 : channels == 4 ? 3 : -1;
  const int64_t alpha_in = image.channels == 2 ? 1 : image.channels == 4 ? 3 : -1;
  if (alpha_out >= 0) {
    auto dst = out.plane(alpha_out);
    if (alpha_in >= 0) {
      auto src = image.plane(alpha_in);
      std::copy(src.begin(), src.end(), dst.begin());
    } else {
      std::fill(dst.begin(), dst.end(), 1.0f);
    }
  }
  return out;
}

namespace {

std::vector<float> channel_values(const std::vector<double>& v, int64_t channels, const char* what) {
  PNEUMA_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == channels, "normalize: ", what, " has ", v.size(),
               " values for ", channels, " channels");
  std::vector<float> out(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) out[c] = static_cast<float>(v.size() == 1 ? v[0] : v[c]);
  return out;
}

}  // namespace

void write_tensor(const Image& image, const Tensor& out, const Normalization& norm) {
  PNEUMA_CHECK(out.dtype() == DType::Float32 && out.device().is_cpu() && out.is_contiguous() && out.dim() == 3,
               "write_tensor: expected a contiguous float32 [C, H, W] tensor on cpu, got ", out.str());
  PNEUMA_CHECK(out.size(0) == image.channels && out.size(1) == image.height && out.size(2) == image.width,
               "write_tensor: image ", image.str(), " with ", image.channels, " channels does not fit ", out.str());
  float* dst = out.data<float>();
  const int64_t plane = image.plane_size();
  if (!norm.enabled()) {
    std::copy(image.values.begin(), image.values.end(), dst);
    return;
  }
  const std::vector<float> mean = channel_values(norm.mean, image.channels, "mean");
  const std::vector<float> std_ = channel_values(norm.std, image.channels, "std");
  for (int64_t c = 0; c < image.channels; ++c) {
    PNEUMA_CHECK(std_[c] != 0.0f, "normalize: std of channel ", c, " is zero");
    const float m = mean[c], inv = 1.0f / std_[c];
    for (int64_t i = 0; i < plane; ++i) dst[c * plane + i] = (image.values[c * plane + i] - m) * inv;
  }
}

Tensor to_tensor(const Image& image, int64_t channels, const Normalization& norm) {
  PNEUMA_CHECK(!image.empty(), "to_tensor: empty image");
  if (channels > 0 && channels != image.channels) return to_tensor(to_channels(image, channels), 0, norm);
  Tensor out = Tensor::empty({image.channels, image.height, image.width});
  write_tensor(image, out, norm);
  return out;
}

Image from_tensor(const Tensor& chw) {
  PNEUMA_CHECK(chw.dim() == 2 || chw.dim() == 3, "from_tensor: expected [C, H, W] or [H, W], got ", chw.str());
  PNEUMA_CHECK(chw.device().is_cpu(), "from_tensor: tensor must be on cpu, got ", chw.str());
  const Tensor t = (chw.dim() == 2 ? chw.unsqueeze(0) : chw).to(DType::Float32).contiguous();
  Image image(t.size(0), t.size(1), t.size(2));
  const float* src = t.data<float>();
  for (size_t i = 0; i < image.values.size(); ++i) image.values[i] = std::clamp(src[i], 0.0f, 1.0f);
  return image;
}

Tensor normalize_image(const Tensor& images, const Normalization& norm) {
  PNEUMA_CHECK(images.dim() == 3 || images.dim() == 4, "normalize_image: expected [C, H, W] or [N, C, H, W], got ",
               images.str());
  PNEUMA_CHECK(images.device().is_cpu(), "normalize_image: tensor must be on cpu, got ", images.str());
  const int64_t channels = images.size(images.dim() - 3);
  const int64_t plane = images.size(images.dim() - 2) * images.size(images.dim() - 1);
  const int64_t count = images.numel() / std::max<int64_t>(1, channels * plane);
  if (!norm.enabled()) return images.clone();
  const std::vector<float> mean = channel_values(norm.mean, channels, "mean");
  const std::vector<float> std_ = channel_values(norm.std, channels, "std");
  const Tensor src = images.contiguous();
  Tensor out = Tensor::empty(images.shape(), images.dtype());
  dispatch_floating(images.dtype(), "normalize_image", [&]<class T>() {
    const T* s = src.data<T>();
    T* d = out.data<T>();
    for (int64_t n = 0; n < count; ++n)
      for (int64_t c = 0; c < channels; ++c) {
        PNEUMA_CHECK(std_[c] != 0.0f, "normalize_image: std of channel ", c, " is zero");
        const int64_t base = (n * channels + c) * plane;
        for (int64_t i = 0; i < plane; ++i) d[base + i] = (s[base + i] - static_cast<T>(mean[c])) / static_cast<T>(std_[c]);
      }
  });
  return out;
}

}  // namespace pneuma::data
