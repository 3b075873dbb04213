#pragma once
// CUDA entry points of matmul/linear, with the signatures of their CPU twins in linalg_cpu.h:
// cuBLAS GEMMs (TF32 only when the device context's switch is on; bfloat16 with float32
// accumulation) planned by gemm_plan.h.
// Defined in linalg_cublas.cu with the CUDA backend, in engine/cuda/without_cuda.cpp otherwise.
#include "engine/core/tensor.h"

namespace pneuma::cuda {

// out[batch..., m, n] = a[..., m, k] @ b[..., k, n] (+ out when accumulate), as cpu::gemm.
void gemm(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate = false);
// Writes row (1-d, n elements) into every row of out ([rows, n], contiguous).
void fill_rows(const Tensor& row, const Tensor& out);

}  // namespace pneuma::cuda
