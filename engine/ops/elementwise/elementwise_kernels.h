#pragma once
// Tensor-level launches of the elementwise kernels (kernels/elementwise/elementwise.cuh): the
// operands' shapes and strides become an offset calculator, the op and dtype pick the kernel
// instantiation. Compiled by nvcc in the CUDA dispatch files, where the tensors live on a GPU and
// `stream` is the device context's, and by the host compiler in the emulated kernel tests, where
// the tensors are CPU tensors and the kernels run in the emulator: the tests run this code too.
#include <array>

#include "engine/core/tensor.h"
#include "engine/cpu/copy.h"
#include "engine/cpu/loops.h"
#include "kernels/elementwise/elementwise.cuh"

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

// The strides of an optional operand: its own, or zeros (never read) when it is undefined.
inline Strides strides_or_zero(const Tensor& t, const Shape& shape) {
  return t.defined() ? t.strides() : Strides(shape.size(), 0);
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// y = f(x); x and y have the same shape, any strides.
inline void run_unary_forward(UnaryOp op, const Tensor& x, const Tensor& y, const UnaryParams& p, Stream stream) {
  const auto offsets = make_memory_order_offset_calculator<2>(y.shape(), {y.strides(), x.strides()});
  with_unary_op(op, [&]<UnaryOp OP>() {
    dispatch_floating_and_bfloat16(x.dtype(), "elementwise (CUDA)", [&]<class T>() {
      launch_unary_forward<OP, T>(x.data<T>(), y.data<T>(), offsets, y.numel(), p, stream);
    });
  });
}

// dx = f'(x, y) * g; x or y may be undefined when the op's formula does not read it.
inline void run_unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, const Tensor& dx,
                               const UnaryParams& p, Stream stream) {
  const Shape& shape = dx.shape();
  const auto offsets = make_memory_order_offset_calculator<4>(
      shape, {dx.strides(), strides_or_zero(x, shape), strides_or_zero(y, shape), g.strides()});
  with_unary_op(op, [&]<UnaryOp OP>() {
    dispatch_floating_and_bfloat16(g.dtype(), "elementwise backward (CUDA)", [&]<class T>() {
      launch_unary_backward<OP, T>(data_or_null<T>(x), data_or_null<T>(y), g.data<T>(), dx.data<T>(), offsets,
                                   dx.numel(), p, stream);
    });
  });
}

// out = a (op) b, a and b broadcast to out's shape.
inline void run_binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, Stream stream) {
  const Shape& shape = out.shape();
  const auto offsets = make_memory_order_offset_calculator<3>(
      shape, {out.strides(), cpu::broadcast_strides(a, shape), cpu::broadcast_strides(b, shape)});
  with_binary_op(op, [&]<BinaryOp OP>() {
    dispatch_floating_and_bfloat16(a.dtype(), "elementwise (CUDA)", [&]<class T>() {
      launch_binary_forward<OP, T>(a.data<T>(), b.data<T>(), out.data<binary_result_t<OP, T>>(), offsets,
                                   out.numel(), stream);
    });
  });
}

// dst = src converted to dst's dtype, for tensors of one shape and any strides. A copy within one
// dtype moves elements as unsigned integers of the dtype's size (so bfloat16/float16 copy too);
// conversions are kern::convert_element, as in the CPU copy, between float32/float64/bfloat16/
// int64/uint8/bool (bfloat16 through float, never double, for the float32 <-> bfloat16 casts).
inline void run_copy(const Tensor& src, const Tensor& dst, Stream stream) {
  PNEUMA_CHECK(src.shape() == dst.shape(), "copy: shape ", shape_str(src.shape()), " vs ", shape_str(dst.shape()));
  const auto offsets = make_memory_order_offset_calculator<2>(dst.shape(), {dst.strides(), src.strides()});
  const int64_t n = dst.numel();
  if (src.dtype() == dst.dtype()) {
    return cpu::dispatch_element_bits(src.dtype(), "copy (CUDA)", [&]<class U>() {
      launch_convert<U, U>(static_cast<const U*>(src.raw_data()), static_cast<U*>(dst.raw_data()), offsets, n, stream);
    });
  }
  const char* op = "to(dtype) (CUDA)";
  dispatch_all(src.dtype(), op, [&]<class S>() {
    dispatch_all(dst.dtype(), op, [&]<class D>() {
      launch_convert<D, S>(src.data<S>(), dst.data<D>(), offsets, n, stream);
    });
  });
}

// out = condition ? a : b, all three broadcast to out's shape.
inline void run_where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out, Stream stream) {
  const Shape& shape = out.shape();
  const auto offsets = make_memory_order_offset_calculator<4>(
      shape, {out.strides(), cpu::broadcast_strides(condition, shape), cpu::broadcast_strides(a, shape),
              cpu::broadcast_strides(b, shape)});
  dispatch_all(a.dtype(), "where (CUDA)", [&]<class T>() {
    launch_where<T>(condition.data<bool>(), a.data<T>(), b.data<T>(), out.data<T>(), offsets, out.numel(), stream);
  });
}

// out = mask ? value : x, x and mask broadcast to out's shape.
inline void run_masked_fill(const Tensor& x, const Tensor& mask, double value, const Tensor& out, Stream stream) {
  const Shape& shape = out.shape();
  const auto offsets = make_memory_order_offset_calculator<3>(
      shape, {out.strides(), cpu::broadcast_strides(x, shape), cpu::broadcast_strides(mask, shape)});
  dispatch_all(x.dtype(), "masked_fill (CUDA)", [&]<class T>() {
    launch_masked_fill<T>(x.data<T>(), mask.data<bool>(), static_cast<T>(value), out.data<T>(), offsets,
                          out.numel(), stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern
