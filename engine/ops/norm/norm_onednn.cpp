#include "engine/ops/norm/norm_onednn.h"

#include <dnnl.hpp>

#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/core/error.h"
#include "engine/cpu/onednn_context.h"

namespace pneuma::cpu {

namespace {

using dnnl::memory;
using dnnl::normalization_flags;
using dnnl::prop_kind;

struct Primitives {
  dnnl::batch_normalization_forward::primitive_desc forward_pd;
  dnnl::batch_normalization_forward forward;
  dnnl::batch_normalization_backward::primitive_desc backward_pd;
  dnnl::batch_normalization_backward backward;
};

struct Key {
  int64_t N, C, S;
  bool training, scale, shift;
  float eps;
  bool bf16;  // bfloat16 data (src, dst and their gradients); the per-channel tensors are f32 either way
  std::string str() const {
    return std::to_string(N) + "," + std::to_string(C) + "," + std::to_string(S) + "," + (training ? "t" : "e") +
           (scale ? "s" : "-") + (shift ? "h" : "-") + "," + std::to_string(std::bit_cast<uint32_t>(eps)) +
           (bf16 ? ",bf16" : ",f32");
  }
};

bool is_bf16_data(const Tensor& x) {
  PNEUMA_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::BFloat16,
               "batch_norm (oneDNN): expected float32 or bfloat16 data, got ", x.str());
  return x.dtype() == DType::BFloat16;
}

// NHWC memory as [N, C, S, 1] with the spatial dims flattened into S.
memory::desc data_desc(const Key& k) {
  return memory::desc({k.N, k.C, k.S, 1}, k.bf16 ? memory::data_type::bf16 : memory::data_type::f32,
                      memory::format_tag::nhwc);
}

normalization_flags flags_of(const Key& k) {
  auto flags = normalization_flags::none;
  if (!k.training) flags |= normalization_flags::use_global_stats;
  if (k.scale) flags |= normalization_flags::use_scale;
  if (k.shift) flags |= normalization_flags::use_shift;
  return flags;
}

// Primitives cached per shape and flags; creating them costs far more than a small
// batch norm. The backward primitive is made on first use only.
std::shared_ptr<Primitives> primitives(const Key& k, bool with_backward) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<Primitives>> cache;
  const std::string key = k.str();
  std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<Primitives>& entry = cache[key];
  if (!entry) {
    entry = std::make_shared<Primitives>();
    const memory::desc md = data_desc(k);
    entry->forward_pd = dnnl::batch_normalization_forward::primitive_desc(
        {k.training ? prop_kind::forward_training : prop_kind::forward_inference, md, k.eps, flags_of(k)},
        onednn_engine());
    entry->forward = dnnl::batch_normalization_forward(entry->forward_pd);
  }
  if (with_backward && !entry->backward) {
    const memory::desc md = data_desc(k);
    entry->backward_pd = dnnl::batch_normalization_backward::primitive_desc(
        {prop_kind::backward, md, md, k.eps, flags_of(k)}, onednn_engine(), entry->forward_pd);
    entry->backward = dnnl::batch_normalization_backward(entry->backward_pd);
  }
  return entry;
}


memory::desc channel_desc(int64_t C) { return memory::desc({C}, memory::data_type::f32, memory::format_tag::a); }

}  // namespace

void batch_norm_forward_onednn(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                               const Tensor& var, const Tensor& weight, const Tensor& bias, double eps,
                               bool training, const Tensor& y) {
  const Key key{N, C, S, training, weight.defined(), bias.defined(), static_cast<float>(eps), is_bf16_data(x)};
  const std::shared_ptr<Primitives> p = primitives(key, false);
  const memory::desc md = data_desc(key);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, onednn_memory(md, x)},
                                       {DNNL_ARG_DST, onednn_memory(md, y)},
                                       {DNNL_ARG_MEAN, onednn_memory(channel_desc(C), mean)},
                                       {DNNL_ARG_VARIANCE, onednn_memory(channel_desc(C), var)}};
  if (key.scale) args.emplace(DNNL_ARG_SCALE, onednn_memory(channel_desc(C), weight));
  if (key.shift) args.emplace(DNNL_ARG_SHIFT, onednn_memory(channel_desc(C), bias));
  p->forward.execute(onednn_stream(), args);
  onednn_stream().wait();
}

void batch_norm_backward_onednn(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S,
                                const Tensor& mean, const Tensor& var, const Tensor& weight, bool shift, double eps,
                                bool training, const Tensor& dx, const Tensor& dweight,
                                const Tensor& dbias) {
  const Key key{N, C, S, training, weight.defined(), shift, static_cast<float>(eps), is_bf16_data(x)};
  const std::shared_ptr<Primitives> p = primitives(key, true);
  const memory::desc md = data_desc(key);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, onednn_memory(md, x)},
                                       {DNNL_ARG_DIFF_DST, onednn_memory(md, g)},
                                       {DNNL_ARG_DIFF_SRC, onednn_memory(md, dx)},
                                       {DNNL_ARG_MEAN, onednn_memory(channel_desc(C), mean)},
                                       {DNNL_ARG_VARIANCE, onednn_memory(channel_desc(C), var)}};
  // The primitive writes the scale/shift gradients whenever it uses scale/shift; give
  // it scratch space when the caller does not want them (kept alive until it has run).
  const Tensor dw = key.scale && !dweight.defined() ? Tensor::empty({C}, DType::Float32) : dweight;
  const Tensor db = key.shift && !dbias.defined() ? Tensor::empty({C}, DType::Float32) : dbias;
  if (key.scale) {
    args.emplace(DNNL_ARG_SCALE, onednn_memory(channel_desc(C), weight));
    args.emplace(DNNL_ARG_DIFF_SCALE, onednn_memory(channel_desc(C), dw));
  }
  // oneDNN asks for the shift even though no gradient depends on it; zeros do.
  const Tensor shift_values = key.shift ? Tensor::zeros({C}, DType::Float32) : Tensor();
  if (key.shift) {
    args.emplace(DNNL_ARG_SHIFT, onednn_memory(channel_desc(C), shift_values));
    args.emplace(DNNL_ARG_DIFF_SHIFT, onednn_memory(channel_desc(C), db));
  }
  p->backward.execute(onednn_stream(), args);
  onednn_stream().wait();
}

}  // namespace pneuma::cpu
