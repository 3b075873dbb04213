#include "engine/data/lung_crop.h"

#include <algorithm>
#include <cmath>

#include "engine/core/error.h"

namespace pneuma::data {

std::vector<Component> connected_components(const Image& mask, double threshold) {
  PNEUMA_CHECK(!mask.empty(), "connected_components: empty mask");
  const int64_t h = mask.height, w = mask.width;
  const float t = static_cast<float>(threshold);
  std::vector<int32_t> label(static_cast<size_t>(h * w), -1);
  std::vector<Component> out;
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < h * w; ++start) {
    if (label[start] >= 0 || mask.values[start] < t) continue;
    const int32_t id = static_cast<int32_t>(out.size());
    Component c;
    int64_t y0 = h, y1 = -1, x0 = w, x1 = -1;
    label[start] = id;
    stack.assign(1, start);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      const int64_t y = p / w, x = p % w;
      ++c.pixels;
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t ny = y + dy, nx = x + dx;
          if (ny < 0 || ny >= h || nx < 0 || nx >= w) continue;
          const int64_t n = ny * w + nx;
          if (label[n] < 0 && mask.values[n] >= t) {
            label[n] = id;
            stack.push_back(n);
          }
        }
    }
    c.box = {y0, x0, y1 - y0 + 1, x1 - x0 + 1};
    out.push_back(c);
  }
  std::stable_sort(out.begin(), out.end(), [](const Component& a, const Component& b) { return a.pixels > b.pixels; });
  return out;
}

Box lung_box(const Image& mask, const LungBoxOptions& o) {
  PNEUMA_CHECK(o.keep >= 1, "lung_box: keep must be >= 1, got ", o.keep);
  PNEUMA_CHECK(o.margin >= 0, "lung_box: margin must be >= 0, got ", o.margin);
  const std::vector<Component> components = connected_components(mask, o.threshold);
  if (components.empty()) return {};
  int64_t y0 = mask.height, x0 = mask.width, y1 = 0, x1 = 0;
  const double floor = o.min_fraction * static_cast<double>(components[0].pixels);
  for (size_t i = 0; i < components.size() && static_cast<int64_t>(i) < o.keep; ++i) {
    const Component& c = components[i];
    if (i > 0 && static_cast<double>(c.pixels) < floor) break;
    y0 = std::min(y0, c.box.top);
    x0 = std::min(x0, c.box.left);
    y1 = std::max(y1, c.box.top + c.box.height);
    x1 = std::max(x1, c.box.left + c.box.width);
  }
  const int64_t my = std::llround(o.margin * static_cast<double>(y1 - y0));
  const int64_t mx = std::llround(o.margin * static_cast<double>(x1 - x0));
  y0 = std::max<int64_t>(0, y0 - my);
  x0 = std::max<int64_t>(0, x0 - mx);
  y1 = std::min(mask.height, y1 + my);
  x1 = std::min(mask.width, x1 + mx);
  return {y0, x0, y1 - y0, x1 - x0};
}

Box scale_box(const Box& box, int64_t from_height, int64_t from_width, int64_t to_height, int64_t to_width) {
  PNEUMA_CHECK(from_height > 0 && from_width > 0 && to_height > 0 && to_width > 0, "scale_box: sizes must be positive");
  if (from_height == to_height && from_width == to_width) return box;
  const double sy = static_cast<double>(to_height) / from_height, sx = static_cast<double>(to_width) / from_width;
  // Outward rounding keeps every masked pixel inside the scaled box.
  const int64_t y0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(box.top * sy)), 0, to_height);
  const int64_t x0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(box.left * sx)), 0, to_width);
  const int64_t y1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((box.top + box.height) * sy)), 0, to_height);
  const int64_t x1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((box.left + box.width) * sx)), 0, to_width);
  return {y0, x0, y1 - y0, x1 - x0};
}

Box square_box(const Box& box, int64_t height, int64_t width) {
  const int64_t side = std::max(box.height, box.width);
  auto place = [](int64_t start, int64_t length, int64_t side, int64_t limit) {
    int64_t s = start - (side - length) / 2;
    if (side <= limit) s = std::clamp<int64_t>(s, 0, limit - side);
    return s;
  };
  return {place(box.top, box.height, side, height), place(box.left, box.width, side, width), side, side};
}

Image crop_resize(const Image& image, const Box& box, int64_t height, int64_t width) {
  PNEUMA_CHECK(!box.empty(), "crop_resize: empty box");
  return resize(crop(image, box.top, box.left, box.height, box.width), height, width, Interpolation::Auto);
}

}  // namespace pneuma::data
