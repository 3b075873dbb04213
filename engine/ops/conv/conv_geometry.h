#pragma once
// The problem every convolution kernel solves, in conv2d's terms: input x
// [batch, in_channels, in_h, in_w], weight [out_channels, in_channels/groups, kernel_h,
// kernel_w], output y [batch, out_channels, out_h, out_w]. conv_transpose2d runs the
// same kernels with the roles swapped (its output is this geometry's input), which is
// why in_h/in_w are stored rather than derived: a transposed conv's output_padding
// makes the input larger than the output size formula needs.
//
// memory_format says how every tensor of the problem lies in memory: Contiguous is NCHW
// activations and an OIHW weight, ChannelsLast is NHWC activations and an OHWI weight (a
// transposed conv's IOHW weight is the OIHW weight of its geometry, so the same holds).
// conv.cpp sets it once, from torch's rule, and lays out x, w, y and the gradients so.
#include <array>
#include <cstdint>

#include "engine/core/memory_format.h"

namespace pneuma::ops {

struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  MemoryFormat memory_format = MemoryFormat::Contiguous;  // Contiguous or ChannelsLast

  int64_t in_per_group() const { return in_channels / groups; }
  int64_t out_per_group() const { return out_channels / groups; }
};

}  // namespace pneuma::ops
