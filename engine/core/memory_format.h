#pragma once
// Memory formats of 4-d NCHW tensors, as torch.memory_format: the logical shape stays
// [N, C, H, W]; only the strides say how the elements lie in memory.
#include "engine/core/shape.h"

namespace pneuma {

enum class MemoryFormat {
  Contiguous,    // row-major NCHW (torch.contiguous_format)
  ChannelsLast,  // NHWC in memory: strides [H*W*C, 1, W*C, C] (torch.channels_last)
  Preserve,      // the source's layout where it is dense, else what it suggests (torch.preserve_format)
};

const char* memory_format_name(MemoryFormat format);

// Strides of a dense tensor of `shape` laid out in `format` (Contiguous or ChannelsLast;
// ChannelsLast needs a 4-d shape; throws naming `op` otherwise).
Strides strides_for(const Shape& shape, MemoryFormat format, const char* op);

// Whether the strides are channels-last ignoring size-1 dims (torch's is_contiguous(channels_last)).
bool is_channels_last_contiguous(const Shape& shape, const Strides& strides);
// Whether the strides order the dims as channels-last (torch's is_channels_last_strides_2d): this
// decides ambiguous cases such as [N, C, 1, 1], where both contiguity tests hold.
bool has_channels_last_strides(const Shape& shape, const Strides& strides);
// Whether two stride lists place every element of `shape` at the same offset (they may differ only
// on size-1 dims, as a [O, C, 1, 1] weight's row-major and channels-last strides do).
bool same_element_offsets(const Shape& shape, const Strides& a, const Strides& b);
// Whether the elements fill numel consecutive slots with no overlap, in any dim order.
bool is_non_overlapping_and_dense(const Shape& shape, const Strides& strides);

}  // namespace pneuma
