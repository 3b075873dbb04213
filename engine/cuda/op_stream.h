#pragma once
// Where CUDA ops run: every op on a device is queued on that device's context stream, in order,
// so an op may free or reuse memory (the caching allocator) as soon as it has queued its work.
#include <cuda_runtime.h>

#include "engine/core/device.h"

namespace pneuma::cuda {

// The stream of `device`'s context, with `device` made the current device so that kernel
// launches and library calls that follow go to it.
cudaStream_t op_stream(Device device);

}  // namespace pneuma::cuda
