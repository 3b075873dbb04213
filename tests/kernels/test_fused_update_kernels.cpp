// The fused optimizer kernels, executed by the CPU emulator through the Tensor-level launch code
// of the CUDA optimizers (engine/optim/optimizer_kernels.h), against the CPU optimizers over
// several steps. Both sides run the shared per-element update on the host: bitwise equal.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/optim/optimizer_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;

namespace {

// Parameters of a small "model": sizes below, across and at several chunks (8192 elements), an
// empty one, and both dtypes.
std::vector<Tensor> make_parameters(uint64_t seed) {
  const std::vector<std::pair<Shape, DType>> specs = {
      {{3}, DType::Float32},       {{64, 129}, DType::Float32}, {{0}, DType::Float32}, {{20001}, DType::Float32},
      {{8192}, DType::Float64},    {{5, 7}, DType::Float64},
  };
  std::vector<Tensor> out;
  for (const auto& [shape, dtype] : specs) {
    Tensor p = Tensor::randn(shape, seed++, dtype);
    p.set_requires_grad(true);
    out.push_back(p);
  }
  return out;
}

std::vector<Tensor> copies(const std::vector<Tensor>& parameters) {
  std::vector<Tensor> out;
  for (const Tensor& p : parameters) {
    Tensor c = p.detach().clone();
    c.set_requires_grad(true);
    out.push_back(c);
  }
  return out;
}

// The same gradients on both sets; parameter `skip` gets none this step. Every other step the
// gradient of parameter 1 is a transposed (non-contiguous) view.
void set_gradients(const std::vector<Tensor>& a, const std::vector<Tensor>& b, uint64_t step, size_t skip) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (i == skip) {
      a[i].set_grad(Tensor());
      b[i].set_grad(Tensor());
      continue;
    }
    Tensor g = Tensor::randn(a[i].shape(), 1000 * step + i, a[i].dtype());
    if (i == 1 && step % 2 == 1) g = Tensor::randn({129, 64}, 1000 * step + i, a[i].dtype()).transpose(0, 1);
    a[i].set_grad(g);
    b[i].set_grad(g);
  }
}

// Optimizer state: both undefined (not created yet) or bitwise equal.
void require_same_bits(const Tensor& expected, const Tensor& actual, const std::string& what) {
  CAPTURE(what);
  REQUIRE(expected.defined() == actual.defined());
  if (expected.defined()) testing::require_same_bits(expected, actual);
}
}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulated fused_sgd") {
  struct Variant {
    const char* name;
    optim::SgdOptions options;
  };
  const Variant variants[] = {
      {"plain", {0.1, 0, 0, 0, false}},
      {"momentum + weight decay", {0.05, 0.9, 0, 1e-2, false}},
      {"dampening", {0.05, 0.9, 0.3, 0, false}},
      {"nesterov", {0.02, 0.8, 0, 1e-3, true}},
  };
  for (const Variant& v : variants) {
    CAPTURE(v.name);
    const std::vector<Tensor> cpu_params = make_parameters(7);
    const std::vector<Tensor> fused_params = copies(cpu_params);
    optim::SGD reference(cpu_params, v.options);
    std::vector<Tensor> buffers(fused_params.size());
    for (uint64_t step = 0; step < 4; ++step) {
      CAPTURE(step);
      // Parameter 4 has no gradient in the first step: its buffer is created one step later.
      set_gradients(cpu_params, fused_params, step, step == 0 ? 4 : (step == 2 ? 0 : 99));
      reference.step();
      kern::run_fused_sgd_step(fused_params, buffers, v.options, v.options.lr, kern::Stream{});
      for (size_t i = 0; i < cpu_params.size(); ++i) require_same_bits(cpu_params[i], fused_params[i], "weight " + std::to_string(i));
      const nn::NamedTensors state = reference.state_tensors();
      size_t defined = 0;
      for (const Tensor& b : buffers) defined += b.defined();
      REQUIRE(state.size() == defined);
      for (const auto& [name, value] : state) {
        const size_t index = std::stoul(name.substr(name.rfind('.') + 1));
        require_same_bits(value, buffers[index], name);
      }
    }
  }
}

