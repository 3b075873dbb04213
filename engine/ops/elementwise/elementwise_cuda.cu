// The elementwise ops on CUDA tensors: our kernels, launched on the device context's stream.
#include "engine/cuda/op_stream.h"
#include "engine/ops/elementwise/elementwise_cuda.h"
#include "engine/ops/elementwise/elementwise_kernels.h"

namespace pneuma::cuda {

void unary_forward(kern::UnaryOp op, const Tensor& x, const Tensor& y, const kern::UnaryParams& p) {
  kern::run_unary_forward(op, x, y, p, op_stream(y.device()));
}

void unary_backward(kern::UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, const Tensor& dx,
                    const kern::UnaryParams& p) {
  kern::run_unary_backward(op, x, y, g, dx, p, op_stream(dx.device()));
}

void binary_forward(kern::BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  kern::run_binary_forward(op, a, b, out, op_stream(out.device()));
}

void copy_strided(const Tensor& src, const Tensor& dst) {
  PNEUMA_CHECK(src.device() == dst.device(), "copy: ", src.str(), " and ", dst.str(),
               " are on different devices (use to(device))");
  kern::run_copy(src, dst, op_stream(dst.device()));
}

}  // namespace pneuma::cuda
