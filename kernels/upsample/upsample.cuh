// 2-d nearest and bilinear upsampling over dense [N, C, h, w] data (planes = N * C), row-major or
// channels-last (NHWC in memory) as UpsampleGeometry::channels_last says. Each thread takes one
// element in memory order (plane_element), so channels-last loads and stores are coalesced along C.
//
// Forward: one thread per output element, with the source taps of
// engine/ops/upsample/upsample_math.cuh (PyTorch's index arithmetic) and the CPU loops' order of
// operations. Backward: one thread per input element gathers, in increasing output order, the
// contributions the CPU loops scatter in that order; the outputs that read an input row or column
// are found by binary search (source taps never decrease along an axis). Results are the CPU
// reference's bit for bit, and no atomics are needed.
//
// bfloat16 data is computed in float (opmath_t: taps, weights, gradient sums) and rounded once on
// store, as the CPU loops do.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../elementwise/elementwise.cuh"
#include "../portable.cuh"
#include "engine/core/bfloat16.h"
#include "engine/ops/pool/plane_layout.cuh"
#include "engine/ops/upsample/upsample_math.cuh"

namespace pneuma::kern {

// The problem as kernel arguments (engine/ops/upsample/upsample_cpu.h's Upsample2d).
struct UpsampleGeometry {
    std::int64_t planes = 0, ih = 0, iw = 0, oh = 0, ow = 0;
    bool align_corners = false;
    double scale_h = 0, scale_w = 0;
    std::int64_t channels = 1;   // C of planes = N * C
    bool channels_last = false;  // the tensors' layout
};

// One axis of a bilinear problem: its taps are a function of the output position.
template <class T>
struct LinearAxis {
    std::int64_t in, out;
    bool align_corners;
    T scale;
    PNEUMA_HD LinearTaps<T> at(std::int64_t o) const { return linear_taps<T>(o, in, out, align_corners, scale); }
};

// The first output position in [0, out) whose key is >= target, for a key that never decreases.
template <class Key>
PNEUMA_HD std::int64_t first_output_at_least(std::int64_t out, std::int64_t target, const Key& key) {
    std::int64_t low = 0, high = out;
    while (low < high) {
        const std::int64_t middle = low + (high - low) / 2;
        if (key(middle) >= target) high = middle;
        else low = middle + 1;
    }
    return low;
}

struct NearestKey {
    std::int64_t in, out;
    double scale;
    PNEUMA_HD std::int64_t operator()(std::int64_t o) const { return nearest_source_index(o, in, out, scale); }
};

template <class T>
struct TapKey {  // the first (second) tap of output o
    LinearAxis<T> axis;
    bool second;
    PNEUMA_HD std::int64_t operator()(std::int64_t o) const {
        const LinearTaps<T> t = axis.at(o);
        return second ? t.i1 : t.i0;
    }
};

inline namespace PNEUMA_KERNEL_ABI {

template <class T>
__global__ void upsample_nearest2d_forward_kernel(const T* x, T* y, UpsampleGeometry u) {
    const std::int64_t outputs = u.oh * u.ow, n = u.planes * outputs;
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, u.channels, outputs, u.channels_last);
        const std::int64_t oh = e.pixel / u.ow, ow = e.pixel % u.ow;
        const PlaneAccess in = plane_access(e.n, e.c, u.channels, u.ih * u.iw, u.channels_last);
        const std::int64_t h = nearest_source_index(oh, u.ih, u.oh, u.scale_h);
        const std::int64_t w = nearest_source_index(ow, u.iw, u.ow, u.scale_w);
        y[i] = x[in.base + (h * u.iw + w) * in.pixel_stride];
    }
}

template <class T>
__global__ void upsample_nearest2d_backward_kernel(const T* g, T* dx, UpsampleGeometry u) {
    const std::int64_t inputs = u.ih * u.iw, n = u.planes * inputs;
    const NearestKey rows{u.ih, u.oh, u.scale_h}, cols{u.iw, u.ow, u.scale_w};
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, u.channels, inputs, u.channels_last);
        const std::int64_t h = e.pixel / u.iw, w = e.pixel % u.iw;
        const PlaneAccess out = plane_access(e.n, e.c, u.channels, u.oh * u.ow, u.channels_last);
        const T* gp = g + out.base;
        const std::int64_t oh0 = first_output_at_least(u.oh, h, rows), oh1 = first_output_at_least(u.oh, h + 1, rows);
        const std::int64_t ow0 = first_output_at_least(u.ow, w, cols), ow1 = first_output_at_least(u.ow, w + 1, cols);
        opmath_t<T> sum = 0;
        for (std::int64_t oh = oh0; oh < oh1; ++oh) {
            for (std::int64_t ow = ow0; ow < ow1; ++ow) {
                sum += static_cast<opmath_t<T>>(gp[(oh * u.ow + ow) * out.pixel_stride]);
            }
        }
        dx[i] = static_cast<T>(sum);
    }
}

