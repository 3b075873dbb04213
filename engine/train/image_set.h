#pragma once
// Image sets whose labels may be absent: SimCLR's unlabeled images, the images a U-Net
// predicts masks for, the images features are extracted from.
#include <cstdint>
#include <string>

#include "engine/data/manifest.h"

namespace pneuma::train {

// A CSV manifest (data::read_manifest), a Kermany folder (root/train/{NORMAL,PNEUMONIA} or
// root/{NORMAL,PNEUMONIA}; data::scan_folder), or any other folder, whose .png, .jpg,
// .jpeg and .bmp files below it are taken (sorted by path, label 0, hidden files ignored).
// Every image (and mask) is decoded once (data::check_manifest with `threads` threads): bad
// files are one Error listing them all, or with skip_bad are dropped and counted in
// *skipped. A missing path or a set without images is an Error naming the path.
data::Manifest open_image_set(const std::string& path, bool skip_bad, int threads, int64_t* skipped = nullptr);

}  // namespace pneuma::train
