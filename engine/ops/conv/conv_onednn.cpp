// oneDNN float32 and bfloat16 convolutions. bfloat16 problems run oneDNN's bf16 kernels
// (bf16 src/weights/dst and diff tensors, bias in bf16 as PyTorch's, f32 accumulation inside).
//
// Plans (primitive + the layouts it wants + the reorders from/to the plain tensors)
// are built once per problem and kept in a cache keyed by the whole problem; each
// plan is the first of a short list of variants (layouts oneDNN picks or plain ones,
// direct or Winograd) that oneDNN implements with a JIT kernel. Blocked copies and
// scratchpads of a call come from the host allocator's cache and go back to it when
// the call returns (see Workspace), so cached plans can run on several threads at once.
#include "engine/ops/conv/conv_onednn.h"

#include <dnnl.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/cpu/host_allocator.h"
#include "engine/cpu/onednn_context.h"

namespace pneuma::cpu::onednn {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using ops::ConvGeometry;

// ---- work buffers of one call

enum Slot { kSrc, kWeights, kDst, kDiffDst, kAux, kScratchpad, kReorderScratchpad, kSlots };

// The blocked copies and scratchpads of one call. They come from the host allocator
// (engine/cpu/host_allocator.h), whose cache serves them again without page faults, and
// go back to it when the call returns: between convolutions the same memory holds other
// tensors (a blocked copy of an activation is an activation's size), where buffers kept
// per thread would sit idle and add to peak memory. Each call brings its own, so cached
// plans can run on several threads at once.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace() {
    for (Buffer& b : buffers_) release(b);
  }

  void* get(Slot slot, size_t bytes) {
    Buffer& b = buffers_[slot];
    if (b.bytes < bytes) {
      release(b);
      b.data = host_allocate(bytes);
      b.bytes = bytes;
    }
    return b.data;
  }

 private:
  struct Buffer {
    void* data = nullptr;
    size_t bytes = 0;
  };
  static void release(Buffer& b) {
    if (b.data != nullptr) host_free(b.data, b.bytes);
    b = Buffer();
  }
  std::array<Buffer, kSlots> buffers_;
};

// ---- plans

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}


// One primitive argument: the plain layout of the user's tensor, the layout the
// primitive wants, and the reorder between them when they differ.
struct Arg {
  memory::desc user, prim;
  dnnl::reorder reorder;  // user -> prim for inputs, prim -> user for outputs
  memory::desc reorder_scratchpad;

  Arg() = default;
  Arg(const memory::desc& user_desc, const memory::desc& prim_desc, bool input) : user(user_desc), prim(prim_desc) {
    if (!reordered()) return;
    // User-managed scratchpads make a cached primitive safe to run from several
    // threads at once (each brings its own workspace).
    const dnnl::reorder::primitive_desc pd = input ? dnnl::reorder::primitive_desc(onednn_engine(), user, onednn_engine(), prim,
                                                                                   user_scratchpad())
                                                   : dnnl::reorder::primitive_desc(onednn_engine(), prim, onednn_engine(), user,
                                                                                   user_scratchpad());
    reorder = dnnl::reorder(pd);
    reorder_scratchpad = pd.scratchpad_desc();
  }
  bool reordered() const { return !(user == prim); }

  // The primitive-side memory for user data at `data`: the data itself when layouts
  // match, else a copy in the workspace slot (reordered now when `input`).
  memory bind(void* data, Workspace& workspace, Slot slot, bool input) const {
    memory user_mem(user, onednn_engine(), data);
    if (!reordered()) return user_mem;
    memory prim_mem(prim, onednn_engine(), workspace.get(slot, prim.get_size()));
    if (input) run(user_mem, prim_mem, workspace);
    return prim_mem;
  }
  // Copies a primitive-side result back into the user's tensor.
  void unbind(const memory& prim_mem, void* data, Workspace& workspace) const {
    if (reordered()) run(prim_mem, memory(user, onednn_engine(), data), workspace);
  }