template <class T>
__global__ void upsample_bilinear2d_forward_kernel(const T* x, T* y, UpsampleGeometry u) {
    using M = opmath_t<T>;
    const std::int64_t outputs = u.oh * u.ow, n = u.planes * outputs;
    const LinearAxis<M> rows{u.ih, u.oh, u.align_corners, area_pixel_scale<M>(u.ih, u.oh, u.align_corners, u.scale_h)};
    const LinearAxis<M> cols{u.iw, u.ow, u.align_corners, area_pixel_scale<M>(u.iw, u.ow, u.align_corners, u.scale_w)};
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, u.channels, outputs, u.channels_last);
        const std::int64_t oh = e.pixel / u.ow, ow = e.pixel % u.ow;
        const PlaneAccess in = plane_access(e.n, e.c, u.channels, u.ih * u.iw, u.channels_last);
        const LinearTaps<M> h = rows.at(oh), w = cols.at(ow);
        const T* r0 = x + in.base + h.i0 * u.iw * in.pixel_stride;
        const T* r1 = x + in.base + h.i1 * u.iw * in.pixel_stride;
        const std::int64_t w0 = w.i0 * in.pixel_stride, w1 = w.i1 * in.pixel_stride;
        const M a = r0[w0], b = r0[w1], c = r1[w0], d = r1[w1];
        // Rows first, then columns: PyTorch's order of operations.
        y[i] = static_cast<T>((a * w.l0 + b * w.l1) * h.l0 + (c * w.l0 + d * w.l1) * h.l1);
    }
}

template <class T>
__global__ void upsample_bilinear2d_backward_kernel(const T* g, T* dx, UpsampleGeometry u) {
    using M = opmath_t<T>;
    const std::int64_t inputs = u.ih * u.iw, n = u.planes * inputs;
    const LinearAxis<M> rows{u.ih, u.oh, u.align_corners, area_pixel_scale<M>(u.ih, u.oh, u.align_corners, u.scale_h)};
    const LinearAxis<M> cols{u.iw, u.ow, u.align_corners, area_pixel_scale<M>(u.iw, u.ow, u.align_corners, u.scale_w)};
    for (std::int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
        const PlaneElement e = plane_element(i, u.channels, inputs, u.channels_last);
        const std::int64_t h = e.pixel / u.iw, w = e.pixel % u.iw;
        const PlaneAccess out = plane_access(e.n, e.c, u.channels, u.oh * u.ow, u.channels_last);
        const T* gp = g + out.base;
        // Outputs with a tap on row h: from the first whose second tap reaches h to the last whose
        // first tap does not pass it.
        const std::int64_t oh0 = first_output_at_least(u.oh, h, TapKey<M>{rows, true});
        const std::int64_t oh1 = first_output_at_least(u.oh, h + 1, TapKey<M>{rows, false});
        const std::int64_t ow0 = first_output_at_least(u.ow, w, TapKey<M>{cols, true});
        const std::int64_t ow1 = first_output_at_least(u.ow, w + 1, TapKey<M>{cols, false});
        M sum = 0;
        for (std::int64_t oh = oh0; oh < oh1; ++oh) {
            const LinearTaps<M> ht = rows.at(oh);
            for (std::int64_t ow = ow0; ow < ow1; ++ow) {
                const LinearTaps<M> wt = cols.at(ow);
                const M v = gp[(oh * u.ow + ow) * out.pixel_stride];
                // The CPU loop's four scatters of this output, in its order.
                if (ht.i0 == h && wt.i0 == w) sum += ht.l0 * wt.l0 * v;
                if (ht.i0 == h && wt.i1 == w) sum += ht.l0 * wt.l1 * v;
                if (ht.i1 == h && wt.i0 == w) sum += ht.l1 * wt.l0 * v;
                if (ht.i1 == h && wt.i1 == w) sum += ht.l1 * wt.l1 * v;
            }
        }
        dx[i] = static_cast<T>(sum);
    }
}

inline void check_upsample_geometry(const char* launcher, const UpsampleGeometry& u) {
    if (u.planes < 0 || u.ih < 0 || u.iw < 0 || u.oh < 0 || u.ow < 0) {
        throw std::invalid_argument(std::string(launcher) + ": negative size in the upsampling geometry");
    }
}

template <class T>
void launch_upsample2d_forward(bool bilinear, const T* x, T* y, const UpsampleGeometry& u, Stream stream) {
    check_upsample_geometry("launch_upsample2d_forward", u);
    const std::int64_t n = u.planes * u.oh * u.ow;
    if (n == 0) return;
    auto kernel = bilinear ? &upsample_bilinear2d_forward_kernel<T> : &upsample_nearest2d_forward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, x, y, u);
}

template <class T>
void launch_upsample2d_backward(bool bilinear, const T* g, T* dx, const UpsampleGeometry& u, Stream stream) {
    check_upsample_geometry("launch_upsample2d_backward", u);
    const std::int64_t n = u.planes * u.ih * u.iw;
    if (n == 0) return;
    auto kernel = bilinear ? &upsample_bilinear2d_backward_kernel<T> : &upsample_nearest2d_backward_kernel<T>;
    PNEUMA_LAUNCH(kernel, elementwise_blocks(n), kElementwiseThreads, 0, stream, g, dx, u);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern
