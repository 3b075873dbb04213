#pragma once
// Mixed precision as torch.autocast: inside an autocast::Guard(DType::BFloat16) the ops on
// PyTorch's lower-precision list (conv2d, conv_transpose2d, linear, matmul) cast their float32
// operands to bfloat16 and compute there (float32 accumulation in oneDNN / cuDNN / cuBLAS), and
// the losses cast bfloat16 inputs up to float32. Every other op runs in its inputs' dtype.
// Parameters stay float32 (the master weights): the casts are recorded ops, so their gradients
// arrive back in float32. float64 tensors are never cast, as in PyTorch.
//
// The state is per thread, like PyTorch's: a guard affects the ops its own thread records.
#include <initializer_list>
#include <optional>

#include "engine/core/tensor.h"

namespace pneuma::autocast {

class Guard {
 public:
  // dtype: the lower precision; only DType::BFloat16 is supported. enabled = false turns
  // autocast off inside an enclosing guard (torch.autocast(enabled=False)).
  explicit Guard(DType dtype = DType::BFloat16, bool enabled = true);
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  std::optional<DType> previous_;
};

// The lower-precision dtype of the innermost enabled guard on this thread, if any.
std::optional<DType> active_dtype();

// For ops on the lower-precision list: t cast to the active dtype when autocast is on and t is
// float32; t itself otherwise (undefined tensors pass through).
Tensor to_lower_precision(const Tensor& t);

// For ops on the float32 list (losses): t cast to float32 when autocast is on and t is a
// lower-precision tensor; t itself otherwise.
Tensor to_float32(const Tensor& t);

}  // namespace pneuma::autocast
