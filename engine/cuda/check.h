#pragma once
// Every CUDA runtime call goes through PNEUMA_CUDA_CHECK, which throws pneuma::Error
// naming file:line, the call and CUDA's own message.
#include <cuda_runtime.h>

#include "engine/core/error.h"

#define PNEUMA_CUDA_CHECK(call)                                                              \
  do {                                                                                       \
    const cudaError_t pneuma_status_ = (call);                                               \
    if (pneuma_status_ != cudaSuccess)                                                       \
      PNEUMA_FAIL(__FILE__, ":", __LINE__, ": ", #call, " failed: ",                         \
                  cudaGetErrorName(pneuma_status_), ": ", cudaGetErrorString(pneuma_status_)); \
  } while (0)
