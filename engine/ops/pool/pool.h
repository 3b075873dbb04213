#pragma once
// 2-d pooling, as torch.nn.functional: inputs are [N, C, H, W] or unbatched [C, H, W].
// A stride of {0, 0} means "equal to kernel_size" (PyTorch's stride=None).
#include <array>
#include <cstdint>
#include <optional>
#include <utility>

#include "engine/core/tensor.h"

namespace pneuma {

// Padding counts as -inf. ceil_mode follows PyTorch: the last window must start inside
// the input or the left padding. The gradient goes to the first maximum of each window.
Tensor max_pool2d(const Tensor& input, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride = {0, 0},
                  std::array<int64_t, 2> padding = {0, 0}, std::array<int64_t, 2> dilation = {1, 1},
                  bool ceil_mode = false);
// Also returns, per output element, the int64 flat index h * W + w of its maximum in
// the input plane (PyTorch's return_indices=True). The indices carry no gradient.
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input, std::array<int64_t, 2> kernel_size,
                                                  std::array<int64_t, 2> stride = {0, 0},
                                                  std::array<int64_t, 2> padding = {0, 0},
                                                  std::array<int64_t, 2> dilation = {1, 1}, bool ceil_mode = false);

Tensor avg_pool2d(const Tensor& input, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride = {0, 0},
                  std::array<int64_t, 2> padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true,
                  std::optional<int64_t> divisor_override = std::nullopt);

// Output bin i of n over an input of size s covers [floor(i * s / n), ceil((i + 1) * s / n)).
Tensor adaptive_avg_pool2d(const Tensor& input, std::array<int64_t, 2> output_size);

}  // namespace pneuma
