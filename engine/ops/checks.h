#pragma once
// Argument checks shared by all ops. Every message names the op and the tensors'
// shapes/dtypes/devices, so a user sees what went wrong in one line.
#include <initializer_list>

#include "engine/core/tensor.h"

namespace pneuma::ops {

inline void check_defined(const char* op, const Tensor& t, const char* what = "input") {
  PNEUMA_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

inline void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  PNEUMA_CHECK(a.device() == b.device(), op, ": device mismatch: ", a.str(), " vs ", b.str(),
               " (no implicit copies; move one with .to(device))");
}

inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  PNEUMA_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.str(), " vs ", b.str());
}

inline void check_floating(const char* op, const Tensor& t) {
  PNEUMA_CHECK(is_floating(t.dtype()), op, ": expected a floating-point tensor (float32, float64 or bfloat16), got ", t.str());
}

inline void check_dim(const char* op, const Tensor& t, int64_t ndim, const char* layout) {
  PNEUMA_CHECK(t.dim() == ndim, op, ": expected a ", ndim, "-d input (", layout, "), got ", t.str());
}

// Ops without a CUDA implementation say so instead of silently copying to the CPU.
inline void require_cpu(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    PNEUMA_CHECK(!t->defined() || t->device().is_cpu(), op, ": no CUDA implementation yet for ",
                 t->str(), " (there is no implicit CPU fallback)");
}

}  // namespace pneuma::ops
