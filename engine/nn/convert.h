#pragma once
// Moving a whole module to another dtype or device, as torch's module.to(...): each
// parameter and buffer is converted in place (its TensorImpl takes the new storage, as
// PyTorch's `param.data = ...`), so the handles that layers, optimizers and callers hold
// stay valid. Gradients are dropped. Only floating tensors change dtype (num_batches_tracked
// stays int64); every tensor changes device.
#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/nn/module.h"

namespace pneuma::nn {

void to_dtype(Module& module, DType dtype);
void to_device(Module& module, Device device);

}  // namespace pneuma::nn
