#include "engine/ops/pool/pool_onednn.h"

#include <dnnl.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/cpu/copy.h"
#include "engine/cpu/onednn_context.h"

namespace pneuma::cpu {

using kern::Pool2d;

namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

// oneDNN's output size for right padding pad_r (floor division).
int64_t onednn_output(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_l, int64_t pad_r) {
  return (in - ((kernel - 1) * dilation + 1) + pad_l + pad_r) / stride + 1;
}

int64_t right_padding(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad) {
  int64_t pad_r = pad;
  while (onednn_output(in, kernel, stride, dilation, pad, pad_r) < out) ++pad_r;
  return pad_r;
}

// The oneDNN data type of a pooling's tensors (float32 or bfloat16; src and dst share it).
memory::data_type onednn_data_type(DType dtype) {
  return dtype == DType::BFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}
memory::data_type data_type_of(const Tensor& t) { return onednn_data_type(t.dtype()); }

struct Problem {
  algorithm alg;
  bool training;
  Pool2d p;
  memory::data_type data_type;
  int64_t pad_rh, pad_rw;

  Problem(algorithm a, bool t, const Pool2d& pool, memory::data_type dt) : alg(a), training(t), p(pool), data_type(dt) {
    pad_rh = right_padding(p.ih, p.oh, p.kh, p.sh, p.dh, p.ph);
    pad_rw = right_padding(p.iw, p.ow, p.kw, p.sw, p.dw, p.pw);
  }
  std::string key() const {
    std::string k = std::to_string(static_cast<int>(alg)) + (training ? "t" : "i") +
                    std::to_string(static_cast<int>(data_type)) + (p.channels_last ? "nhwc" : "nchw");
    for (int64_t v : {p.N, p.C, p.ih, p.iw, p.oh, p.ow, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw})
      k += "," + std::to_string(v);
    return k;
  }
  // oneDNN pools channels-last memory natively (its nhwc kernels vectorize along C).
  memory::format_tag tag() const { return p.channels_last ? memory::format_tag::nhwc : memory::format_tag::nchw; }
  memory::desc src() const { return {{p.N, p.C, p.ih, p.iw}, data_type, tag()}; }
  memory::desc dst() const { return {{p.N, p.C, p.oh, p.ow}, data_type, tag()}; }
  dnnl::pooling_v2_forward::desc forward_desc() const {
    // oneDNN counts dilation from 0 (a dense window has dilation 0).
    return {training ? prop_kind::forward_training : prop_kind::forward_inference,
            alg, src(), dst(), {p.sh, p.sw}, {p.kh, p.kw}, {p.dh - 1, p.dw - 1}, {p.ph, p.pw}, {pad_rh, pad_rw}};
  }
  dnnl::pooling_v2_backward::desc backward_desc() const {
    return {alg, src(), dst(), {p.sh, p.sw}, {p.kh, p.kw}, {p.dh - 1, p.dw - 1}, {p.ph, p.pw}, {pad_rh, pad_rw}};
  }
};

struct Primitives {
  bool ok = false;  // oneDNN rejected the problem: the reference loops take it
  dnnl::pooling_v2_forward::primitive_desc forward_pd;
  dnnl::pooling_v2_forward forward;
  dnnl::pooling_v2_backward backward;
};

// Primitives cached per problem; creating them costs far more than a small pooling.
// The backward primitive is made on first use only.
std::shared_ptr<Primitives> primitives(const Problem& problem, bool with_backward) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<Primitives>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<Primitives>& entry = cache[problem.key()];
  if (!entry) {
    entry = std::make_shared<Primitives>();
    try {
      entry->forward_pd = dnnl::pooling_v2_forward::primitive_desc(problem.forward_desc(), onednn_engine());
      entry->forward = dnnl::pooling_v2_forward(entry->forward_pd);
      entry->ok = true;
    } catch (const dnnl::error&) {
      return entry;
    }
  }
  if (with_backward && entry->ok && !entry->backward) {
    const dnnl::pooling_v2_backward::primitive_desc pd(problem.backward_desc(), onednn_engine(), entry->forward_pd);
    entry->backward = dnnl::pooling_v2_backward(pd);
  }
  return entry;
}


algorithm avg_algorithm(const AvgOptions& o) {
  return o.count_include_pad ? algorithm::pooling_avg_include_padding : algorithm::pooling_avg_exclude_padding;
}

// oneDNN's bfloat16 backward kernels may add the gradients that overlapping windows send to one
// input in bfloat16, rounding at every addition (seen with nhwc for ResNet's 3x3/2 max pool and with
// nchw for dilated windows, in oneDNN 2.6). Such problems run the f32 backward primitive on a float
// copy of the output gradient and round each input gradient once, as the reference loops and the
// CUDA kernels do, so the result does not depend on the layout or the kernel oneDNN picks.
bool adds_in_bf16(const Pool2d& p, memory::data_type data_type) {
  const bool overlapping = (p.kh - 1) * p.dh + 1 > p.sh || (p.kw - 1) * p.dw + 1 > p.sw;
  return data_type == memory::data_type::bf16 && overlapping;
}

