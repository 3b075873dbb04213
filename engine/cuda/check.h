#pragma once
// Every CUDA runtime, cuDNN and cuBLAS call goes through these macros, which throw
// pneuma::Error naming file:line, the call and the library's own message.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "engine/core/error.h"

#define PNEUMA_CUDA_CHECK(call)                                                              \
  do {                                                                                       \
    const cudaError_t pneuma_status_ = (call);                                               \
    if (pneuma_status_ != cudaSuccess)                                                       \
      PNEUMA_FAIL(__FILE__, ":", __LINE__, ": ", #call, " failed: ",                         \
                  cudaGetErrorName(pneuma_status_), ": ", cudaGetErrorString(pneuma_status_)); \
  } while (0)

#define PNEUMA_CUDNN_CHECK(call)                                                                      \
  do {                                                                                                \
    const cudnnStatus_t pneuma_status_ = (call);                                                      \
    if (pneuma_status_ != CUDNN_STATUS_SUCCESS)                                                       \
      PNEUMA_FAIL(__FILE__, ":", __LINE__, ": ", #call, " failed: ", cudnnGetErrorString(pneuma_status_)); \
  } while (0)

#define PNEUMA_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                                \
    const cublasStatus_t pneuma_status_ = (call);                                                     \
    if (pneuma_status_ != CUBLAS_STATUS_SUCCESS)                                                      \
      PNEUMA_FAIL(__FILE__, ":", __LINE__, ": ", #call, " failed: ", cublasGetStatusName(pneuma_status_), \
                  ": ", cublasGetStatusString(pneuma_status_));                                        \
  } while (0)
