// 2-d pooling kernels over dense [N, C, h, w] data, row-major NCHW or channels-last (NHWC in
// memory) as Pool2d::channels_last says: max pooling with PyTorch's indices (h * w_size + w within
// the plane, in either layout, as PyTorch), average pooling, adaptive average pooling; forward and
// backward. Each thread's element follows memory order (plane_element), so in channels-last memory
// neighbouring threads take neighbouring channels of one pixel: loads and stores are coalesced.
//
// Forward: one thread per output element, visiting its window in the CPU loops' order, so results
// are the CPU reference's bit for bit. Backward: one thread per *input* element, gathering the
// gradients of the outputs whose windows hold it, in increasing output order; the CPU loops scatter
// in that same order, so the sums agree bit for bit too, and no atomics are needed (deterministic).
// Window geometry: engine/ops/pool/pool_math.cuh, shared with the CPU loops and oneDNN path.
//
// T is the storage type (float, double, bfloat16); comparisons, sums and divisions run in
// opmath_t<T> (float for bfloat16) and each output is rounded to T once, as the CPU loops do.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../elementwise/elementwise.cuh"
#include "../portable.cuh"
#include "engine/core/bfloat16.h"
#include "engine/ops/pool/pool_math.cuh"

namespace pneuma::kern {

// Options of average pooling, as kernel arguments.
struct AvgPoolOptions {
    bool count_include_pad = true;
    bool has_divisor_override = false;
    std::int64_t divisor_override = 0;
};

// Floor division for a positive divisor (C++ truncates toward zero).
PNEUMA_HD inline std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Outputs [first, last] along one axis whose window, of `span` taps from o * stride - pad, may hold
// input position i (a superset: callers check the exact window).
struct OutputRange {
    std::int64_t first, last;
};
PNEUMA_HD inline OutputRange outputs_covering(std::int64_t i, std::int64_t span, std::int64_t stride, std::int64_t pad,
                                              std::int64_t outputs) {
    const std::int64_t first = floor_div(i + pad - span + 1, stride);
    const std::int64_t last = floor_div(i + pad, stride);
    return {first < 0 ? 0 : first, last < outputs - 1 ? last : outputs - 1};
}

PNEUMA_HD inline OutputRange adaptive_outputs_covering(std::int64_t i, std::int64_t in, std::int64_t out) {
    const std::int64_t first = (i * out) / in - 1, last = ((i + 1) * out) / in;
    return {first < 0 ? 0 : first, last < out - 1 ? last : out - 1};
}

inline namespace PNEUMA_KERNEL_ABI {

// ---- Forward ----

template <class T>
__global__ void max_pool2d_forward_kernel(const T* x, T* y, std::int64_t* indices, Pool2d p) {
    using Math = opmath_t<T>;
    const std::int64_t outputs = p.oh * p.ow, n = p.N * p.C * outputs;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, p.C, outputs, p.channels_last);
        const std::int64_t oh = e.pixel / p.ow, ow = e.pixel % p.ow;
        const PlaneAccess in = plane_access(e.n, e.c, p.C, p.ih * p.iw, p.channels_last);
        const T* xp = x + in.base;
        const MaxWindow hw = max_window(oh, p.ih, p.kh, p.sh, p.ph, p.dh);
        const MaxWindow ww = max_window(ow, p.iw, p.kw, p.sw, p.pw, p.dw);
        // As PyTorch: the first maximum wins ties, and a NaN wins over everything.
        std::int64_t best = hw.start * p.iw + ww.start;
        Math best_value = static_cast<Math>(-HUGE_VAL);
        for (std::int64_t h = hw.start; h < hw.end; h += p.dh) {
            for (std::int64_t w = ww.start; w < ww.end; w += p.dw) {
                const Math v = static_cast<Math>(xp[(h * p.iw + w) * in.pixel_stride]);
                if (v > best_value || v != v) {
                    best_value = v;
                    best = h * p.iw + w;
                }
            }
        }
        y[i] = static_cast<T>(best_value);
        indices[i] = best;
    }
}

