#include "engine/core/memory_format.h"

#include <algorithm>
#include <numeric>

#include "engine/core/error.h"

namespace pneuma {

const char* memory_format_name(MemoryFormat format) {
  switch (format) {
    case MemoryFormat::Contiguous: return "contiguous_format";
    case MemoryFormat::ChannelsLast: return "channels_last";
    case MemoryFormat::Preserve: return "preserve_format";
  }
  return "?";
}

Strides strides_for(const Shape& shape, MemoryFormat format, const char* op) {
  PNEUMA_CHECK(format != MemoryFormat::Preserve, op, ": preserve_format names no layout of its own");
  if (format == MemoryFormat::Contiguous) return contiguous_strides(shape);
  PNEUMA_CHECK(shape.size() == 4, op, ": channels_last needs a 4-d tensor, got shape ", shape_str(shape));
  Strides strides(4);
  int64_t stride = 1;
  for (int d : {1, 3, 2, 0}) {
    strides[d] = stride;
    stride *= std::max<int64_t>(shape[d], 1);
  }
  return strides;
}

bool is_channels_last_contiguous(const Shape& shape, const Strides& strides) {
  if (shape.size() != 4) return false;
  int64_t expected = 1;
  for (int d : {1, 3, 2, 0}) {
    if (shape[d] == 1) continue;
    if (strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

// PyTorch's is_channels_last_strides_2d_s4 (c10/core/MemoryFormat.h), rule for rule.
bool has_channels_last_strides(const Shape& shape, const Strides& strides) {
  if (shape.size() != 4 || strides[1] == 0) return false;
  int64_t min = 0;
  for (int d : {1, 3, 2, 0}) {
    if (shape[d] == 0) return false;
    if (strides[d] < min) return false;
    // N111 tensors with N == C are ambiguous; torch calls them contiguous.
    if (d == 0 && min == strides[1]) return false;
    min = strides[d];
    if (shape[d] > 1) min *= shape[d];
  }
  return true;
}

bool same_element_offsets(const Shape& shape, const Strides& a, const Strides& b) {
  if (a.size() != shape.size() || b.size() != shape.size()) return false;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1 && a[d] != b[d]) return false;
  return true;
}

bool is_non_overlapping_and_dense(const Shape& shape, const Strides& strides) {
  if (numel_of(shape) == 0) return true;
  std::vector<size_t> order(shape.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return strides[a] < strides[b]; });
  int64_t expected = 1;
  for (size_t d : order) {
    if (shape[d] == 1) continue;
    if (strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

}  // namespace pneuma