 private:
  void run(const memory& from, const memory& to, Workspace& workspace) const {
    std::unordered_map<int, memory> args{{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    if (reorder_scratchpad.get_size() > 0)
      args.emplace(DNNL_ARG_SCRATCHPAD, memory(reorder_scratchpad, onednn_engine(),
                                               workspace.get(kReorderScratchpad, reorder_scratchpad.get_size())));
    reorder.execute(onednn_stream(), args);
  }
};

struct ForwardPlan {
  dnnl::convolution_forward prim;
  Arg src, weights, dst;
  memory::desc bias, scratchpad;
};

struct BackwardDataPlan {
  dnnl::convolution_backward_data prim;
  Arg diff_dst, weights, diff_src;
  memory::desc scratchpad;
};

struct BackwardWeightsPlan {
  dnnl::convolution_backward_weights prim;
  Arg src, diff_dst, diff_weights;
  memory::desc diff_bias, scratchpad;
};

// One way to run a problem: let oneDNN pick blocked layouts (reordering around the
// call) or force the tensors' own plain layouts (zero-copy), and the algorithm.
struct Variant {
  bool plain;
  dnnl::algorithm algorithm;
};

enum class Pass { Forward, BackwardData, BackwardWeights };

// Winograd F(4x4, 3x3) does 2-4x fewer multiplications for 3x3 stride-1 convs; on
// ResNet shapes it ran 1.3-2.2x faster than direct where the output is at least 7x7
// and slower on 4x4 and 2x2 outputs (whose tiles are mostly padding). Against the
// zero-copy NHWC direct kernels it needs 14x14 (see variants()).
bool winograd_pays(const ConvGeometry& g) {
  const int64_t min_out = g.memory_format == MemoryFormat::ChannelsLast ? 14 : 7;
  return g.kernel_h == 3 && g.kernel_w == 3 && g.stride == std::array<int64_t, 2>{1, 1} &&
         g.dilation == std::array<int64_t, 2>{1, 1} && g.groups == 1 && g.out_h >= min_out && g.out_w >= min_out;
}

// The variants to try, best first; oneDNN's Winograd is float32 only.
// PNEUMA_ONEDNN_CONV_LAYOUT=any|plain and PNEUMA_ONEDNN_CONV_ALGO=direct|winograd force a
// choice, for measurements.
//
// NCHW: with fewer than 16 input channels per group the blocked backward-data kernel
// computes padding channels (the 3-channel stem spent 2-3x longer than oneDNN's GEMM-based
// kernel on plain layouts). Plain direct comes last: it always exists, through GEMM.
//
// NHWC: plain direct (oneDNN's brgemm/JIT NHWC kernels on the tensors themselves) first, except
// Winograd where it pays. Measured on ResNet shapes, batch 8, one thread (AMD EPYC Zen 4 with
// AVX512-BF16, oneDNN 2.6), ms forward / backward-data / backward-weights, min of 7:
//                        f32 plain          f32 blocked        f32 Winograd       bf16 plain         bf16 blocked
//   stem 7x7 s2 3->64    8.7 / -   / 14.1   12.2 / -   / 15.8                      6.4 / -   / 6.5    7.1 / -   / 8.7
//   3x3 64 @56           8.4 / 9.1 / 10.2    9.7 / 9.7 / 10.7   5.5 / 5.2 / 6.3   4.2 / 4.2 / 5.3    4.5 / 4.6 / 5.5
//   3x3 s2 64->128 @56   4.3 / 4.8 / 6.5     5.6 / 5.7 / 6.0                      2.2 / 2.3 / 3.0    2.3 / 2.6 / 3.1
//   1x1 s2 64->128 @56   0.5 / 0.8 / 0.6     1.4 / 1.5 / 1.7                      0.3 / 0.3 / 0.3    0.6 / 0.7 / 0.7
//   3x3 256 @14          8.0 / 8.7 / 8.6     9.0 / 8.9 / 9.3    6.5 / 5.8 / 5.4   4.0 / 4.4 / 4.7    4.7 / 4.7 / 4.9
//   3x3 512 @7           8.8 / 9.6 / 10.4   11.3 /10.7 / 11.7  12.7 /13.9 / 9.6   4.6 / 6.0 / 6.9    4.7 / 5.9 / 6.8
//   3x3 128 @28          8.2 / 9.0 / 9.2     8.8 / 8.9 / 9.3    4.9 / 5.1 / 5.0   4.0 / 4.1 / 4.8    4.4 / 4.6 / 5.2
//   1x1 64->256 @56      4.2 / 6.1 / 8.4     6.8 / 7.5 / 8.0                      2.4 / 2.2 / 3.0    3.5 / 4.1 / 6.2
//   1x1 256->64 @56      4.8 / 5.3 / 5.6     7.4 / 7.0 / 9.5                      2.0 / 2.0 / 3.1    3.7 / 3.3 / 6.2
//   1x1 1024->256 @14    3.9 / 4.7 / 4.4     4.4 / 4.5 / 4.6                      2.0 / 1.9 / 2.5    2.3 / 2.4 / 2.7
//   1x1 2048->512 @7     5.2 / 4.6 / 4.9     4.3 / 4.4 / 4.6                      2.9 / 2.1 / 3.1    2.4 / 2.5 / 3.2
// ("blocked": oneDNN's own layouts with reorders around the call.) NCHW with the NCHW order,
// for comparison: f32 stem 12.1 / - / 13.7, 1x1 64->256 6.6 / 6.6 / 6.6; bf16 stem 8.4 / - / 8.7,
// 1x1 64->256 4.7 / 4.7 / 6.6.
std::vector<Variant> variants(const ConvGeometry& g, Pass pass, memory::data_type data_type) {
  static const char* forced_layout = std::getenv("PNEUMA_ONEDNN_CONV_LAYOUT");
  static const char* forced_algorithm = std::getenv("PNEUMA_ONEDNN_CONV_ALGO");
  const auto direct = dnnl::algorithm::convolution_direct, winograd = dnnl::algorithm::convolution_winograd;
  std::vector<Variant> list;
  const bool channels_last = g.memory_format == MemoryFormat::ChannelsLast;
  if (!channels_last && pass == Pass::BackwardData && g.in_per_group() < 16) list.push_back({true, direct});
  if (data_type == memory::data_type::f32 && winograd_pays(g)) list.push_back({false, winograd});
  if (channels_last) list.push_back({true, direct});
  list.push_back({false, direct});
  list.push_back({true, direct});  // a repeat for NHWC, dropped below
  std::vector<Variant> chosen;
  for (Variant v : list) {
    if (forced_layout != nullptr) v.plain = std::strcmp(forced_layout, "plain") == 0;
    if (forced_algorithm != nullptr) v.algorithm = std::strcmp(forced_algorithm, "winograd") == 0 ? winograd : direct;
    if (std::none_of(chosen.begin(), chosen.end(),
                     [&](const Variant& c) { return c.plain == v.plain && c.algorithm == v.algorithm; }))
      chosen.push_back(v);
  }
  return chosen;
}

struct Descs {
  memory::desc src, weights, bias, dst;          // the plain layouts of the tensors
  memory::desc src_prim, weights_prim, dst_prim;  // what the primitive is offered
  memory::dims strides, dilates, padding_l, padding_r;
  dnnl::algorithm algorithm;
};

// Every tensor of a problem has the problem's data type (f32 or bf16), bias and gradients included,
// and the problem's layout: NCHW activations with OIHW weights, or NHWC with OHWI.
Descs make_descs(const ConvGeometry& g, const Variant& variant, memory::data_type data_type) {
  const auto plain_desc = [&](const memory::dims& dims, Tag tag) { return memory::desc(dims, data_type, tag); };
  const bool channels_last = g.memory_format == MemoryFormat::ChannelsLast;
  const Tag activation_tag = channels_last ? Tag::nhwc : Tag::nchw;
  // A channels-last [O, C/groups, kH, kW] buffer is group-major OHWI: gohwi split into groups.
  const Tag weights_tag = g.groups == 1 ? (channels_last ? Tag::ohwi : Tag::oihw)
                                        : (channels_last ? Tag::gohwi : Tag::goihw);
  Descs d;
  const memory::dims src{g.batch, g.in_channels, g.in_h, g.in_w};
  const memory::dims dst{g.batch, g.out_channels, g.out_h, g.out_w};
  // The weight dims split into groups when there are several.
  const memory::dims weights =
      g.groups == 1 ? memory::dims{g.out_channels, g.in_per_group(), g.kernel_h, g.kernel_w}
                    : memory::dims{g.groups, g.out_per_group(), g.in_per_group(), g.kernel_h, g.kernel_w};
  d.src = plain_desc(src, activation_tag);
  d.dst = plain_desc(dst, activation_tag);
  d.weights = plain_desc(weights, weights_tag);
  d.bias = plain_desc({g.out_channels}, Tag::x);
  d.src_prim = variant.plain ? d.src : plain_desc(src, Tag::any);
  d.dst_prim = variant.plain ? d.dst : plain_desc(dst, Tag::any);
  // oneDNN 2.6 runs plain NHWC activations with its own weight layouts only (OHWI weights land
  // on its reference kernel), so the NHWC plain variant lets it pick the weights' layout: a
  // reorder of the small weight tensor, the activations still zero-copy.
  d.weights_prim = variant.plain && !channels_last ? d.weights : plain_desc(weights, Tag::any);
  d.algorithm = variant.algorithm;
  d.strides = {g.stride[0], g.stride[1]};
  d.dilates = {g.dilation[0] - 1, g.dilation[1] - 1};  // oneDNN counts the gaps
  d.padding_l = {g.padding[0], g.padding[1]};
  // oneDNN checks out = (in - span + pad_l + pad_r) / stride + 1 with integer
  // division, as PyTorch's floor; symmetric padding satisfies it except where a
  // transposed conv's output_padding exceeds the stride (then pad_r goes negative).
  for (int i = 0; i < 2; ++i) {
    const int64_t in = i == 0 ? g.in_h : g.in_w, out = i == 0 ? g.out_h : g.out_w;
    const int64_t k = i == 0 ? g.kernel_h : g.kernel_w;
    const int64_t span = g.dilation[i] * (k - 1) + 1;
    const bool symmetric_ok = (in - span + 2 * g.padding[i]) / g.stride[i] + 1 == out;
    d.padding_r.push_back(symmetric_ok ? g.padding[i] : (out - 1) * g.stride[i] + span - in - g.padding[i]);
  }
  return d;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Descs& d, bool with_bias) {
  const auto kind = dnnl::prop_kind::forward_training;
  const auto desc = with_bias ? dnnl::convolution_forward::desc(kind, d.algorithm, d.src_prim, d.weights_prim, d.bias,
                                                                d.dst_prim, d.strides, d.dilates, d.padding_l,
                                                                d.padding_r)
                              : dnnl::convolution_forward::desc(kind, d.algorithm, d.src_prim, d.weights_prim,
                                                                d.dst_prim, d.strides, d.dilates, d.padding_l,
                                                                d.padding_r);
  return dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(), onednn_engine());
}

// oneDNN's reference kernels are orders of magnitude slower than its JIT ones; a
// variant that lands on one is skipped while others remain.
bool is_reference(const dnnl::primitive_desc& pd) { return std::string(pd.impl_info_str()).rfind("ref", 0) == 0; }

// Builds the plan of the first variant oneDNN implements well (or, failing that, the
// first it implements at all); nullptr when none.
template <class Plan, class Build>
std::shared_ptr<const Plan> first_variant(const ConvGeometry& g, Pass pass, memory::data_type data_type,
                                          Build&& build) {
  std::shared_ptr<const Plan> fallback;
  for (const Variant& v : variants(g, pass, data_type)) {
    try {
      bool reference = false;
      auto plan = build(make_descs(g, v, data_type), reference);
      if (!reference) return plan;
      if (!fallback) fallback = plan;
    } catch (const dnnl::error&) {
      // this variant is not implemented for the problem; try the next
    }
  }
  return fallback;
}

std::shared_ptr<const ForwardPlan> make_forward(const ConvGeometry& g, bool with_bias, memory::data_type data_type) {
  return first_variant<ForwardPlan>(g, Pass::Forward, data_type, [&](const Descs& d, bool& reference) {
    const auto pd = forward_pd(d, with_bias);
    reference = is_reference(pd);
    auto plan = std::make_shared<ForwardPlan>();
    plan->prim = dnnl::convolution_forward(pd);
    plan->src = Arg(d.src, pd.src_desc(), true);
    plan->weights = Arg(d.weights, pd.weights_desc(), true);
    plan->dst = Arg(d.dst, pd.dst_desc(), false);
    plan->bias = pd.bias_desc();
    plan->scratchpad = pd.scratchpad_desc();
    return plan;
  });
}

std::shared_ptr<const BackwardDataPlan> make_backward_data(const ConvGeometry& g, memory::data_type data_type) {
  return first_variant<BackwardDataPlan>(g, Pass::BackwardData, data_type, [&](const Descs& d, bool& reference) {
    const dnnl::convolution_backward_data::desc desc(d.algorithm, d.src_prim, d.weights_prim, d.dst_prim, d.strides,
                                                     d.dilates, d.padding_l, d.padding_r);
    const dnnl::convolution_backward_data::primitive_desc pd(desc, user_scratchpad(), onednn_engine(),
                                                             forward_pd(d, false));
    reference = is_reference(pd);
    auto plan = std::make_shared<BackwardDataPlan>();
    plan->prim = dnnl::convolution_backward_data(pd);
    plan->diff_dst = Arg(d.dst, pd.diff_dst_desc(), true);
    plan->weights = Arg(d.weights, pd.weights_desc(), true);
    plan->diff_src = Arg(d.src, pd.diff_src_desc(), false);
    plan->scratchpad = pd.scratchpad_desc();
    return plan;
  });
}

std::shared_ptr<const BackwardWeightsPlan> make_backward_weights(const ConvGeometry& g, bool with_bias,
                                                                memory::data_type data_type) {
  return first_variant<BackwardWeightsPlan>(g, Pass::BackwardWeights, data_type, [&](const Descs& d, bool& reference) {
    const auto desc = with_bias ? dnnl::convolution_backward_weights::desc(d.algorithm, d.src_prim, d.weights_prim,
                                                                           d.bias, d.dst_prim, d.strides, d.dilates,
                                                                           d.padding_l, d.padding_r)
                                : dnnl::convolution_backward_weights::desc(d.algorithm, d.src_prim, d.weights_prim,
                                                                           d.dst_prim, d.strides, d.dilates,
                                                                           d.padding_l, d.padding_r);
    const dnnl::convolution_backward_weights::primitive_desc pd(desc, user_scratchpad(), onednn_engine(),
                                                                forward_pd(d, with_bias));
    reference = is_reference(pd);
    auto plan = std::make_shared<BackwardWeightsPlan>();
    plan->prim = dnnl::convolution_backward_weights(pd);
    plan->src = Arg(d.src, pd.src_desc(), true);
    plan->diff_dst = Arg(d.dst, pd.diff_dst_desc(), true);
    plan->diff_weights = Arg(d.weights, pd.diff_weights_desc(), false);
    plan->diff_bias = pd.diff_bias_desc();
    plan->scratchpad = pd.scratchpad_desc();
    return plan;
  });
}

// ---- the cache

using Key = std::array<int64_t, 19>;

Key make_key(const ConvGeometry& g, bool with_bias, memory::data_type data_type) {
  return {g.batch,       g.in_channels, g.in_h,        g.in_w,      g.out_channels, g.out_h,
          g.out_w,       g.kernel_h,    g.kernel_w,    g.stride[0], g.stride[1],    g.padding[0],
          g.padding[1],  g.dilation[0], g.dilation[1], g.groups,    with_bias,      static_cast<int64_t>(data_type),
          static_cast<int64_t>(g.memory_format)};
}

// The oneDNN data type of a problem's tensors (the caller passes float32 or bfloat16 only).
memory::data_type data_type_of(const Tensor& t) {
  return t.dtype() == DType::BFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    for (int64_t v : k) h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

// A null plan records that oneDNN has no implementation for the problem, so the
// reference runs without asking again.
template <class Plan>
class PlanCache {
 public:
  template <class Make>
  std::shared_ptr<const Plan> get(const Key& key, Make&& make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = plans_.find(key);
      if (it != plans_.end()) return it->second;
    }
    // Built outside the lock: creating a primitive can take milliseconds (JIT).
    std::shared_ptr<const Plan> plan = make();
    std::lock_guard<std::mutex> lock(mutex_);
    return plans_.try_emplace(key, std::move(plan)).first->second;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<Key, std::shared_ptr<const Plan>, KeyHash> plans_;
};

template <class Plan>
PlanCache<Plan>& cache() {
  static PlanCache<Plan> c;
  return c;
}

void add_scratchpad(std::unordered_map<int, memory>& args, const memory::desc& desc, Workspace& workspace) {
  if (desc.get_size() == 0) return;
  args.emplace(DNNL_ARG_SCRATCHPAD, memory(desc, onednn_engine(), workspace.get(kScratchpad, desc.get_size())));
}

}  // namespace

bool conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ConvGeometry& g) {
  const bool with_bias = b.defined();
  const memory::data_type data_type = data_type_of(x);
  const auto plan = cache<ForwardPlan>().get(make_key(g, with_bias, data_type),
                                             [&] { return make_forward(g, with_bias, data_type); });
  if (!plan) return false;
  Workspace workspace;  // outlives the stream's work (wait() below)
  std::unordered_map<int, memory> args;
  args.emplace(DNNL_ARG_SRC, plan->src.bind(x.raw_data(), workspace, kSrc, true));
  args.emplace(DNNL_ARG_WEIGHTS, plan->weights.bind(w.raw_data(), workspace, kWeights, true));
  if (with_bias) args.emplace(DNNL_ARG_BIAS, memory(plan->bias, onednn_engine(), b.raw_data()));
  const memory dst = plan->dst.bind(y.raw_data(), workspace, kDst, false);
  args.emplace(DNNL_ARG_DST, dst);
  add_scratchpad(args, plan->scratchpad, workspace);
  plan->prim.execute(onednn_stream(), args);
  plan->dst.unbind(dst, y.raw_data(), workspace);
  onednn_stream().wait();
  return true;
}

