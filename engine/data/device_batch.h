#pragma once
// Batches in page-locked (pinned) host memory and their upload to a CUDA device, as
// PyTorch's DataLoader(pin_memory=True) + tensor.to(device, non_blocking=True): the loader's
// workers write each batch straight into pinned memory, and the upload is enqueued on the
// device's stream without waiting, so it overlaps with the work already queued there.
#include "engine/core/tensor.h"
#include "engine/data/loader.h"

namespace pneuma::data {

// Whether pinned memory can be used here: a CUDA build with a visible device.
bool pinned_memory_available();
// An uninitialized contiguous CPU tensor in pinned memory; an Error where
// pinned_memory_available() is false.
Tensor pinned_empty(const Shape& shape, DType dtype);

// The batch on `device` (the batch itself for the CPU). A pinned batch (Batch::pinned) is
// uploaded asynchronously; any other with a synchronous copy.
Batch to_device(const Batch& batch, Device device);

}  // namespace pneuma::data
