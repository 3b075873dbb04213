#pragma once
// 2-d convolutions, as torch.nn.functional.conv2d / conv_transpose2d (torch 1.13):
// input NCHW (or unbatched CHW), weight OIHW for conv2d and IOHW ([in, out/groups,
// kH, kW]) for conv_transpose2d, optional bias [out_channels]. Float32/float64; on the
// CPU float32 runs through oneDNN unless cpu::fast_path_enabled() is off
// (engine/cpu/fast_path.h), float64 through the reference loops.
//
// Layout (as torch.channels_last): when the input or the weight has channels-last strides the
// convolution runs in NHWC, natively in oneDNN and cuDNN, and its output and the gradients it
// sends back are channels-last; otherwise everything is NCHW. cuDNN float64 always runs NCHW.
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
