#pragma once
// Whole registry models moved to the GPU (nn::Module::to) and, optionally, laid out channels-last
// there, against the same weights in NCHW on the CPU: the checks of test_cuda_models.cpp and
// test_cuda_channels_last_models.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>

#include "engine/io/checkpoint.h"
#include "engine/pneuma.h"
#include "models/registry.h"
#include "tests/cuda/cuda_parity.h"

namespace pneuma::testing {

// A fresh registry model holding source's values (by name, in whatever layout either has).
inline std::shared_ptr<nn::Module> copy_of(const std::string& name, const nn::Module& source) {
  auto model = models::create_model(name, 2);
  io::load_state_dict(*model, source.state_dict());
  return model;
}

// Moves the model to the GPU and lays it out in `format` there; the input likewise.
inline void to_gpu(nn::Module& model, MemoryFormat format) {
  model.to(Device::cuda());
  model.to(format);
}
inline Tensor to_gpu(const Tensor& x, MemoryFormat format) { return x.to(Device::cuda()).contiguous(format); }

inline double relative_l2(const Tensor& actual, const Tensor& expected) {
  const std::vector<double> a = actual.to_vector(), b = expected.to_vector();
  double err = 0, ref = 1e-300;
  for (size_t i = 0; i < a.size(); ++i) err += (a[i] - b[i]) * (a[i] - b[i]), ref += b[i] * b[i];
  return std::sqrt(err / ref);
}

// A GPU parameter's gradient is on the GPU, in the parameter's layout (strides may differ only on
// size-1 dims).
inline void check_gradient_layout(const std::string& key, const Tensor& p) {
  CAPTURE(key);
  REQUIRE(p.grad().defined());
  CHECK(p.grad().device() == p.device());
  CHECK(same_element_offsets(p.shape(), p.grad().strides(), p.strides()));
}

// Under autocast bf16 the GPU (cuDNN, cuBLAS, our kernels) and the CPU (oneDNN) round in different
// places, so they are compared by how far each lands from the CPU's float32 result: the GPU's
// deviation must not exceed twice the CPU's (plus a floor). Eval-mode logits and the train-mode
// gradients of all parameters together, both as relative L2. The CPU models stay NCHW; the GPU
// model and its input are laid out in `format`.
inline void check_autocast_parity(const std::string& name, int64_t img_size,
                                  MemoryFormat format = MemoryFormat::Contiguous) {
  CAPTURE(name);
  CAPTURE(memory_format_name(format));
  auto reference = models::create_model(name, 2);
  auto cpu_model = copy_of(name, *reference);
  auto gpu_model = copy_of(name, *reference);
  to_gpu(*gpu_model, format);
  const Tensor x = parity_input({4, 3, img_size, img_size}, 5, DType::Float32);
  const Tensor x_gpu = to_gpu(x, format);
  auto run = [&](nn::Module& model, const Tensor& input, bool mixed) {
    std::optional<autocast::Guard> guard;
    if (mixed) guard.emplace(DType::BFloat16);
    return models::forward_any(model, input).to(DType::Float32);
  };
  Tensor logits32, logits_cpu, logits_gpu;
  {
    NoGradGuard no_grad;
    for (auto* m : {reference.get(), cpu_model.get(), gpu_model.get()}) m->eval();
    logits32 = run(*reference, x, false);
    logits_cpu = run(*cpu_model, x, true);
    logits_gpu = run(*gpu_model, x_gpu, true).to(Device::cpu());
  }
  const double cpu_dev = relative_l2(logits_cpu, logits32), gpu_dev = relative_l2(logits_gpu, logits32);
  CHECK_MESSAGE(gpu_dev <= 2 * cpu_dev + 1e-2, "eval logits: GPU bf16 deviates ", gpu_dev, ", CPU bf16 ", cpu_dev);
  for (auto* m : {reference.get(), cpu_model.get(), gpu_model.get()}) m->train();
  sum(run(*reference, x, false)).backward();
  sum(run(*cpu_model, x, true)).backward();
  sum(run(*gpu_model, x_gpu, true)).backward();
  const auto p32 = reference->named_parameters(), pc = cpu_model->named_parameters(), pg = gpu_model->named_parameters();
  std::vector<double> g32, gc, gg;
  for (size_t i = 0; i < p32.size(); ++i) {
    CAPTURE(p32[i].first);
    REQUIRE(pg[i].second.grad().dtype() == DType::Float32);
    check_gradient_layout(pg[i].first, pg[i].second);
    for (double v : p32[i].second.grad().to_vector()) g32.push_back(v);
    for (double v : pc[i].second.grad().to_vector()) gc.push_back(v);
    for (double v : pg[i].second.grad().to(Device::cpu()).to_vector()) gg.push_back(v);
  }
  const Shape all{static_cast<int64_t>(g32.size())};
  const Tensor r = Tensor::from_vector(g32, all, DType::Float64);
  const double cpu_grad = relative_l2(Tensor::from_vector(gc, all, DType::Float64), r);
  const double gpu_grad = relative_l2(Tensor::from_vector(gg, all, DType::Float64), r);
  CHECK_MESSAGE(gpu_grad <= 2 * cpu_grad + 5e-2, "gradients: GPU bf16 deviates ", gpu_grad, ", CPU bf16 ", cpu_grad);
  MESSAGE(name, " (", memory_format_name(format), " on the GPU) autocast bf16 deviation from CPU float32: logits GPU ",
          gpu_dev, " CPU ", cpu_dev, "; gradients GPU ", gpu_grad, " CPU ", cpu_grad);
}

// Forward in training mode (batch statistics) and the gradient of every parameter, the GPU model
// and its input laid out in `format`. Returns the two models, their gradients set, for further
// checks.
struct ModelsOnBothDevices {
  std::shared_ptr<nn::Module> cpu, gpu;
};

inline ModelsOnBothDevices check_model_parity(const std::string& name, int64_t img_size, int64_t in_channels,
                                              MemoryFormat format = MemoryFormat::Contiguous) {
  CAPTURE(name);
  CAPTURE(memory_format_name(format));
  auto cpu_model = models::create_model(name, 2);
  auto gpu_model = copy_of(name, *cpu_model);
  to_gpu(*gpu_model, format);
  for (const auto& [key, t] : gpu_model->state_dict()) {
    CAPTURE(key);
    REQUIRE(t.device() == Device::cuda());
    if (t.dim() == 4) CHECK(t.is_contiguous(format));
  }
  const Tensor x = parity_input({2, in_channels, img_size, img_size}, 5, DType::Float32);
  const Tensor y_cpu = models::forward_any(*cpu_model, x);
  const Tensor y_gpu = models::forward_any(*gpu_model, to_gpu(x, format));
  require_close_to(y_cpu.detach(), y_gpu.detach().to(Device::cpu()), 1e-3, "logits");
  sum(y_cpu).backward();
  sum(y_gpu).backward();
  const auto cpu_params = cpu_model->named_parameters();
  const auto gpu_params = gpu_model->named_parameters();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    CAPTURE(cpu_params[i].first);
    check_gradient_layout(gpu_params[i].first, gpu_params[i].second);
    require_close_to(cpu_params[i].second.grad(), gpu_params[i].second.grad().to(Device::cpu()), 2e-3, "grad");
  }
  return {cpu_model, gpu_model};
}

}  // namespace pneuma::testing