TEST_CASE("emulated fused_adam and fused_adamw") {
  for (const bool decoupled : {false, true}) {
    CAPTURE(decoupled);
    optim::AdamOptions options;
    options.lr = 1e-2;
    options.weight_decay = decoupled ? 1e-2 : 1e-3;
    options.decoupled_weight_decay = decoupled;
    const std::vector<Tensor> cpu_params = make_parameters(11);
    const std::vector<Tensor> fused_params = copies(cpu_params);
    optim::Adam reference(cpu_params, options);
    std::vector<Tensor> exp_avg(fused_params.size()), exp_avg_sq(fused_params.size());
    for (int64_t step = 1; step <= 4; ++step) {
      CAPTURE(step);
      set_gradients(cpu_params, fused_params, static_cast<uint64_t>(step), step == 1 ? 3 : 99);
      reference.step();
      kern::run_fused_adam_step(fused_params, exp_avg, exp_avg_sq, options, options.lr, step, kern::Stream{});
      for (size_t i = 0; i < cpu_params.size(); ++i) require_same_bits(cpu_params[i], fused_params[i], "weight " + std::to_string(i));
      for (const auto& [name, value] : reference.state_tensors()) {
        if (name == "step") continue;
        const size_t index = std::stoul(name.substr(name.rfind('.') + 1));
        require_same_bits(value, name.starts_with("exp_avg_sq") ? exp_avg_sq[index] : exp_avg[index], name);
      }
    }
  }
}

TEST_CASE("emulated fused_sgd: any grid and block shape") {
  // Three parameters, 1 + 3 + 1 chunks, updated by grids smaller and larger than the chunk count.
  const optim::SgdOptions options{0.1, 0.9, 0, 1e-2, true};
  const kern::SgdHyper hyper{options.lr, options.weight_decay, options.momentum, options.dampening, options.nesterov};
  const std::vector<int64_t> sizes = {100, 2 * kern::kFusedChunkElements + 5, 1};
  struct Launch {
    unsigned blocks, threads;
  };
  for (const Launch launch : {Launch{1, 1}, Launch{2, 33}, Launch{5, 256}, Launch{64, 64}}) {
    CAPTURE(launch.blocks);
    CAPTURE(launch.threads);
    std::vector<Tensor> weights, grads, buffers, expected_weights;
    std::vector<kern::FusedParameter<float>> table;
    int64_t chunks = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      weights.push_back(Tensor::randn({sizes[i]}, 50 + i));
      grads.push_back(Tensor::randn({sizes[i]}, 60 + i));
      buffers.push_back(Tensor::randn({sizes[i]}, 70 + i));
      table.push_back({weights[i].data<float>(), grads[i].data<float>(), buffers[i].data<float>(), nullptr, sizes[i],
                       chunks, 0});
      chunks += kern::fused_chunks(sizes[i]);
      // The reference: the shared update over every element, in order.
      Tensor w = weights[i].clone(), b = buffers[i].clone();
      for (int64_t j = 0; j < sizes[i]; ++j) {
        kern::sgd_update(w.data<float>()[j], grads[i].data<float>()[j], b.data<float>() + j, false, hyper);
      }
      expected_weights.push_back(w);
    }
    CHECK(chunks == 5);
    CHECK(kern::find_fused_parameter(table.data(), 3, 0) == 0);
    CHECK(kern::find_fused_parameter(table.data(), 3, 3) == 1);
    CHECK(kern::find_fused_parameter(table.data(), 3, 4) == 2);
    auto kernel = &kern::fused_sgd_kernel<float>;
    PNEUMA_LAUNCH(kernel, launch.blocks, launch.threads, 0, kern::Stream{}, table.data(), 3, chunks, hyper);
    for (size_t i = 0; i < sizes.size(); ++i) require_same_bits(expected_weights[i], weights[i], "weight");
  }
}

}  // TEST_SUITE
