#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "engine/data/image.h"
#include "engine/data/manifest.h"
#include "engine/data/rng.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using namespace pneuma::data;
using pneuma::testing::fixture;
using pneuma::testing::TempDir;
using pneuma::testing::write_bytes;

namespace {

// The decode error for `bytes`, or "" when it decodes.
std::string decode_error(const std::vector<uint8_t>& bytes, const std::string& name, int channels = 0) {
  try {
    (void)decode_image(bytes, name, channels);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string read_error(const std::string& path) {
  try {
    (void)read_image(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("image: real Kermany JPEGs decode as RGB and as gray") {
    PNEUMA_REQUIRE_KERMANY();
    const Manifest m = read_manifest(pneuma::testing::kermany_csv());
    for (int64_t i : {int64_t{0}, int64_t{1000}, m.size() - 1}) {
      const std::string& file = m.records[i].file;
      const ImageInfo info = probe_image(file);
      CHECK(info.format == "JPEG");
      CHECK(info.width == 224);
      CHECK(info.height == 224);
      const Image rgb = read_image(file);
      REQUIRE(rgb.channels == 3);
      CHECK(rgb.height == 224);
      CHECK(rgb.width == 224);
      CHECK(rgb.source_bits == 8);
      const Image gray = read_image(file, 1);
      REQUIRE(gray.channels == 1);
      double mean = 0, sq = 0, luma_diff = 0;
      for (int64_t p = 0; p < gray.plane_size(); ++p) {
        const double g = gray.values[p];
        CHECK_MESSAGE((g >= 0 && g <= 1), "pixel ", p, " = ", g);
        mean += g;
        sq += g * g;
        const double luma = 0.299 * rgb.values[p] + 0.587 * rgb.values[rgb.plane_size() + p] +
                            0.114 * rgb.values[2 * rgb.plane_size() + p];
        luma_diff = std::max(luma_diff, std::abs(luma - g));
      }
      mean /= gray.plane_size();
      const double sd = std::sqrt(sq / gray.plane_size() - mean * mean);
      MESSAGE(file, ": mean ", mean, " sd ", sd, " max |luma(rgb) - gray| ", luma_diff);
      CHECK(mean > 0.2);
      CHECK(mean < 0.8);
      CHECK(sd > 0.1);  // a radiograph, not a flat field
      // stb's gray is the JPEG's Y channel; luma of its RGB agrees to rounding
      CHECK(luma_diff < 3.0 / 255);
    }
  }

  TEST_CASE("image: PIL-written fixtures decode to known values (16-bit PNG / RGBA / gray+alpha / palette / BMP / progressive JPEG)") {
    const Image g16 = read_image(fixture("gray16.png"));
    REQUIRE(g16.channels == 1);
    CHECK(g16.source_bits == 16);
    CHECK(probe_image(fixture("gray16.png")).bits == 16);
    REQUIRE(g16.width == 7);
    REQUIRE(g16.height == 5);
    for (int64_t y = 0; y < 5; ++y)
      for (int64_t x = 0; x < 7; ++x) CHECK(g16.at(0, y, x) == doctest::Approx((9000.0 * x + 1100.0 * y + 7) / 65535).epsilon(1e-6));

    const Image rgba = read_image(fixture("rgba.png"));
    REQUIRE(rgba.channels == 4);
    REQUIRE(rgba.width == 5);
    REQUIRE(rgba.height == 4);
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 5; ++x) {
        CHECK(std::lround(rgba.at(0, y, x) * 255) == 40 * x);
        CHECK(std::lround(rgba.at(1, y, x) * 255) == 50 * y);
        CHECK(std::lround(rgba.at(2, y, x) * 255) == 10 * x + 20 * y);
        CHECK(std::lround(rgba.at(3, y, x) * 255) == 255 - 30 * x);
      }
    const Image rgb_of_rgba = read_image(fixture("rgba.png"), 3);  // stb drops alpha
    CHECK(rgb_of_rgba.channels == 3);
    CHECK(std::lround(rgb_of_rgba.at(0, 2, 3) * 255) == 120);

    const Image la = read_image(fixture("gray_alpha.png"));
    REQUIRE(la.channels == 2);
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 4; ++x) {
        CHECK(std::lround(la.at(0, y, x) * 255) == 60 * x + 10 * y);
        CHECK(std::lround(la.at(1, y, x) * 255) == 200 - 50 * y);
      }
    const Image la3 = to_channels(la, 3);  // gray replicated, alpha dropped
    CHECK(la3.channels == 3);
    CHECK(la3.at(2, 1, 2) == la.at(0, 1, 2));

    const Image bmp = read_image(fixture("rgb.bmp"));
    REQUIRE(bmp.channels == 3);
    REQUIRE(bmp.width == 5);
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 5; ++x) {
        CHECK(std::lround(bmp.at(0, y, x) * 255) == 50 * x);
        CHECK(std::lround(bmp.at(1, y, x) * 255) == 100 * y);
        CHECK(std::lround(bmp.at(2, y, x) * 255) == 255 - 40 * x);
      }

    const Image pal = read_image(fixture("palette.png"), 1);
    CHECK(pal.at(0, 0, 0) == 0.0f);
    CHECK(pal.at(0, 0, 1) == 1.0f);
    CHECK(pal.at(0, 1, 1) == 0.0f);

    const Image prog = read_image(fixture("progressive.jpg"));
    REQUIRE(prog.channels == 1);
    REQUIRE(prog.width == 32);
    for (int64_t x = 0; x < 32; x += 5) CHECK(std::abs(prog.at(0, 10, x) * 255 - 8 * x) < 6);
  }

  TEST_CASE("image: our PNG encoders round-trip (8-bit RGB / 16-bit gray / 1-bit mask) and JPEG stays close") {
    TempDir dir("png");
    Image img(3, 9, 11);
    for (size_t i = 0; i < img.values.size(); ++i) img.values[i] = static_cast<float>(random::uniform(5, i));
    write_png(img, dir / "rgb8.png");
    const Image back8 = read_image(dir / "rgb8.png");
    REQUIRE(back8.channels == 3);
    for (size_t i = 0; i < img.values.size(); ++i) CHECK(std::abs(back8.values[i] - img.values[i]) <= 0.5f / 255 + 1e-6f);

    Image gray(1, 13, 17);
    for (size_t i = 0; i < gray.values.size(); ++i) gray.values[i] = static_cast<float>(random::uniform(6, i));
    write_png(gray, dir / "gray16.png", 16);
    const Image back16 = read_image(dir / "gray16.png");
    CHECK(back16.source_bits == 16);
    for (size_t i = 0; i < gray.values.size(); ++i) CHECK(std::abs(back16.values[i] - gray.values[i]) <= 0.5f / 65535 + 1e-6f);
    Image rgba16 = to_channels(img, 4);
    write_png(rgba16, dir / "rgba16.png", 16);
    CHECK(read_image(dir / "rgba16.png").channels == 4);

    Image mask(1, 10, 21);
    for (int64_t x = 3; x < 15; ++x) mask.at(0, 4, x) = 1.0f;
    write_png(mask, dir / "mask1.png", 1);
    const Image back1 = read_image(dir / "mask1.png");
    CHECK(back1.values == mask.values);
    CHECK_THROWS_WITH_AS(write_png(img, dir / "bad.png", 1), doctest::Contains("1-bit PNG needs a gray image"), Error);

    write_jpeg(gray, dir / "gray.jpg", 95);
    const Image jpg = read_image(dir / "gray.jpg");
    CHECK(jpg.width == 17);
    double err = 0;
    for (size_t i = 0; i < gray.values.size(); ++i) err += std::abs(jpg.values[i] - gray.values[i]);
    CHECK(err / gray.values.size() < 0.15);  // white noise is JPEG's worst case; this only checks it is the image
  }

  TEST_CASE("image: broken files fail with a message naming the file and never crash") {
    PNEUMA_REQUIRE_KERMANY();
    TempDir dir("broken");
    const Manifest m = read_manifest(pneuma::testing::kermany_csv());
    const std::vector<uint8_t> jpeg = read_file_bytes(m.records[0].file);

    write_bytes(dir / "empty.jpeg", {});
    std::string e = read_error(dir / "empty.jpeg");
    CHECK(contains(e, dir / "empty.jpeg"));
    CHECK(contains(e, "empty (0 bytes)"));

    e = read_error(dir / "missing.jpeg");
    CHECK(contains(e, "cannot open '" + (dir / "missing.jpeg") + "': No such file or directory"));
    CHECK(contains(read_error(dir.str()), "is a directory"));

    for (size_t keep : {jpeg.size() / 2, jpeg.size() - 2, size_t{200}, size_t{4}}) {
      const std::vector<uint8_t> cut(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(keep));
      e = decode_error(cut, "cut.jpeg");
      CHECK_MESSAGE(contains(e, "image 'cut.jpeg': truncated JPEG"), "kept ", keep, " bytes: ", e);
    }
    // Scan data corrupted in the middle: stb_image's own checks must report it.
    std::vector<uint8_t> garbled = jpeg;
    for (size_t i = garbled.size() / 3; i < garbled.size() / 3 + 64; ++i) garbled[i] = 0xFF;
    e = decode_error(garbled, "garbled.jpeg");
    MESSAGE("garbled scan: ", (e.empty() ? std::string("decoded (stb_image tolerates it)") : e));

    std::vector<uint8_t> noise(3000);
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>(random::bits(9, i));
    e = decode_error(noise, "noise.bin");
    CHECK(contains(e, "image 'noise.bin': not a JPEG, PNG or BMP file (3000 bytes starting"));
    std::vector<uint8_t> fake_jpeg = noise;
    fake_jpeg[0] = 0xFF;
    fake_jpeg[1] = 0xD8;
    fake_jpeg[2] = 0xFF;
    e = decode_error(fake_jpeg, "fake.jpeg");
    CHECK(contains(e, "image 'fake.jpeg': "));
    CHECK(contains(e, "JPEG"));
    std::vector<uint8_t> fake_png = noise;
    const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    std::copy(sig, sig + 8, fake_png.begin());
    CHECK(contains(decode_error(fake_png, "fake.png"), "image 'fake.png': "));

    const std::vector<uint8_t> cmyk = read_file_bytes(fixture("cmyk.jpg"));
    e = decode_error(cmyk, "cmyk.jpg");
    CHECK(contains(e, "image 'cmyk.jpg': CMYK/YCCK JPEG (4 color components) is not supported"));
    CHECK(contains(read_error(fixture("cmyk.jpg")), fixture("cmyk.jpg")));
    CHECK_THROWS_AS((void)probe_image(fixture("cmyk.jpg")), Error);

    const std::vector<uint8_t> png = read_file_bytes(fixture("rgba.png"));
    e = decode_error({png.begin(), png.end() - 20}, "cut.png");
    CHECK(contains(e, "image 'cut.png': truncated PNG"));
    std::vector<uint8_t> bad_crc_png = png;  // IDAT payload corrupted, chunk structure intact
    bad_crc_png[45] ^= 0x5A;
    e = decode_error(bad_crc_png, "zlib.png");
    MESSAGE("corrupt IDAT: ", (e.empty() ? std::string("decoded") : e));

    const std::vector<uint8_t> bmp = read_file_bytes(fixture("rgb.bmp"));
    e = decode_error({bmp.begin(), bmp.end() - 10}, "cut.bmp");
    CHECK(contains(e, "image 'cut.bmp': truncated BMP"));
    CHECK(contains(decode_error({bmp.begin(), bmp.begin() + 20}, "tiny.bmp"), "truncated BMP"));
  }

  TEST_CASE("image: resize / pad / crop / channels / tensor / normalization") {
    Image ramp(1, 8, 16);
    for (int64_t y = 0; y < 8; ++y)
      for (int64_t x = 0; x < 16; ++x) ramp.at(0, y, x) = static_cast<float>(x) / 15.0f;
    const Image half = resize(ramp, 4, 8);  // area: averages of pixel pairs
    CHECK(half.height == 4);
    CHECK(half.width == 8);
    CHECK(half.at(0, 2, 3) == doctest::Approx((6.0 + 7.0) / 2 / 15).epsilon(1e-5));
    const Image up = resize(ramp, 16, 32, Interpolation::Bilinear);
    CHECK(up.at(0, 5, 10) == doctest::Approx((10 / 2.0 - 0.25) / 15).epsilon(1e-4));
    CHECK(resize(ramp, 8, 16).values == ramp.values);
    const Image shorter = resize_shorter(ramp, 4);
    CHECK(shorter.height == 4);
    CHECK(shorter.width == 8);
    CHECK_THROWS_WITH_AS(resize(ramp, 0, 3), "resize: output size must be positive, got 0x3", Error);

    const Image padded = resize_pad(ramp, 16, 16, 0.5f);  // 8x16 -> 8x16 centred in 16x16
    CHECK(padded.at(0, 0, 5) == 0.5f);
    CHECK(padded.at(0, 15, 5) == 0.5f);
    CHECK(padded.at(0, 4, 0) == doctest::Approx(0.0f));
    CHECK(padded.at(0, 8, 15) == doctest::Approx(1.0f));

    const Image c = crop(ramp, -1, 14, 3, 4, 0.25f);
    CHECK(c.at(0, 0, 0) == 0.25f);           // above the image
    CHECK(c.at(0, 1, 0) == ramp.at(0, 0, 14));
    CHECK(c.at(0, 1, 2) == 0.25f);           // right of the image
    const Image cc = center_crop(ramp, 4, 4);
    CHECK(cc.at(0, 0, 0) == ramp.at(0, 2, 6));

    Image rgb(3, 2, 2);
    rgb.values = {1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    const Image gray = to_channels(rgb, 1);
    CHECK(gray.at(0, 1, 1) == doctest::Approx(0.299f));
    CHECK(to_channels(gray, 3).channels == 3);
    CHECK(to_channels(gray, 4).at(3, 0, 0) == 1.0f);

    const Tensor t = to_tensor(ramp, 3, Normalization::imagenet());
    REQUIRE(t.shape() == Shape{3, 8, 16});
    CHECK(t.dtype() == DType::Float32);
    const std::vector<double> v = t.to_vector();
    CHECK(v[0] == doctest::Approx((0.0 - 0.485) / 0.229));
    CHECK(v[2 * 128 + 15] == doctest::Approx((1.0 - 0.406) / 0.225));
    const Tensor plain = to_tensor(ramp);
    CHECK(plain.shape() == Shape{1, 8, 16});
    const std::vector<double> renorm = normalize_image(to_tensor(ramp, 3).unsqueeze(0)).to_vector();
    REQUIRE(renorm.size() == v.size());
    for (size_t i = 0; i < v.size(); ++i) CHECK(renorm[i] == doctest::Approx(v[i]).epsilon(1e-6));
    CHECK(from_tensor(plain).values == ramp.values);
    CHECK_THROWS_WITH_AS(to_tensor(ramp, 0, Normalization{{0.5, 0.5}, {1.0}}),
                         "normalize: mean has 2 values for 1 channels", Error);
  }
}
