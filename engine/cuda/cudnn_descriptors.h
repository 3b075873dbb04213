#pragma once
// RAII owners of cuDNN's descriptors, set from the plain specs of engine/cuda/conv_plan.h. Every
// cuDNN call is checked (engine/cuda/check.h); destruction cannot fail loudly, so it is not.
#include <cudnn.h>

#include <array>

#include "engine/core/dtype.h"
#include "engine/cuda/check.h"
#include "engine/cuda/conv_plan.h"

namespace pneuma::cuda {

inline cudnnDataType_t cudnn_data_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return CUDNN_DATA_FLOAT;
    case DType::Float64: return CUDNN_DATA_DOUBLE;
    case DType::BFloat16: return CUDNN_DATA_BFLOAT16;
    default: break;
  }
  PNEUMA_FAIL("cuDNN: no data type for ", dtype_name(dtype), " tensors");
}

// The math type of a convolution: plain FMA for float32 without TF32 (cuDNN would pick TF32
// tensor cores by default on Ampere and later), tensor ops where TF32 is allowed and for
// bfloat16 (whose cuDNN kernels are tensor-core kernels), cuDNN's default for float64.
inline cudnnMathType_t cudnn_math_type(DType dtype, bool allow_tensor_cores) {
  if (!allow_tensor_cores) return CUDNN_FMA_MATH;
  return dtype == DType::Float32 || dtype == DType::BFloat16 ? CUDNN_TENSOR_OP_MATH : CUDNN_DEFAULT_MATH;
}

inline cudnnTensorFormat_t cudnn_tensor_format(ConvLayout layout) {
  return layout == ConvLayout::NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
}

class TensorDescriptor {
 public:
  TensorDescriptor() { PNEUMA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&descriptor_)); }
  TensorDescriptor(DType dtype, const std::array<int, 4>& dims, const std::array<int, 4>& strides) : TensorDescriptor() {
    set(dtype, dims, strides);
  }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(descriptor_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;

  void set(DType dtype, const std::array<int, 4>& dims, const std::array<int, 4>& strides) {
    PNEUMA_CUDNN_CHECK(cudnnSetTensorNdDescriptor(descriptor_, cudnn_data_type(dtype), 4, dims.data(), strides.data()));
  }
  cudnnTensorDescriptor_t get() const { return descriptor_; }

 private:
  cudnnTensorDescriptor_t descriptor_ = nullptr;
};

class FilterDescriptor {
 public:
  FilterDescriptor() { PNEUMA_CUDNN_CHECK(cudnnCreateFilterDescriptor(&descriptor_)); }
  ~FilterDescriptor() { cudnnDestroyFilterDescriptor(descriptor_); }
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;

  // dims [out_channels, in_channels / groups, kernel_h, kernel_w] (cuDNN takes them in this order
  // for either format), dense OIHW for NCHW and OHWI for NHWC.
  void set(DType dtype, const std::array<int, 4>& dims, ConvLayout layout) {
    PNEUMA_CUDNN_CHECK(cudnnSetFilter4dDescriptor(descriptor_, cudnn_data_type(dtype), cudnn_tensor_format(layout),
                                                  dims[0], dims[1], dims[2], dims[3]));
  }
  cudnnFilterDescriptor_t get() const { return descriptor_; }

 private:
  cudnnFilterDescriptor_t descriptor_ = nullptr;
};

class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor() { PNEUMA_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&descriptor_)); }
  ~ConvolutionDescriptor() { cudnnDestroyConvolutionDescriptor(descriptor_); }
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;

  // Cross-correlation (what deep learning calls convolution) on dtype data, accumulated in
  // spec.compute_dtype (float32 for bfloat16 data).
  void set(const ConvDescriptorSpec& spec, DType dtype) {
    PNEUMA_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(descriptor_, spec.padding[0], spec.padding[1], spec.stride[0],
                                                       spec.stride[1], spec.dilation[0], spec.dilation[1],
                                                       CUDNN_CROSS_CORRELATION, cudnn_data_type(spec.compute_dtype)));
    PNEUMA_CUDNN_CHECK(cudnnSetConvolutionGroupCount(descriptor_, spec.groups));
    PNEUMA_CUDNN_CHECK(cudnnSetConvolutionMathType(descriptor_, cudnn_math_type(dtype, spec.allow_tensor_cores)));
  }
  cudnnConvolutionDescriptor_t get() const { return descriptor_; }

 private:
  cudnnConvolutionDescriptor_t descriptor_ = nullptr;
};

// Everything one convolution's cuDNN calls take.
struct ConvDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;

  ConvDescriptors(const ConvDescriptorSpec& spec, DType dtype) {
    x.set(dtype, spec.x_dims, spec.x_strides);
    y.set(dtype, spec.y_dims, spec.y_strides);
    w.set(dtype, spec.w_dims, spec.layout);
    conv.set(spec, dtype);
  }
};

}  // namespace pneuma::cuda
