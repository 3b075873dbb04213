#pragma once
// Every CUDA runtime, cuDNN and cuBLAS call goes through these macros, which throw
// pneuma::Error naming file:line, the call and the library's own message.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "engine/core/error.h"

namespace pneuma::cuda {

// The one message of a failed CUDA runtime call or kernel launch (kernels/portable.cuh's
// check_launch): "file:line: <what> failed: <error name>: <CUDA's description>".
[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* file, int line, const char* what) {
  PNEUMA_FAIL(file, ":", line, ": ", what, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status));
}

// After a kernel launch: the error it left (bad configuration, too much shared memory, no
// device), thrown as above naming the kernel and the launch site. Reading it clears it.
inline void check_kernel_launch(const char* kernel, const char* file, int line) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw_cuda_error(status, file, line, ("launch of " + std::string(kernel)).c_str());
}

}  // namespace pneuma::cuda

#define PNEUMA_CUDA_CHECK(call)                                                      \
  do {                                                                               \
    const cudaError_t pneuma_status_ = (call);                                       \
    if (pneuma_status_ != cudaSuccess)                                               \
      ::pneuma::cuda::throw_cuda_error(pneuma_status_, __FILE__, __LINE__, #call);   \
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
