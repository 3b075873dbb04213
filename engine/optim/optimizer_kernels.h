#pragma once
// Tensor-level fused optimizer steps (kernels/optim/fused_update.cuh): gathers every parameter
// that has a gradient into one table per dtype and updates them all in one launch. Compiled by
// nvcc for optimizer_cuda.cu and by the host compiler for the emulated kernel tests, which run
// this code on CPU tensors against the CPU optimizer (see
// engine/ops/elementwise/elementwise_kernels.h).
#include <cstring>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/optim/optimizer.h"
#include "kernels/optim/fused_update.cuh"
#if defined(__CUDACC__)
#include "engine/cuda/pinned_memory.h"
#endif

namespace pneuma::kern {
inline namespace PNEUMA_KERNEL_ABI {

// The table on `device`, where the kernel reads it: the host buffer itself for CPU tensors (the
// emulator); on a GPU an asynchronous copy from page-locked memory, enqueued on the device's
// stream ahead of the kernel. The table changes every step (zero_grad drops the gradients, so
// their addresses do), and a plain Tensor::to(device) copy from pageable memory would wait for
// every op queued so far each step; this copy waits for nothing. The pinned block goes back to
// its cache (engine/cuda/pinned_memory.h) only once the copy has completed, and the device
// table is freed when the returned tensor goes, which the stream orders after the kernel.
template <class T>
Tensor fused_table_on(const std::vector<FusedParameter<T>>& entries, Device device) {
  const size_t bytes = entries.size() * sizeof(FusedParameter<T>);
  const Shape shape{static_cast<int64_t>(bytes)};
#if defined(__CUDACC__)
  if (device.is_cuda()) {
    void* block = cuda::pinned_malloc(bytes);
    std::memcpy(block, entries.data(), bytes);
    Tensor table = Tensor::empty(shape, DType::UInt8, device);
    try {
      cuda::copy_to_device_async(table.raw_data(), device.index, block, bytes);
    } catch (...) {
      cuda::pinned_free(block);
      throw;
    }
    cuda::pinned_free(block);
    return table;
  }
#endif
  Tensor host = Tensor::empty(shape, DType::UInt8);
  std::memcpy(host.raw_data(), entries.data(), bytes);
  return host.to(device);
}

// The parameter's gradient in the parameter's layout (a channels-last weight's gradient is
// channels-last), so the kernel walks both as flat arrays; checked as the CPU optimizer checks it.
inline Tensor fused_dense_grad(const char* optimizer, const Tensor& p) {
  PNEUMA_CHECK(p.grad().shape() == p.shape(), optimizer, ": grad ", p.grad().str(), " does not match parameter ",
               p.str());
  Tensor g = p.grad().laid_out_like(p);
  PNEUMA_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape() && g.device() == p.device(), optimizer, ": grad ",
               g.str(), " does not match parameter ", p.str());
  return g;
}

// Calls fn.template operator()<T>() for each floating dtype some parameter with a gradient has.
template <class Fn>
void for_each_parameter_dtype(const std::vector<Tensor>& parameters, const char* optimizer, Fn&& fn) {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    bool present = false;
    for (const Tensor& p : parameters) present = present || (p.grad().defined() && p.dtype() == dtype);
    if (present) dispatch_floating(dtype, optimizer, fn);
  }
}

// One SGD step (optim::SGD::step semantics) over the parameters that have a gradient, all on one
// device. Momentum buffers that do not exist yet are created, zeroed, on the parameter's device
// and in its layout.
inline void run_fused_sgd_step(const std::vector<Tensor>& parameters, std::vector<Tensor>& momentum_buffers,
                               const optim::SgdOptions& options, double lr, Stream stream) {
  const SgdHyper hyper{lr, options.weight_decay, options.momentum, options.dampening, options.nesterov};
  for_each_parameter_dtype(parameters, "SGD", [&]<class T>() {
    std::vector<FusedParameter<T>> entries;
    std::vector<Tensor> grads;  // alive until the launch is queued
    int64_t chunks = 0;
    for (size_t i = 0; i < parameters.size(); ++i) {
      const Tensor& p = parameters[i];
      if (!p.grad().defined() || p.dtype() != dtype_v<T>) continue;
      grads.push_back(fused_dense_grad("SGD", p));
      const bool first = options.momentum != 0 && !momentum_buffers[i].defined();
      if (first) momentum_buffers[i] = Tensor::zeros(p.shape(), p.dtype(), p.device()).laid_out_like(p);
      if (p.numel() == 0) continue;
      T* buffer = options.momentum != 0 ? momentum_buffers[i].data<T>() : nullptr;
      entries.push_back({p.data<T>(), grads.back().data<T>(), buffer, nullptr, p.numel(), chunks, first ? 1 : 0});
      chunks += fused_chunks(p.numel());
    }
    if (entries.empty()) return;
    const Tensor table = fused_table_on(entries, parameters.front().device());
    launch_fused_sgd<T>(static_cast<const FusedParameter<T>*>(table.raw_data()), static_cast<int>(entries.size()),
                        chunks, hyper, stream);
  });
}

// One Adam/AdamW step (optim::Adam::step semantics; `step` counts this one) over the parameters
// that have a gradient. exp_avg/exp_avg_sq are created, zeroed, where they do not exist yet.
inline void run_fused_adam_step(const std::vector<Tensor>& parameters, std::vector<Tensor>& exp_avg,
                                std::vector<Tensor>& exp_avg_sq, const optim::AdamOptions& options, double lr,
                                int64_t step, Stream stream) {
  const char* name = options.decoupled_weight_decay ? "AdamW" : "Adam";
  const AdamHyper hyper = adam_hyper(lr, options.beta1, options.beta2, options.eps, options.weight_decay,
                                     options.decoupled_weight_decay, step);
  for_each_parameter_dtype(parameters, name, [&]<class T>() {
    std::vector<FusedParameter<T>> entries;
    std::vector<Tensor> grads;
    int64_t chunks = 0;
    for (size_t i = 0; i < parameters.size(); ++i) {
      const Tensor& p = parameters[i];
      if (!p.grad().defined() || p.dtype() != dtype_v<T>) continue;
      grads.push_back(fused_dense_grad(name, p));
      if (!exp_avg[i].defined()) {
        exp_avg[i] = Tensor::zeros(p.shape(), p.dtype(), p.device()).laid_out_like(p);
        exp_avg_sq[i] = Tensor::zeros(p.shape(), p.dtype(), p.device()).laid_out_like(p);
      }
      if (p.numel() == 0) continue;
      entries.push_back({p.data<T>(), grads.back().data<T>(), exp_avg[i].data<T>(), exp_avg_sq[i].data<T>(),
                         p.numel(), chunks, 0});
      chunks += fused_chunks(p.numel());
    }
    if (entries.empty()) return;
    const Tensor table = fused_table_on(entries, parameters.front().device());
    launch_fused_adam<T>(static_cast<const FusedParameter<T>*>(table.raw_data()), static_cast<int>(entries.size()),
                         chunks, hyper, stream);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern
