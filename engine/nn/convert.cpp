#include "engine/nn/convert.h"

#include "engine/autograd/grad_mode.h"

namespace pneuma::nn {

namespace {
// Rebinds t's implementation to c's data, keeping t's identity and requires_grad flag.
void rebind(const Tensor& t, const Tensor& c) {
  TensorImpl& impl = t.impl();
  PNEUMA_CHECK(t.is_leaf(), "module conversion: ", t.str(), " is not a leaf tensor");
  impl.storage = c.storage();
  impl.offset = c.offset();
  impl.shape = c.shape();
  impl.strides = c.strides();
  impl.dtype = c.dtype();
  impl.grad.reset();
  impl.grad_accumulator.reset();
}
}  // namespace

void to_dtype(Module& module, DType dtype) {
  PNEUMA_CHECK(is_floating(dtype), "to_dtype: modules convert to float32 or float64, not ", dtype_name(dtype));
  NoGradGuard no_grad;
  for (const auto& [name, t] : module.state_dict())
    if (is_floating(t.dtype()) && t.dtype() != dtype) rebind(t, t.detach().to(dtype).contiguous());
}

void to_device(Module& module, Device device) {
  NoGradGuard no_grad;
  for (const auto& [name, t] : module.state_dict())
    if (t.device() != device) rebind(t, t.detach().to(device).contiguous());
}

}  // namespace pneuma::nn
