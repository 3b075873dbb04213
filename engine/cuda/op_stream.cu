#include "engine/cuda/op_stream.h"

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"

namespace pneuma::cuda {

cudaStream_t op_stream(Device device) {
  PNEUMA_CHECK(device.is_cuda(), "op_stream: ", device.str(), " is not a CUDA device");
  DeviceContext& context = DeviceContext::get(device.index);
  PNEUMA_CUDA_CHECK(cudaSetDevice(device.index));
  return context.stream();
}

}  // namespace pneuma::cuda