// Calls run(g, dx), or run on float copies of both when the problem would add in bfloat16.
template <class Run>
void backward_in_float_where_needed(const Pool2d& p, const Tensor& g, const Tensor& dx, Run&& run) {
  if (!adds_in_bf16(p, data_type_of(g))) return run(g, dx);
  const Tensor dx_float = Tensor::empty_like(dx, DType::Float32);
  run(g.to(DType::Float32), dx_float);
  copy_strided(dx_float, dx);
}

}  // namespace

Tensor max_pool2d_forward_onednn(const Tensor& x, const Pool2d& p, const Tensor& y, bool training) {
  const Problem problem(algorithm::pooling_max, training, p, data_type_of(x));
  const std::shared_ptr<Primitives> prims = primitives(problem, false);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, onednn_memory(problem.src(), x)}, {DNNL_ARG_DST, onednn_memory(problem.dst(), y)}};
  Tensor workspace;
  if (training) {
    const memory::desc ws = prims->forward_pd.workspace_desc();
    workspace = Tensor::empty({static_cast<int64_t>(ws.get_size())}, DType::UInt8);
    args.emplace(DNNL_ARG_WORKSPACE, onednn_memory(ws, workspace));
  }
  prims->forward.execute(onednn_stream(), args);
  onednn_stream().wait();
  return workspace;
}

void max_pool2d_backward_onednn(const Tensor& g, const Tensor& workspace, const Pool2d& p, const Tensor& dx) {
  backward_in_float_where_needed(p, g, dx, [&](const Tensor& grad, const Tensor& grad_input) {
    const Problem problem(algorithm::pooling_max, true, p, data_type_of(grad));
    const std::shared_ptr<Primitives> prims = primitives(problem, true);
    prims->backward.execute(onednn_stream(),
                            {{DNNL_ARG_DIFF_DST, onednn_memory(problem.dst(), grad)},
                             {DNNL_ARG_DIFF_SRC, onednn_memory(problem.src(), grad_input)},
                             {DNNL_ARG_WORKSPACE, onednn_memory(prims->forward_pd.workspace_desc(), workspace)}});
    onednn_stream().wait();
  });
}

bool max_pool2d_onednn_supported(const Pool2d& p, bool training, DType dtype) {
  const memory::data_type data_type = onednn_data_type(dtype);
  const std::shared_ptr<Primitives> prims = primitives(Problem(algorithm::pooling_max, training, p, data_type), false);
  if (!prims->ok || !training || !adds_in_bf16(p, data_type)) return prims->ok;
  // The f32 backward reads the bfloat16 forward's workspace: only where both lay it out alike.
  const std::shared_ptr<Primitives> f32 =
      primitives(Problem(algorithm::pooling_max, true, p, memory::data_type::f32), false);
  return f32->ok && f32->forward_pd.workspace_desc() == prims->forward_pd.workspace_desc();
}

bool avg_pool2d_onednn_supported(const Pool2d& p, const AvgOptions& o, DType dtype) {
  if (o.divisor_override) return false;
  // oneDNN divides by the whole kernel; PyTorch clips the window to the padded input,
  // which differs only where ceil mode adds padding on the right.
  if (o.count_include_pad && (right_padding(p.ih, p.oh, p.kh, p.sh, p.dh, p.ph) != p.ph ||
                              right_padding(p.iw, p.ow, p.kw, p.sw, p.dw, p.pw) != p.pw))
    return false;
  return primitives(Problem(avg_algorithm(o), true, p, onednn_data_type(dtype)), false)->ok;
}

void avg_pool2d_forward_onednn(const Tensor& x, const Pool2d& p, const AvgOptions& o, const Tensor& y) {
  // Forward training (average pooling has no workspace) so backward can reuse the entry.
  const Problem problem(avg_algorithm(o), true, p, data_type_of(x));
  const std::shared_ptr<Primitives> prims = primitives(problem, false);
  prims->forward.execute(onednn_stream(), {{DNNL_ARG_SRC, onednn_memory(problem.src(), x)}, {DNNL_ARG_DST, onednn_memory(problem.dst(), y)}});
  onednn_stream().wait();
}

void avg_pool2d_backward_onednn(const Tensor& g, const Pool2d& p, const AvgOptions& o, const Tensor& dx) {
  backward_in_float_where_needed(p, g, dx, [&](const Tensor& grad, const Tensor& grad_input) {
    const Problem problem(avg_algorithm(o), true, p, data_type_of(grad));
    const std::shared_ptr<Primitives> prims = primitives(problem, true);
    prims->backward.execute(onednn_stream(), {{DNNL_ARG_DIFF_DST, onednn_memory(problem.dst(), grad)},
                                              {DNNL_ARG_DIFF_SRC, onednn_memory(problem.src(), grad_input)}});
    onednn_stream().wait();
  });
}

}  // namespace pneuma::cpu
