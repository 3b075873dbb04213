#include "engine/ops/elementwise/elementwise_cpu.h"

#include <type_traits>

#include "engine/cpu/loops.h"
#include "engine/cpu/parallel.h"

namespace pneuma::cpu {

using kern::BinaryOp;
using kern::UnaryOp;
using kern::with_binary_op;
using kern::with_unary_op;

namespace {

// Operands of the output's shape laid out densely and exactly as the output (contiguous,
// channels-last, ...) are read as flat arrays; anything else (broadcast operands included) goes
// through the strided iterator.
bool flat_like(const Tensor& t, const Tensor& out) {
  return t.shape() == out.shape() && same_element_offsets(t.shape(), t.strides(), out.strides()) &&
         t.is_non_overlapping_and_dense();
}

// The flat loops of the bfloat16 ops (PNEUMA_BF16_LOOP: with an AVX2 clone); float32/float64 run
// the loops inline in the dispatch below. Each covers [0, n) of pointers already offset to a chunk.
template <UnaryOp OP>
PNEUMA_BF16_LOOP void bf16_unary_forward(const bfloat16* x, bfloat16* y, int64_t n, const kern::UnaryParams& p) {
  for (int64_t i = 0; i < n; ++i) y[i] = kern::unary_forward<OP, bfloat16>(x[i], p);
}

// x or y is nullptr when the op's formula does not read it (and is then not read).
template <UnaryOp OP>
PNEUMA_BF16_LOOP void bf16_unary_backward(const bfloat16* x, const bfloat16* y, const bfloat16* g, bfloat16* dx,
                                          int64_t n, const kern::UnaryParams& p) {
  const bfloat16 zero(0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const bfloat16 xi = kern::unary_backward_needs_input<OP>() ? x[i] : zero;
    const bfloat16 yi = kern::unary_backward_needs_output<OP>() ? y[i] : zero;
    dx[i] = kern::unary_backward<OP, bfloat16>(xi, yi, g[i], p);
  }
}

template <BinaryOp OP, class R>
PNEUMA_BF16_LOOP void bf16_binary_forward(const bfloat16* a, const bfloat16* b, R* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = kern::binary_forward<OP, bfloat16>(a[i], b[i]);
}

template <BinaryOp OP, class R>
PNEUMA_BF16_LOOP void bf16_binary_forward_scalar(const bfloat16* a, bfloat16 b, R* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = kern::binary_forward<OP, bfloat16>(a[i], b);
}

}  // namespace

void unary_forward(UnaryOp op, const Tensor& x, const Tensor& y, const kern::UnaryParams& p) {
  with_unary_op(op, [&]<UnaryOp OP>() {
    dispatch_floating_and_bfloat16(x.dtype(), "unary", [&]<class T>() {
      T* out = y.data<T>();
      const T* in = x.data<T>();
      if (flat_like(x, y)) {
        parallel_for(x.numel(), [&](int64_t begin, int64_t end) {
          if constexpr (std::is_same_v<T, bfloat16>) {
            bf16_unary_forward<OP>(in + begin, out + begin, end - begin, p);
          } else {
            for (int64_t i = begin; i < end; ++i) out[i] = kern::unary_forward<OP, T>(in[i], p);
          }
        });
        return;
      }
      for_each_offset<2>(x.shape(), {y.strides(), x.strides()},
                         [&](const std::array<int64_t, 2>& o) {
                           out[o[0]] = kern::unary_forward<OP, T>(in[o[1]], p);
                         });
    });
  });
}

void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, const Tensor& dx,
                    const kern::UnaryParams& p) {
  const Tensor xd = x.defined() ? x.laid_out_like(dx) : x;
  const Tensor yd = y.defined() ? y.laid_out_like(dx) : y;
  const Tensor gd = g.laid_out_like(dx);
  with_unary_op(op, [&]<UnaryOp OP>() {
    dispatch_floating_and_bfloat16(g.dtype(), "unary backward", [&]<class T>() {
      const T* xs = xd.defined() ? xd.data<T>() : nullptr;
      const T* ys = yd.defined() ? yd.data<T>() : nullptr;
      const T* gs = gd.data<T>();
      T* out = dx.data<T>();
      PNEUMA_CHECK((xs || !kern::unary_backward_needs_input<OP>()) && (ys || !kern::unary_backward_needs_output<OP>()),
                   "unary backward: the saved input or output the formula reads is missing");
      parallel_for(g.numel(), [&](int64_t begin, int64_t end) {
        if constexpr (std::is_same_v<T, bfloat16>) {
          bf16_unary_backward<OP>(xs ? xs + begin : nullptr, ys ? ys + begin : nullptr, gs + begin, out + begin,
                                  end - begin, p);
        } else {
          for (int64_t i = begin; i < end; ++i)
            out[i] = kern::unary_backward<OP, T>(xs ? xs[i] : T(0), ys ? ys[i] : T(0), gs[i], p);
        }
      });
    });
  });
}

void binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  with_binary_op(op, [&]<BinaryOp OP>() {
    dispatch_floating_and_bfloat16(a.dtype(), "binary", [&]<class T>() {
      using R = decltype(kern::binary_forward<OP, T>(T(), T()));
      const T* as = a.data<T>();
      const T* bs = b.data<T>();
      R* os = out.data<R>();
      const int64_t n = out.numel();
      if (flat_like(a, out)) {
        if (flat_like(b, out)) {
          parallel_for(n, [&](int64_t begin, int64_t end) {
            if constexpr (std::is_same_v<T, bfloat16>) {
              bf16_binary_forward<OP, R>(as + begin, bs + begin, os + begin, end - begin);
            } else {
              for (int64_t i = begin; i < end; ++i) os[i] = kern::binary_forward<OP, T>(as[i], bs[i]);
            }
          });
          return;
        }
        if (b.numel() == 1) {
          const T s = bs[0];
          parallel_for(n, [&](int64_t begin, int64_t end) {
            if constexpr (std::is_same_v<T, bfloat16>) {
              bf16_binary_forward_scalar<OP, R>(as + begin, s, os + begin, end - begin);
            } else {
              for (int64_t i = begin; i < end; ++i) os[i] = kern::binary_forward<OP, T>(as[i], s);
            }
          });
          return;
        }
      }
      const Shape& shape = out.shape();
      for_each_offset<3>(shape, {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)},
                         [&](const std::array<int64_t, 3>& o) {
                           os[o[0]] = kern::binary_forward<OP, T>(as[o[1]], bs[o[2]]);
                         });
    });
  });
}

}  // namespace pneuma::cpu
