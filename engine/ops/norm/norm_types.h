#pragma once
// The element types of a batch norm: T for the data (input, output, their gradients), P for the
// parameters (weight, bias, their gradients, the running statistics) and opmath_t<T> for the
// statistics a batch is normalized with (batch mean and variance, or a copy of the running ones).
// P is T, or float for bfloat16 data with float32 parameters - what torch.autocast leaves a
// BatchNorm with (its parameters and buffers stay float32, its input arrives in bfloat16). The
// statistics of bfloat16 data are float32 whatever P: rounding them to bfloat16 would shift every
// normalized value by up to |mean| 2^-9 / std.
#include <initializer_list>
#include <type_traits>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"

namespace pneuma {

// The dtype of the statistics a batch is normalized with: float32 for bfloat16 data.
constexpr DType batch_norm_stats_dtype(DType data) { return data == DType::BFloat16 ? DType::Float32 : data; }

// Calls fn.template operator()<T, P>(). data: the input's dtype; params: the dtype shared by the
// defined parameters (batch_norm checks they agree).
template <class Fn>
void dispatch_batch_norm_types(DType data, DType params, const char* op, Fn&& fn) {
  dispatch_floating_and_bfloat16(data, op, [&]<class T>() {
    if constexpr (std::is_same_v<T, bfloat16>) {
      if (params == DType::Float32) {
        fn.template operator()<T, float>();
        return;
      }
    }
    PNEUMA_CHECK(params == data, op, ": parameters and statistics of dtype ", dtype_name(params),
                 " do not go with a ", dtype_name(data), " input");
    fn.template operator()<T, T>();
  });
}

// Calls fn.template operator()<P, M>() for running statistics of dtype `running` (P) updated from
// batch statistics of dtype `stats` (M): P = M, or bfloat16 running statistics of bfloat16 data
// updated from float32 batch statistics.
template <class Fn>
void dispatch_batch_norm_running_types(DType running, DType stats, const char* op, Fn&& fn) {
  dispatch_floating(stats, op, [&]<class M>() {
    if constexpr (std::is_same_v<M, float>) {
      if (running == DType::BFloat16) {
        fn.template operator()<bfloat16, M>();
        return;
      }
    }
    PNEUMA_CHECK(running == stats, op, ": running statistics of dtype ", dtype_name(running),
                 " do not go with batch statistics of dtype ", dtype_name(stats));
    fn.template operator()<M, M>();
  });
}

// The dtype of a call's parameters: the first defined one's, `otherwise` when none is.
inline DType batch_norm_param_dtype(std::initializer_list<const Tensor*> tensors, DType otherwise) {
  for (const Tensor* t : tensors)
    if (t->defined()) return t->dtype();
  return otherwise;
}

}  // namespace pneuma
