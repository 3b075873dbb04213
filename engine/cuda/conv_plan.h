#pragma once
// Host-side decisions of the cuDNN convolutions, kept apart from the cuDNN calls so that they are
// tested without a GPU (tests/cuda/test_conv_plan.cpp):
//   - the descriptor shapes of a convolution (ConvDescriptorSpec) from its geometry;
//   - the key that identifies a convolution problem (pass, shapes, dtype, layout, math mode);
//   - the choice of an algorithm among cuDNN's candidates under a workspace cap;
//   - the per-device cache of those choices, so each problem is searched once.
#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/ops/conv/conv_geometry.h"

namespace pneuma::cuda {

// The three cuDNN convolution calls: y = conv(x, w); dx from dy and w; dw from x and dy.
enum class ConvPass : uint8_t { Forward, BackwardData, BackwardFilter };
const char* conv_pass_name(ConvPass pass);

// Memory layout of a convolution's tensors: NCHW activations with an OIHW filter, or NHWC
// (channels-last) activations with an OHWI filter. cuDNN's fast NHWC kernels want the filter in
// the activations' layout, which conv.cpp provides (ConvGeometry::memory_format covers all of them).
enum class ConvLayout : uint8_t { NCHW, NHWC };
const char* conv_layout_name(ConvLayout layout);
ConvLayout conv_layout(MemoryFormat format);  // Contiguous or ChannelsLast

// The dims and strides cuDNN's tensor, filter and convolution descriptors are set with.
struct ConvDescriptorSpec {
  ConvLayout layout = ConvLayout::NCHW;
  std::array<int, 4> x_dims{}, x_strides{};  // [N, C, H, W], strides of the layout
  std::array<int, 4> y_dims{}, y_strides{};  // [N, O, OH, OW], strides of the layout
  std::array<int, 4> w_dims{};               // [O, C / groups, KH, KW], dense in the layout (OIHW or OHWI)
  std::array<int, 2> padding{}, stride{}, dilation{};
  int groups = 1;
  // float32 with TF32 off runs in plain FMA math (cuDNN would use TF32 tensor cores otherwise);
  // bfloat16 needs tensor cores (cuDNN's bf16 convolutions run on them only).
  bool allow_tensor_cores = false;
  // The precision the convolution accumulates in (the convolution descriptor's data type): the
  // data's own for float32 and float64, float32 for bfloat16 (as PyTorch: bf16 in and out, f32 math).
  DType compute_dtype = DType::Float32;
};

// The compute (accumulation) dtype of a convolution on data of dtype.
DType conv_compute_dtype(DType dtype);

// Throws when a size does not fit cuDNN's int.
ConvDescriptorSpec conv_descriptor_spec(const ops::ConvGeometry& g, DType dtype, bool tf32);

// A 4-d shape as cuDNN's int dims (checked), and the strides of a dense tensor of those dims,
// NCHW (row-major) or NHWC ([H*W*C, 1, W*C, C], still indexed by the NCHW dims).
std::array<int, 4> nchw_dims(const std::vector<int64_t>& shape);
std::array<int, 4> dense_strides(const std::array<int, 4>& dims);
std::array<int, 4> dense_strides(const std::array<int, 4>& dims, ConvLayout layout);

struct ConvKey {
  ConvPass pass = ConvPass::Forward;
  DType dtype = DType::Float32;
  ConvLayout layout = ConvLayout::NCHW;
  bool tf32 = false;
  std::array<int64_t, 7> shape{};  // N, C, H, W, O, KH, KW
  std::array<int64_t, 7> conv{};   // pad h/w, stride h/w, dilation h/w, groups
  auto operator<=>(const ConvKey&) const = default;
};

// The layout comes from g.memory_format.
ConvKey conv_key(ConvPass pass, const ops::ConvGeometry& g, DType dtype, bool tf32);
std::string conv_key_str(const ConvKey& key);

// One algorithm cuDNN offers for a problem, in cuDNN's order of preference.
struct AlgorithmCandidate {
  int algorithm = 0;
  bool supported = false;  // cuDNN's status was success
  size_t workspace_bytes = 0;
};

struct AlgorithmChoice {
  int algorithm = 0;
  size_t workspace_bytes = 0;
  bool within_cap = true;  // false: nothing fitted the cap, this is the smallest workspace
};

// The first supported candidate whose workspace fits the cap; when none fits, the supported one
// with the smallest workspace (ties: the earlier). Throws, naming `problem`, when none is supported.
AlgorithmChoice choose_algorithm(const std::vector<AlgorithmCandidate>& candidates, size_t workspace_cap,
                                 const std::string& problem);

inline constexpr size_t kDefaultConvWorkspaceCap = size_t{256} << 20;

// Algorithm choices per problem, searched once each. Thread-safe; a search that throws caches
// nothing.
class ConvAlgorithmCache {
 public:
  AlgorithmChoice get_or_search(const ConvKey& key, const std::function<AlgorithmChoice()>& search);
  size_t size() const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::map<ConvKey, AlgorithmChoice> choices_;
};

}  // namespace pneuma::cuda
