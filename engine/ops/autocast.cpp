#include "engine/ops/autocast.h"

namespace pneuma::autocast {

namespace {
thread_local std::optional<DType> current_dtype;
}

Guard::Guard(DType dtype, bool enabled) : previous_(current_dtype) {
  PNEUMA_CHECK(dtype == DType::BFloat16, "autocast: the lower-precision dtype must be bfloat16, got ",
               dtype_name(dtype));
  current_dtype = enabled ? std::optional<DType>(dtype) : std::nullopt;
}

Guard::~Guard() { current_dtype = previous_; }

std::optional<DType> active_dtype() { return current_dtype; }

Tensor to_lower_precision(const Tensor& t) {
  if (!current_dtype || !t.defined() || t.dtype() != DType::Float32) return t;
  return t.to(*current_dtype);
}

Tensor to_float32(const Tensor& t) {
  if (!current_dtype || !t.defined() || t.dtype() != *current_dtype) return t;
  return t.to(DType::Float32);
}

}  // namespace pneuma::autocast
