// matmul/linear on CUDA tensors: cuBLAS GEMMs on the device context's handle (bound to its stream),
// float32, float64 and bfloat16 (float32 accumulation).
// Everything about layouts is decided by ops::plan_gemm, host code tested without a GPU; this file
// only turns a plan into cuBLAS calls.
#include <cublas_v2.h>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/op_stream.h"
#include "engine/ops/elementwise/elementwise_kernels.h"
#include "engine/ops/linalg/gemm_plan.h"
#include "engine/ops/linalg/linalg_cuda.h"

namespace pneuma::cuda {

namespace {

cublasOperation_t operation(const ops::GemmOperand& operand) { return operand.transpose ? CUBLAS_OP_T : CUBLAS_OP_N; }

// cuBLAS's element type, compute type and scalar type (alpha, beta) for the tensor dtype T. bfloat16
// A/B/C multiply with float32 accumulation and float scalars (CUBLAS_COMPUTE_32F), as torch does;
// TF32 only ever applies to float32 operands.
template <class T>
struct GemmTypes;
template <>
struct GemmTypes<float> {
  using Scalar = float;
  static constexpr cudaDataType_t data = CUDA_R_32F;
  static cublasComputeType_t compute(bool tf32) { return tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F; }
};
template <>
struct GemmTypes<double> {
  using Scalar = double;
  static constexpr cudaDataType_t data = CUDA_R_64F;
  static cublasComputeType_t compute(bool) { return CUBLAS_COMPUTE_64F; }
};
template <>
struct GemmTypes<bfloat16> {
  using Scalar = float;
  static constexpr cudaDataType_t data = CUDA_R_16BF;
  static cublasComputeType_t compute(bool) { return CUBLAS_COMPUTE_32F; }
};

template <class T>
void run_plan(const ops::GemmPlan& plan, const T* a, const T* b, T* c, bool accumulate, bool tf32,
              cublasHandle_t handle) {
  using Scalar = typename GemmTypes<T>::Scalar;
  const cudaDataType_t type = GemmTypes<T>::data;
  const cublasComputeType_t compute = GemmTypes<T>::compute(tf32);
  const Scalar alpha = 1, beta = accumulate ? 1 : 0;
  const int m = static_cast<int>(plan.n), n = static_cast<int>(plan.m), k = static_cast<int>(plan.k);
  const int ld_first = static_cast<int>(plan.first.ld), ld_second = static_cast<int>(plan.second.ld);
  const int ldc = static_cast<int>(plan.ldc);
  if (plan.uniform_batch) {
    PNEUMA_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        handle, operation(plan.first), operation(plan.second), m, n, k, &alpha, b, type, ld_first, plan.stride_b, a,
        type, ld_second, plan.stride_a, &beta, c, type, ldc, plan.stride_c, static_cast<int>(plan.batch), compute,
        CUBLAS_GEMM_DEFAULT));
    return;
  }
  for (const auto& o : plan.offsets) {
    PNEUMA_CUBLAS_CHECK(cublasGemmEx(handle, operation(plan.first), operation(plan.second), m, n, k, &alpha,
                                     b + o[1], type, ld_first, a + o[0], type, ld_second, &beta, c + o[2], type, ldc,
                                     compute, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace

void gemm(const Tensor& a_in, const Tensor& b_in, const Tensor& out, bool accumulate) {
  if (out.numel() == 0) return;
  const cudaStream_t stream = op_stream(out.device());
  if (a_in.size(-1) == 0) {  // an empty sum: zeros, or out unchanged
    if (!accumulate)
      PNEUMA_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.numel() * dtype_size(out.dtype()), stream));
    return;
  }
  const Tensor a = ops::gemm_readable(a_in) ? a_in : a_in.detach().contiguous();
  const Tensor b = ops::gemm_readable(b_in) ? b_in : b_in.detach().contiguous();
  const ops::GemmPlan plan = ops::plan_gemm(a, b, out);
  DeviceContext& context = DeviceContext::get(out.device().index);
  dispatch_floating_and_bfloat16(out.dtype(), "matmul (CUDA)", [&]<class T>() {
    run_plan<T>(plan, a.data<T>(), b.data<T>(), out.data<T>(), accumulate, context.tf32(), context.cublas());
  });
}

void fill_rows(const Tensor& row, const Tensor& out) {
  kern::run_copy(row.detach().expand(out.shape()), out, op_stream(out.device()));
}

}  // namespace pneuma::cuda
