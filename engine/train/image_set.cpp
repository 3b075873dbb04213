#include "engine/train/image_set.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

#include "engine/core/error.h"

namespace pneuma::train {

namespace fs = std::filesystem;

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool is_hidden(const fs::path& relative) {
  for (const fs::path& part : relative)
    if (part.string().rfind('.', 0) == 0 && part != "." && part != "..") return true;
  return false;
}

bool is_kermany_layout(const fs::path& root) {
  std::error_code ec;
  return fs::is_directory(root / "NORMAL", ec) || fs::is_directory(root / "PNEUMONIA", ec);
}

// Every image file below root, label 0, paths relative to root.
data::Manifest scan_image_tree(const fs::path& root) {
  data::Manifest m;
  m.source = root.string();
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied)) {
    std::error_code ec;
    if (!entry.is_regular_file(ec)) continue;
    const fs::path relative = entry.path().lexically_relative(root);
    if (is_hidden(relative) || !is_image_file(entry.path())) continue;
    files.push_back(relative);
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& relative : files) {
    data::Record r;
    r.path = relative.string();
    r.file = (root / relative).string();
    m.records.push_back(std::move(r));
  }
  return m;
}

}  // namespace

data::Manifest open_image_set(const std::string& path, bool skip_bad, int threads, int64_t* skipped) {
  std::error_code ec;
  PNEUMA_CHECK(fs::exists(path, ec), path, ": no such file or folder");
  data::Manifest manifest;
  if (fs::is_directory(path, ec)) {
    const fs::path train = fs::path(path) / "train";
    if (is_kermany_layout(train))
      manifest = data::scan_folder(train.string());
    else if (is_kermany_layout(path))
      manifest = data::scan_folder(path);
    else
      manifest = scan_image_tree(path);
  } else {
    // Bad rows are collected so check_manifest reports them with the bad files.
    manifest = data::read_manifest(path, /*skip_bad=*/true);
  }
  data::ScanOptions scan;
  scan.threads = std::max(1, threads);
  manifest = data::check_manifest(std::move(manifest), skip_bad, scan, skipped);
  PNEUMA_CHECK(manifest.size() > 0, path, ": no images");
  return manifest;
}

}  // namespace pneuma::train
