#include "engine/ops/dropout/dropout_cpu.h"

#include "engine/core/random.h"
#include "engine/cpu/parallel.h"

namespace pneuma::cpu {

namespace {
// The scale in the tensor's own precision, as PyTorch computes it (1 / (1 - p) in T).
template <class T>
T scale_of(double p) {
  return T(1) / static_cast<T>(1.0 - p);
}
}  // namespace

void dropout_forward(const Tensor& x, double p, uint64_t seed, const Tensor& y, const Tensor& mask) {
  const Tensor xd = x.detach().contiguous();
  dispatch_floating(x.dtype(), "dropout", [&]<class T>() {
    const T* in = xd.data<T>();
    T* out = y.data<T>();
    bool* keep = mask.data<bool>();
    const T scale = scale_of<T>(p);
    parallel_for(x.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        keep[i] = random::uniform(seed, static_cast<uint64_t>(i)) >= p;
        out[i] = keep[i] ? in[i] * scale : T(0);
      }
    });
  });
}

void dropout_backward(const Tensor& g, const Tensor& mask, double p, const Tensor& dx) {
  const Tensor gd = g.detach().contiguous();
  dispatch_floating(g.dtype(), "dropout backward", [&]<class T>() {
    const T* gs = gd.data<T>();
    const bool* keep = mask.data<bool>();
    T* out = dx.data<T>();
    const T scale = scale_of<T>(p);
    parallel_for(g.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = keep[i] ? gs[i] * scale : T(0);
    });
  });
}

}  // namespace pneuma::cpu
