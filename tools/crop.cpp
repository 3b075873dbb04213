// pneuma-crop: lung-region crops from lung masks. For each manifest row: threshold the
// mask, keep the two largest components, take their bounding box plus a margin, crop
// the image there and resize it. Writes the crops (gray PNG, same relative paths with
// .png) and a manifest with the same columns, without the mask column, plus the box
// (crop_top, crop_left, crop_height, crop_width in source pixels). Prints one JSON line.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/data/lung_crop.h"
#include "engine/data/manifest.h"
#include "tools/common/cli.h"

using namespace pneuma;
using namespace pneuma::data;
namespace fs = std::filesystem;

namespace {

// Where a record's crop goes under the output folder: its manifest path, or, for paths
// that leave the manifest's folder, images/<file name>.
fs::path output_path(const Record& r) {
  fs::path rel = fs::path(r.path).lexically_normal();
  if (rel.is_absolute() || rel.empty() || *rel.begin() == "..") rel = fs::path("images") / rel.filename();
  return rel.replace_extension(".png");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Lung-region crops from lung masks (threshold, two largest components, box + margin, resize)",
               "pneuma-crop"};
  std::string manifest_path, out, masks_dir;
  int64_t size = 224;
  LungBoxOptions box_options;
  bool square = false, skip_bad = false;
  int threads = 1;
  app.add_option("--manifest", manifest_path, "input CSV manifest (path,label,...; a mask column or --masks)")
      ->required();
  app.add_option("--out", out, "output folder for crops and the new manifest")->required();
  app.add_option("--masks", masks_dir, "folder of masks named <image stem>.png (instead of the mask column)");
  app.add_option("--size", size, "output height and width")->check(CLI::Range(8, 8192));
  app.add_option("--threshold", box_options.threshold, "mask threshold (mask values in [0, 1])")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--margin", box_options.margin, "box margin, fraction of the box size per side")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--keep", box_options.keep, "largest components kept")->check(CLI::Range(1, 16));
  app.add_flag("--square", square, "make the box square before resizing (no aspect distortion)");
  app.add_flag("--skip-bad", skip_bad, "leave out unreadable rows/files (and say how many) instead of stopping");
  app.add_option("--threads", threads, "worker threads")->check(CLI::Range(1, 256));
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;

  try {
    const auto start = std::chrono::steady_clock::now();
    Manifest m = read_manifest(manifest_path, /*skip_bad=*/true);
    if (!masks_dir.empty()) {
      for (Record& r : m.records) r.mask = (fs::path(masks_dir) / fs::path(r.file).stem()).string() + ".png";
      m.has_mask = true;
    }
    PNEUMA_CHECK(m.has_mask, "crop: manifest '", manifest_path, "' has no mask column; give --masks DIR");
    for (const Record& r : m.records)
      PNEUMA_CHECK(!r.mask.empty(), "crop: '", manifest_path, "': line ", r.line, ": no mask for '", r.path, "'");
    int64_t skipped = 0;
    m = check_manifest(std::move(m), skip_bad, ScanOptions{true, threads}, &skipped);
    for (const Problem& p : m.problems) std::fprintf(stderr, "pneuma-crop: skipped %s\n", p.str().c_str());

    fs::create_directories(out);
    Manifest result = m;
    result.has_mask = false;
    for (const char* column : {"crop_top", "crop_left", "crop_height", "crop_width"})
      result.extra_columns.push_back(column);
    std::atomic<int64_t> next{0}, no_lung{0};
    std::mutex mutex;
    std::exception_ptr error;
    std::vector<std::string> empty_masks;
    auto work = [&] {
      for (int64_t i; (i = next.fetch_add(1)) < m.size();) {
        try {
          const Record& r = m.records[i];
          const Image image = read_image(r.file, 1);
          const Image mask = read_image(r.mask, 1);
          Box box = scale_box(lung_box(mask, box_options), mask.height, mask.width, image.height, image.width);
          if (box.empty()) {
            // No lung in the mask: keep the whole image rather than drop the row.
            box = {0, 0, image.height, image.width};
            no_lung.fetch_add(1);
            std::lock_guard<std::mutex> lock(mutex);
            empty_masks.push_back(r.mask);
          }
          if (square) box = square_box(box, image.height, image.width);
          const fs::path rel = output_path(r);
          const fs::path file = fs::path(out) / rel;
          fs::create_directories(file.parent_path());
          write_png(crop_resize(image, box, size, size), file.string());
          Record& o = result.records[i];
          o.file = file.string();
          o.mask.clear();
          for (int64_t v : {box.top, box.left, box.height, box.width}) o.extra.push_back(std::to_string(v));
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex);
          if (!error) error = std::current_exception();
          next.store(m.size());
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
    for (const std::string& file : empty_masks)
      std::fprintf(stderr, "pneuma-crop: no lung above the threshold in '%s'; the whole image is kept\n", file.c_str());

    const std::string manifest_out = (fs::path(out) / fs::path(manifest_path).filename()).string();
    write_manifest(result, manifest_out);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json line = {{"images", result.size()}, {"skipped", skipped},  {"no_lung", no_lung.load()},
                           {"size", size},            {"manifest", manifest_out}, {"seconds", seconds}};
    std::cout << line.dump() << std::endl;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pneuma-crop: %s\n", e.what());
    return 1;
  }
  return 0;
}
