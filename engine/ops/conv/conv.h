#pragma once
// 2-d convolutions, as torch.nn.functional.conv2d / conv_transpose2d (torch 1.13):
// input NCHW (or unbatched CHW), weight OIHW for conv2d and IOHW ([in, out/groups,
// kH, kW]) for conv_transpose2d, optional bias [out_channels]. Float32/float64; on the
// CPU float32 runs through oneDNN unless cpu::fast_path_enabled() is off
// (engine/cpu/fast_path.h), float64 through the reference loops.
#include <array>
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma {

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              std::array<int64_t, 2> stride = {1, 1}, std::array<int64_t, 2> padding = {0, 0},
              std::array<int64_t, 2> dilation = {1, 1}, int64_t groups = 1);

Tensor conv_transpose2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
                        std::array<int64_t, 2> stride = {1, 1}, std::array<int64_t, 2> padding = {0, 0},
                        std::array<int64_t, 2> output_padding = {0, 0}, int64_t groups = 1,
                        std::array<int64_t, 2> dilation = {1, 1});

}  // namespace pneuma
