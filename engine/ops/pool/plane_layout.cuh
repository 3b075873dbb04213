#pragma once
// Element addressing of dense [N, C, H, W] tensors in either memory format, shared by the host loops
// and the CUDA kernels of the spatial ops (pooling, upsampling): row-major NCHW, or channels-last
// (NHWC in memory, torch.channels_last). Kernels that walk their outputs in memory order through
// plane_element touch neighbouring addresses with neighbouring threads in either layout (along C
// when channels-last), and read the planes they need through plane_access.
#include <cstdint>

#if defined(__CUDACC__)
#define PNEUMA_PLANE_HD __host__ __device__ inline
#else
#define PNEUMA_PLANE_HD inline
#endif

namespace pneuma::kern {

// Where plane (n, c) of a tensor with `pixels` = h * w elements per plane lies: its first element,
// and the step from one pixel (h * w_size + w) to the next: 1 row-major, C channels-last.
struct PlaneAccess {
  int64_t base, pixel_stride;
};
PNEUMA_PLANE_HD PlaneAccess plane_access(int64_t n, int64_t c, int64_t C, int64_t pixels, bool channels_last) {
  if (channels_last) return {n * pixels * C + c, C};
  return {(n * C + c) * pixels, 1};
}

// The element at memory position i of a dense tensor with C channels of `pixels` elements each:
// batch n, channel c and pixel (h * w_size + w).
struct PlaneElement {
  int64_t n, c, pixel;
};
PNEUMA_PLANE_HD PlaneElement plane_element(int64_t i, int64_t C, int64_t pixels, bool channels_last) {
  if (channels_last) return {i / (pixels * C), i % C, (i / C) % pixels};
  return {i / (C * pixels), (i / pixels) % C, i % pixels};
}

}  // namespace pneuma::kern