template <class T>
__global__ void avg_pool2d_forward_kernel(const T* x, T* y, Pool2d p, AvgPoolOptions o) {
    using Math = opmath_t<T>;
    const std::int64_t outputs = p.oh * p.ow, n = p.N * p.C * outputs;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, p.C, outputs, p.channels_last);
        const std::int64_t oh = e.pixel / p.ow, ow = e.pixel % p.ow;
        const PlaneAccess in = plane_access(e.n, e.c, p.C, p.ih * p.iw, p.channels_last);
        const T* xp = x + in.base;
        const AvgWindow hw = avg_window(oh, p.ih, p.kh, p.sh, p.ph);
        const AvgWindow ww = avg_window(ow, p.iw, p.kw, p.sw, p.pw);
        Math sum = 0;
        for (std::int64_t h = hw.start; h < hw.end; ++h) {
            for (std::int64_t w = ww.start; w < ww.end; ++w) {
                sum += static_cast<Math>(xp[(h * p.iw + w) * in.pixel_stride]);
            }
        }
        const Math divisor =
            static_cast<Math>(avg_divisor(hw, ww, o.count_include_pad, o.has_divisor_override, o.divisor_override));
        y[i] = static_cast<T>(sum / divisor);
    }
}

template <class T>
__global__ void adaptive_avg_pool2d_forward_kernel(const T* x, T* y, Pool2d p) {
    using Math = opmath_t<T>;
    const std::int64_t outputs = p.oh * p.ow, n = p.N * p.C * outputs;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, p.C, outputs, p.channels_last);
        const std::int64_t oh = e.pixel / p.ow, ow = e.pixel % p.ow;
        const PlaneAccess in = plane_access(e.n, e.c, p.C, p.ih * p.iw, p.channels_last);
        const T* xp = x + in.base;
        const std::int64_t h0 = adaptive_start(oh, p.oh, p.ih), h1 = adaptive_end(oh, p.oh, p.ih);
        const std::int64_t w0 = adaptive_start(ow, p.ow, p.iw), w1 = adaptive_end(ow, p.ow, p.iw);
        Math sum = 0;
        for (std::int64_t h = h0; h < h1; ++h) {
            for (std::int64_t w = w0; w < w1; ++w) {
                sum += static_cast<Math>(xp[(h * p.iw + w) * in.pixel_stride]);
            }
        }
        y[i] = static_cast<T>(sum / static_cast<Math>((h1 - h0) * (w1 - w0)));
    }
}

// ---- Backward: one thread per input element ----

template <class T>
__global__ void max_pool2d_backward_kernel(const T* g, const std::int64_t* indices, T* dx, Pool2d p) {
    using Math = opmath_t<T>;
    const std::int64_t inputs = p.ih * p.iw, n = p.N * p.C * inputs;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, p.C, inputs, p.channels_last);
        const std::int64_t flat = e.pixel, h = flat / p.iw, w = flat % p.iw;
        const PlaneAccess out = plane_access(e.n, e.c, p.C, p.oh * p.ow, p.channels_last);
        const T* gp = g + out.base;
        const std::int64_t* ip = indices + out.base;
        const OutputRange rows = outputs_covering(h, (p.kh - 1) * p.dh + 1, p.sh, p.ph, p.oh);
        const OutputRange cols = outputs_covering(w, (p.kw - 1) * p.dw + 1, p.sw, p.pw, p.ow);
        Math sum = 0;
        for (std::int64_t oh = rows.first; oh <= rows.last; ++oh) {
            for (std::int64_t ow = cols.first; ow <= cols.last; ++ow) {
                const std::int64_t o = (oh * p.ow + ow) * out.pixel_stride;
                if (ip[o] == flat) sum += static_cast<Math>(gp[o]);
            }
        }
        dx[i] = static_cast<T>(sum);
    }
}

template <class T>
__global__ void avg_pool2d_backward_kernel(const T* g, T* dx, Pool2d p, AvgPoolOptions o) {
    using Math = opmath_t<T>;
    const std::int64_t inputs = p.ih * p.iw, n = p.N * p.C * inputs;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, p.C, inputs, p.channels_last);
        const std::int64_t h = e.pixel / p.iw, w = e.pixel % p.iw;
        const PlaneAccess out = plane_access(e.n, e.c, p.C, p.oh * p.ow, p.channels_last);
        const T* gp = g + out.base;
        const OutputRange rows = outputs_covering(h, p.kh, p.sh, p.ph, p.oh);
        const OutputRange cols = outputs_covering(w, p.kw, p.sw, p.pw, p.ow);
        Math sum = 0;
        for (std::int64_t oh = rows.first; oh <= rows.last; ++oh) {
            const AvgWindow hw = avg_window(oh, p.ih, p.kh, p.sh, p.ph);
            if (h < hw.start || h >= hw.end) continue;
            for (std::int64_t ow = cols.first; ow <= cols.last; ++ow) {
                const AvgWindow ww = avg_window(ow, p.iw, p.kw, p.sw, p.pw);
                if (w < ww.start || w >= ww.end) continue;
                const Math divisor = static_cast<Math>(
                    avg_divisor(hw, ww, o.count_include_pad, o.has_divisor_override, o.divisor_override));
                sum += static_cast<Math>(gp[(oh * p.ow + ow) * out.pixel_stride]) / divisor;
            }
        }
        dx[i] = static_cast<T>(sum);
    }
}