bool conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeometry& g) {
  const bool with_bias = gb.defined();
  const memory::data_type data_type = data_type_of(gy);
  std::shared_ptr<const BackwardDataPlan> data_plan;
  std::shared_ptr<const BackwardWeightsPlan> weights_plan;
  if (gx.defined()) {
    data_plan = cache<BackwardDataPlan>().get(make_key(g, false, data_type),
                                              [&] { return make_backward_data(g, data_type); });
    if (!data_plan) return false;
  }
  if (gw.defined()) {
    weights_plan = cache<BackwardWeightsPlan>().get(make_key(g, with_bias, data_type),
                                                    [&] { return make_backward_weights(g, with_bias, data_type); });
    if (!weights_plan) return false;
  } else if (with_bias) {
    return false;  // a bias gradient alone is the caller's channel sum
  }

  Workspace workspace;  // outlives the stream's work (wait() below)
  // dL/dy is reordered once when both primitives want the same layout.
  memory diff_dst_data;
  if (data_plan) {
    diff_dst_data = data_plan->diff_dst.bind(gy.raw_data(), workspace, kDiffDst, true);
    std::unordered_map<int, memory> args;
    args.emplace(DNNL_ARG_DIFF_DST, diff_dst_data);
    args.emplace(DNNL_ARG_WEIGHTS, data_plan->weights.bind(w.raw_data(), workspace, kWeights, true));
    const memory diff_src = data_plan->diff_src.bind(gx.raw_data(), workspace, kDst, false);
    args.emplace(DNNL_ARG_DIFF_SRC, diff_src);
    add_scratchpad(args, data_plan->scratchpad, workspace);
    data_plan->prim.execute(onednn_stream(), args);
    data_plan->diff_src.unbind(diff_src, gx.raw_data(), workspace);
  }
  if (weights_plan) {
    const bool share = data_plan && data_plan->diff_dst.prim == weights_plan->diff_dst.prim;
    std::unordered_map<int, memory> args;
    args.emplace(DNNL_ARG_DIFF_DST,
                 share ? diff_dst_data : weights_plan->diff_dst.bind(gy.raw_data(), workspace, kAux, true));
    args.emplace(DNNL_ARG_SRC, weights_plan->src.bind(x.raw_data(), workspace, kSrc, true));
    const memory diff_weights = weights_plan->diff_weights.bind(gw.raw_data(), workspace, kWeights, false);
    args.emplace(DNNL_ARG_DIFF_WEIGHTS, diff_weights);
    if (with_bias) args.emplace(DNNL_ARG_DIFF_BIAS, memory(weights_plan->diff_bias, onednn_engine(), gb.raw_data()));
    add_scratchpad(args, weights_plan->scratchpad, workspace);
    weights_plan->prim.execute(onednn_stream(), args);
    weights_plan->diff_weights.unbind(diff_weights, gw.raw_data(), workspace);
  }
  onednn_stream().wait();
  return true;
}

}  // namespace pneuma::cpu::onednn
