#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/data/lung_crop.h"
#include "engine/data/manifest.h"
#include "engine/data/synth/synth.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using namespace pneuma::data;
using pneuma::testing::binary;
using pneuma::testing::run_command;
using pneuma::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// Mean of the image over mask == value.
double masked_mean(const Image& image, const Image& mask, float value) {
  double s = 0;
  int64_t n = 0;
  for (size_t i = 0; i < image.values.size(); ++i)
    if (mask.values[i] == value) {
      s += image.values[i];
      ++n;
    }
  return n ? s / static_cast<double>(n) : 0.0;
}

// The mask grown by `r` pixels (square neighbourhood).
Image dilate(const Image& mask, int64_t r) {
  Image out = mask;
  for (int64_t y = 0; y < mask.height; ++y)
    for (int64_t x = 0; x < mask.width; ++x) {
      if (mask.at(0, y, x) == 0.0f) continue;
      for (int64_t dy = -r; dy <= r; ++dy)
        for (int64_t dx = -r; dx <= r; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy >= 0 && yy < mask.height && xx >= 0 && xx < mask.width) out.at(0, yy, xx) = 1.0f;
        }
    }
  return out;
}

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("synth: deterministic with two lung fields as mask and opacity only inside the lungs") {
    synth::PlanOptions po;
    po.n = 24;
    po.seed = 4;
    const std::vector<synth::PlannedImage> plan = synth::plan(po);
    REQUIRE(plan.size() == 24);
    CHECK(plan[5].stem == synth::plan(po)[5].stem);
    int64_t pediatric = 0;
    for (const auto& p : plan) pediatric += p.c.domain == synth::Domain::Pediatric;
    CHECK(pediatric >= 8);
    CHECK(pediatric <= 16);

    for (synth::Domain domain : {synth::Domain::Pediatric, synth::Domain::Adult}) {
      for (uint64_t seed : {1u, 2u, 3u}) {
        synth::Case c{domain, synth::Finding::Normal, 100 + seed, 200 + seed};
        const synth::Rendered a = synth::render(c, 128), b = synth::render(c, 128);
        CHECK(a.image.values == b.image.values);
        CHECK(a.mask.values == b.mask.values);
        c.image_seed += 1000;
        CHECK(synth::render(c, 128).image.values != a.image.values);
        c.image_seed -= 1000;

        const std::vector<Component> parts = connected_components(a.mask);
        REQUIRE(parts.size() >= 2);
        CHECK(parts[1].pixels > parts[0].pixels / 3);  // two lungs of similar size
        if (parts.size() > 2) CHECK(parts[2].pixels < parts[1].pixels / 20);
        const double area = static_cast<double>(parts[0].pixels + parts[1].pixels) / (128 * 128);
        CHECK(area > 0.12);
        CHECK(area < 0.5);
        // air-filled lungs are darker than the rest of the body
        CHECK(masked_mean(a.image, a.mask, 1.0f) + 0.1 < masked_mean(a.image, dilate(a.mask, 2), 0.0f) + 0.3);
        const Box box = lung_box(a.mask);
        CHECK(box.left < parts[0].box.left + 1);
        CHECK(box.width > 128 / 2);

        // The same image with pneumonia differs only in and at the edge of the lungs, and is brighter there.
        for (synth::Finding f : {synth::Finding::Bacterial, synth::Finding::Viral}) {
          c.finding = f;
          const synth::Rendered p = synth::render(c, 128);
          CHECK(p.mask.values == a.mask.values);
          const Image near_lung = dilate(a.mask, 3);
          int64_t outside_changes = 0;
          double inside_delta = 0;
          for (size_t i = 0; i < p.image.values.size(); ++i) {
            if (near_lung.values[i] == 0.0f) outside_changes += p.image.values[i] != a.image.values[i];
            if (a.mask.values[i] == 1.0f) inside_delta += p.image.values[i] - a.image.values[i];
          }
          CHECK(outside_changes == 0);
          CHECK(inside_delta > 0);
          c.finding = synth::Finding::Normal;
        }
      }
    }
    // domains differ: adult chests are taller in the frame
    const synth::Rendered ped = synth::render({synth::Domain::Pediatric, synth::Finding::Normal, 7, 8}, 128);
    const synth::Rendered adult = synth::render({synth::Domain::Adult, synth::Finding::Normal, 7, 8}, 128);
    CHECK(lung_box(adult.mask).height > lung_box(ped.mask).height);
    CHECK_THROWS_WITH_AS(synth::parse_domain("elderly"), "synth: unknown domain 'elderly' (expected pediatric or adult)", Error);
  }

  TEST_CASE("synth tool: Kermany layout with manifest and masks and the same bytes for the same seed and exit 1 on bad arguments") {
    TempDir a("synth-a"), b("synth-b");
    std::string out;
    REQUIRE(run_command(binary("pneuma-synth") + " --out " + a.str() + " --n 14 --seed 3 --size 64", &out) == 0);
    const nlohmann::json line = nlohmann::json::parse(out);
    CHECK(line.at("images") == 14);
    CHECK(line.at("normal").get<int64_t>() + line.at("bacterial").get<int64_t>() + line.at("viral").get<int64_t>() == 14);
    REQUIRE(run_command(binary("pneuma-synth") + " --out " + b.str() + " --n 14 --seed 3 --size 64 --threads 2") == 0);
    const Manifest m = open_manifest(a / "train.csv");  // also decodes every image and mask
    REQUIRE(m.size() == 14);
    CHECK(m.has_domain);
    CHECK(m.has_mask);
    CHECK(m.has_patient);
    for (const Record& r : m.records) {
      CHECK(fs::exists(r.mask));
      CHECK(r.path.rfind(r.label ? "train/PNEUMONIA/" : "train/NORMAL/", 0) == 0);
      CHECK((r.subtype == "normal") == (r.label == 0));
      const Image img = read_image(r.file), mask = read_image(r.mask);
      CHECK(img.width == 64);
      CHECK(mask.width == 64);
      CHECK(pneuma::testing::read_bytes(r.file) ==
            pneuma::testing::read_bytes((fs::path(b.str()) / r.path).string()));
    }
    CHECK(pneuma::testing::read_bytes(a / "train.csv") == pneuma::testing::read_bytes(b / "train.csv"));
    CHECK(run_command(binary("pneuma-synth") + " --out " + a.str() + " --n 0 --seed 1 2>/dev/null") == 1);
    CHECK(run_command(binary("pneuma-synth") + " --out " + a.str() + " --n 2 --seed 1 --domains kids 2>/dev/null") == 1);
    CHECK(run_command(binary("pneuma-synth") + " --help >/dev/null") == 0);
  }

  TEST_CASE("crop: two largest components with specks ignored and margin and scaling") {
    Image mask(1, 40, 60);
    for (int64_t y = 10; y < 30; ++y) {
      for (int64_t x = 8; x < 20; ++x) mask.at(0, y, x) = 1.0f;   // left lung, 240 px
      for (int64_t x = 35; x < 45; ++x) mask.at(0, y, x) = 0.8f;  // right lung, 200 px
    }
    mask.at(0, 2, 55) = 1.0f;  // a speck: third component
    mask.at(0, 38, 2) = 0.3f;  // below the threshold
    const std::vector<Component> parts = connected_components(mask);
    REQUIRE(parts.size() == 3);
    CHECK(parts[0].pixels == 240);
    CHECK(parts[0].box == Box{10, 8, 20, 12});
    LungBoxOptions o;
    o.margin = 0.0;
    CHECK(lung_box(mask, o) == Box{10, 8, 20, 37});
    o.keep = 3;
    CHECK(lung_box(mask, o) == Box{10, 8, 20, 37});  // the speck is under min_fraction
    o.min_fraction = 0.0;
    CHECK(lung_box(mask, o) == Box{2, 8, 28, 48});
    o = LungBoxOptions{};
    o.margin = 0.1;
    CHECK(lung_box(mask, o) == Box{8, 4, 24, 45});  // 2 and 4 (rounded 3.7) px per side
    CHECK(lung_box(Image(1, 5, 5)).empty());
    CHECK(scale_box(Box{10, 8, 20, 37}, 40, 60, 80, 120) == Box{20, 16, 40, 74});
    CHECK(square_box(Box{10, 8, 20, 37}, 40, 60) == Box{2, 8, 37, 37});
    Image img(1, 80, 120, 0.5f);
    CHECK(crop_resize(img, Box{20, 16, 40, 74}, 32, 32).width == 32);
  }

  TEST_CASE("crop tool: crops synthetic images to their lungs and writes a manifest") {
    TempDir dir("crop");
    REQUIRE(run_command(binary("pneuma-synth") + " --out " + (dir / "synth") + " --n 6 --seed 5 --size 96 >/dev/null") == 0);
    std::string out;
    REQUIRE(run_command(binary("pneuma-crop") + " --manifest " + (dir / "synth/train.csv") + " --out " + (dir / "crops") +
                            " --size 48 --margin 0.05",
                        &out) == 0);
    const nlohmann::json line = nlohmann::json::parse(out);
    CHECK(line.at("images") == 6);
    CHECK(line.at("no_lung") == 0);
    const Manifest src = read_manifest(dir / "synth/train.csv");
    const Manifest crops = open_manifest(dir / "crops/train.csv");
    REQUIRE(crops.size() == 6);
    CHECK_FALSE(crops.has_mask);
    CHECK(crops.extra_columns == std::vector<std::string>{"crop_top", "crop_left", "crop_height", "crop_width"});
    for (int64_t i = 0; i < 6; ++i) {
      const Record& r = crops.records[i];
      CHECK(r.label == src.records[i].label);
      CHECK(r.patient == src.records[i].patient);
      CHECK(fs::path(r.file).extension() == ".png");
      const Image c = read_image(r.file);
      CHECK(c.width == 48);
      CHECK(c.height == 48);
      LungBoxOptions o;
      o.margin = 0.05;
      const Box expected = lung_box(read_image(src.records[i].mask), o);
      CHECK(r.extra == std::vector<std::string>{std::to_string(expected.top), std::to_string(expected.left),
                                                std::to_string(expected.height), std::to_string(expected.width)});
    }
    // no mask column and no --masks: one line, exit 1
    CHECK(run_command(binary("pneuma-crop") + " --manifest " + (dir / "crops/train.csv") + " --out " + (dir / "x") +
                      " 2>/dev/null") == 1);
    // a missing mask stops the run unless --skip-bad
    fs::remove(src.records[2].mask);
    CHECK(run_command(binary("pneuma-crop") + " --manifest " + (dir / "synth/train.csv") + " --out " + (dir / "c2") +
                      " 2>/dev/null") == 1);
    REQUIRE(run_command(binary("pneuma-crop") + " --manifest " + (dir / "synth/train.csv") + " --out " + (dir / "c3") +
                            " --skip-bad 2>/dev/null",
                        &out) == 0);
    CHECK(nlohmann::json::parse(out).at("skipped") == 1);
    CHECK(read_manifest(dir / "c3/train.csv").size() == 5);
  }
}