template <class T>
__global__ void adaptive_avg_pool2d_backward_kernel(const T* g, T* dx, Pool2d p) {
    using Math = opmath_t<T>;
    const std::int64_t inputs = p.ih * p.iw, n = p.N * p.C * inputs;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, p.C, inputs, p.channels_last);
        const std::int64_t h = e.pixel / p.iw, w = e.pixel % p.iw;
        const PlaneAccess out = plane_access(e.n, e.c, p.C, p.oh * p.ow, p.channels_last);
        const T* gp = g + out.base;
        const OutputRange rows = adaptive_outputs_covering(h, p.ih, p.oh);
        const OutputRange cols = adaptive_outputs_covering(w, p.iw, p.ow);
        Math sum = 0;
        for (std::int64_t oh = rows.first; oh <= rows.last; ++oh) {
            const std::int64_t h0 = adaptive_start(oh, p.oh, p.ih), h1 = adaptive_end(oh, p.oh, p.ih);
            if (h < h0 || h >= h1) continue;
            for (std::int64_t ow = cols.first; ow <= cols.last; ++ow) {
                const std::int64_t w0 = adaptive_start(ow, p.ow, p.iw), w1 = adaptive_end(ow, p.ow, p.iw);
                if (w < w0 || w >= w1) continue;
                const Math area = static_cast<Math>((h1 - h0) * (w1 - w0));
                sum += static_cast<Math>(gp[(oh * p.ow + ow) * out.pixel_stride]) / area;
            }
        }
        dx[i] = static_cast<T>(sum);
    }
}

// ---- Launchers (dense buffers; p's sizes and layout describe them) ----

inline void check_pool_geometry(const char* launcher, const Pool2d& p) {
    if (p.N < 0 || p.C < 0 || p.ih < 0 || p.iw < 0 || p.oh < 0 || p.ow < 0) {
        throw std::invalid_argument(std::string(launcher) + ": negative size in the pooling geometry");
    }
}

template <class T>
void launch_max_pool2d_forward(const T* x, T* y, std::int64_t* indices, const Pool2d& p, Stream stream) {
    check_pool_geometry("launch_max_pool2d_forward", p);
    const std::int64_t n = p.N * p.C * p.oh * p.ow;
    if (n == 0) return;
    auto kernel = &max_pool2d_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, x, y, indices, p);
}

template <class T>
void launch_max_pool2d_backward(const T* g, const std::int64_t* indices, T* dx, const Pool2d& p, Stream stream) {
    check_pool_geometry("launch_max_pool2d_backward", p);
    const std::int64_t n = p.N * p.C * p.ih * p.iw;
    if (n == 0) return;
    auto kernel = &max_pool2d_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, g, indices, dx, p);
}

template <class T>
void launch_avg_pool2d_forward(const T* x, T* y, const Pool2d& p, const AvgPoolOptions& o, Stream stream) {
    check_pool_geometry("launch_avg_pool2d_forward", p);
    const std::int64_t n = p.N * p.C * p.oh * p.ow;
    if (n == 0) return;
    auto kernel = &avg_pool2d_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, x, y, p, o);
}

template <class T>
void launch_avg_pool2d_backward(const T* g, T* dx, const Pool2d& p, const AvgPoolOptions& o, Stream stream) {
    check_pool_geometry("launch_avg_pool2d_backward", p);
    const std::int64_t n = p.N * p.C * p.ih * p.iw;
    if (n == 0) return;
    auto kernel = &avg_pool2d_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, g, dx, p, o);
}

template <class T>
void launch_adaptive_avg_pool2d_forward(const T* x, T* y, const Pool2d& p, Stream stream) {
    check_pool_geometry("launch_adaptive_avg_pool2d_forward", p);
    const std::int64_t n = p.N * p.C * p.oh * p.ow;
    if (n == 0) return;
    auto kernel = &adaptive_avg_pool2d_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, x, y, p);
}

template <class T>
void launch_adaptive_avg_pool2d_backward(const T* g, T* dx, const Pool2d& p, Stream stream) {
    check_pool_geometry("launch_adaptive_avg_pool2d_backward", p);
    const std::int64_t n = p.N * p.C * p.ih * p.iw;
    if (n == 0) return;
    auto kernel = &adaptive_avg_pool2d_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, g, dx, p);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern
