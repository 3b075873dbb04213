#include "engine/ops/dropout/dropout_cpu.h"

#include "engine/core/random.h"
#include "engine/cpu/parallel.h"
#include "kernels/dropout/dropout.cuh"

namespace pneuma::cpu {

// The per-element math (scale, one rounding for bfloat16) is the CUDA kernels'
// (kernels/dropout/dropout.cuh).

void dropout_forward(const Tensor& x, double p, uint64_t seed, const Tensor& y, const Tensor& mask) {
  const Tensor xd = x.detach().contiguous();
  dispatch_floating_and_bfloat16(x.dtype(), "dropout", [&]<class T>() {
    const T* in = xd.data<T>();
    T* out = y.data<T>();
    bool* keep = mask.data<bool>();
    const opmath_t<T> scale = kern::dropout_scale<T>(p);
    parallel_for(x.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        keep[i] = random::uniform(seed, static_cast<uint64_t>(i)) >= p;
        out[i] = kern::dropout_value(in[i], keep[i], scale);
      }
    });
  });
}

void dropout_backward(const Tensor& g, const Tensor& mask, double p, const Tensor& dx) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating_and_bfloat16(g.dtype(), "dropout backward", [&]<class T>() {
    const T* gs = gd.data<T>();
    const bool* keep = mask.data<bool>();
    T* out = dx.data<T>();
    const opmath_t<T> scale = kern::dropout_scale<T>(p);
    parallel_for(g.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = kern::dropout_value(gs[i], keep[i], scale);
    });
  });
}

}  // namespace pneuma::cpu
