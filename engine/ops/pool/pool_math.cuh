#pragma once
// Pooling geometry shared by the CPU reference loops, the oneDNN path and the CUDA
// kernels (kernels/pool/pool.cuh): output sizes and window bounds exactly as PyTorch computes them.
#include <cstdint>

#include "engine/ops/pool/plane_layout.cuh"

#if defined(__CUDACC__)
#define PNEUMA_POOL_HD __host__ __device__ inline
#else
#define PNEUMA_POOL_HD inline
#endif

namespace pneuma::kern {

// One 2-d pooling problem over N * C planes of ih x iw. Its tensors (input, output, indices and
// their gradients) are dense in one layout: row-major NCHW, or channels-last (NHWC in memory,
// torch.channels_last) when channels_last is set.
struct Pool2d {
  int64_t N = 0, C = 0;
  int64_t ih = 0, iw = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool channels_last = false;
  int64_t planes() const { return N * C; }
};

// PyTorch's pooling_output_shape: floor division (rounding toward -inf), and in ceil
// mode the last window must start inside the input or the left padding.
PNEUMA_POOL_HD int64_t pool_output_size(int64_t in, int64_t kernel, int64_t pad, int64_t stride, int64_t dilation,
                                        bool ceil_mode) {
  const int64_t num = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  const int64_t q = num / stride - ((num % stride != 0) && ((num < 0) != (stride < 0)) ? 1 : 0);
  int64_t out = q + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// Max pooling window along one axis: taps start, start + dilation, ... < end, all inside
// the input (PyTorch steps the start over the padding by whole dilations).
struct MaxWindow {
  int64_t start, end;
};
PNEUMA_POOL_HD MaxWindow max_window(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                                    int64_t dilation) {
  int64_t start = o * stride - pad;
  const int64_t end = start + (kernel - 1) * dilation + 1 < in ? start + (kernel - 1) * dilation + 1 : in;
  while (start < 0) start += dilation;
  return {start, end};
}

// Average pooling window along one axis: [start, end) clipped to the input, and the
// window's extent clipped to the padded input, which count_include_pad divides by.
struct AvgWindow {
  int64_t start, end, padded_extent;
};
PNEUMA_POOL_HD AvgWindow avg_window(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  int64_t start = o * stride - pad;
  int64_t end = start + kernel < in + pad ? start + kernel : in + pad;
  const int64_t extent = end - start;
  if (start < 0) start = 0;
  if (end > in) end = in;
  return {start, end, extent};
}

// The divisor of an average-pooling window: the override when given, else the window's extent
// in the padded input (count_include_pad) or in the input itself.
PNEUMA_POOL_HD double avg_divisor(const AvgWindow& h, const AvgWindow& w, bool count_include_pad, bool has_override,
                                  int64_t divisor_override) {
  if (has_override) return static_cast<double>(divisor_override);
  if (count_include_pad) return static_cast<double>(h.padded_extent * w.padded_extent);
  return static_cast<double>((h.end - h.start) * (w.end - w.start));
}

// Adaptive pooling bin a of out over in: [floor(a * in / out), ceil((a + 1) * in / out)).
PNEUMA_POOL_HD int64_t adaptive_start(int64_t a, int64_t out, int64_t in) { return (a * in) / out; }
PNEUMA_POOL_HD int64_t adaptive_end(int64_t a, int64_t out, int64_t in) { return ((a + 1) * in + out - 1) / out; }

}  // namespace pneuma::kern
