#pragma once
// Lung-region crop from a lung mask (given or predicted by a U-Net): threshold, keep the
// largest connected components (the two lungs), take their joint bounding box with a
// margin, crop and resize. Used by the three-branch and two-stage recipes.
#include <cstdint>
#include <vector>

#include "engine/data/image.h"

namespace pneuma::data {

struct Box {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool empty() const { return height <= 0 || width <= 0; }
  bool operator==(const Box&) const = default;
};

struct Component {
  int64_t pixels = 0;
  Box box;
};

// 8-connected components of mask channel 0 >= threshold, largest first (ties: first
// pixel in raster order first).
std::vector<Component> connected_components(const Image& mask, double threshold = 0.5);

struct LungBoxOptions {
  double threshold = 0.5;
  int64_t keep = 2;          // components kept (two lungs)
  double min_fraction = 0.05;  // components smaller than this fraction of the largest are specks
  double margin = 0.05;      // grow the box by this fraction of its height/width on each side
};

// Box in mask pixels; empty when nothing is above the threshold.
Box lung_box(const Image& mask, const LungBoxOptions& options = {});
// The same region in an image of another size.
Box scale_box(const Box& box, int64_t from_height, int64_t from_width, int64_t to_height, int64_t to_width);
// Grows the shorter side of the box to make it square (about its centre, shifted to stay
// inside height x width where it fits).
Box square_box(const Box& box, int64_t height, int64_t width);
// crop + resize to height x width (area filter when shrinking).
Image crop_resize(const Image& image, const Box& box, int64_t height, int64_t width);

}  // namespace pneuma::data
