#pragma once
// 2-d upsampling of [N, C, H, W] inputs, as PyTorch's upsample_nearest2d,
// upsample_bilinear2d and torch.nn.functional.interpolate.
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "engine/core/tensor.h"

namespace pneuma {

// PyTorch 'nearest': source index floor(dst * in / out) (computed in float, as PyTorch).
Tensor upsample_nearest2d(const Tensor& input, std::array<int64_t, 2> output_size);
// align_corners: corner pixels' centers align and src = dst * (in - 1) / (out - 1);
// otherwise half-pixel centers, src = (dst + 0.5) * in / out - 0.5 clamped at 0.
Tensor upsample_bilinear2d(const Tensor& input, std::array<int64_t, 2> output_size, bool align_corners);

// F.interpolate for mode "nearest" or "bilinear": exactly one of size and scale_factor.
// With a scale_factor the output size is floor(in * scale_factor) and, as in PyTorch
// 1.13, the sampling uses 1 / scale_factor (not in / out) unless recompute_scale_factor
// is true; both agree for integer factors. align_corners is for "bilinear" only
// (default false).
Tensor interpolate(const Tensor& input, std::optional<std::array<int64_t, 2>> size,
                   std::optional<std::array<double, 2>> scale_factor, const std::string& mode = "nearest",
                   std::optional<bool> align_corners = std::nullopt,
                   std::optional<bool> recompute_scale_factor = std::nullopt);

}  // namespace pneuma
