#pragma once
// One context per CUDA device, created on first use: the stream every op runs on,
// the cuDNN and cuBLAS handles bound to it, the caching allocator and a growable
// workspace. Contexts are destroyed by shutdown(), registered with atexit when the
// first one is created, so handles go before the CUDA runtime unloads.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <memory>

#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/conv_plan.h"

namespace pneuma::cuda {

class DeviceContext {
 public:
  static DeviceContext& get(int device);

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  CachingAllocator& allocator() { return *allocator_; }
  // cuDNN convolution algorithms chosen on this device, one search per problem.
  ConvAlgorithmCache& conv_algorithms() { return conv_algorithms_; }
  // Scratch memory for cuDNN/cuBLAS, grown on demand and kept.
  void* workspace(size_t nbytes);
  // TF32 tensor-core math for float32 GEMMs and convolutions; off by default, as the
  // results then differ from float32 ones.
  void set_tf32(bool enabled);
  bool tf32() const { return tf32_; }

  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

 private:
  explicit DeviceContext(int device);

  int device_;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::unique_ptr<CachingAllocator> allocator_;
  ConvAlgorithmCache conv_algorithms_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  bool tf32_ = false;
};

// Destroys every context (handles, streams, cached memory). Idempotent.
void shutdown();

}  // namespace pneuma::cuda
