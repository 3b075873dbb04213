#include "engine/cuda/conv_plan.h"

#include <climits>
#include <sstream>

#include "engine/core/error.h"

namespace pneuma::cuda {

namespace {

int as_int(int64_t value, const char* what) {
  PNEUMA_CHECK(value >= 0 && value <= INT_MAX, "conv2d (cuDNN): ", what, " ", value, " exceeds cuDNN's int range");
  return static_cast<int>(value);
}

}  // namespace

std::array<int, 4> dense_strides(const std::array<int, 4>& dims) {
  std::array<int, 4> strides{};
  int64_t stride = 1;
  for (int d = 3; d >= 0; --d) {
    strides[d] = as_int(stride, "stride");
    stride *= dims[d];
  }
  return strides;
}

std::array<int, 4> dense_strides(const std::array<int, 4>& dims, ConvLayout layout) {
  if (layout == ConvLayout::NCHW) return dense_strides(dims);
  std::array<int, 4> strides{};
  int64_t stride = 1;
  for (int d : {1, 3, 2, 0}) {  // C fastest, then W, H, N
    strides[d] = as_int(stride, "stride");
    stride *= dims[d];
  }
  return strides;
}

const char* conv_layout_name(ConvLayout layout) { return layout == ConvLayout::NHWC ? "NHWC" : "NCHW"; }

ConvLayout conv_layout(MemoryFormat format) {
  PNEUMA_CHECK(format != MemoryFormat::Preserve, "conv2d (cuDNN): preserve_format is no layout to run in");
  return format == MemoryFormat::ChannelsLast ? ConvLayout::NHWC : ConvLayout::NCHW;
}

std::array<int, 4> nchw_dims(const std::vector<int64_t>& shape) {
  PNEUMA_CHECK(shape.size() == 4, "cuDNN: expected a 4-d NCHW shape, got ", shape.size(), " dims");
  return {as_int(shape[0], "batch"), as_int(shape[1], "channels"), as_int(shape[2], "height"),
          as_int(shape[3], "width")};
}

const char* conv_pass_name(ConvPass pass) {
  switch (pass) {
    case ConvPass::Forward: return "forward";
    case ConvPass::BackwardData: return "backward data";
    case ConvPass::BackwardFilter: return "backward filter";
  }
  return "?";
}

DType conv_compute_dtype(DType dtype) { return dtype == DType::BFloat16 ? DType::Float32 : dtype; }

ConvDescriptorSpec conv_descriptor_spec(const ops::ConvGeometry& g, DType dtype, bool tf32) {
  PNEUMA_CHECK(is_floating(dtype), "conv2d (cuDNN): expected float32, float64 or bfloat16, got ", dtype_name(dtype));
  ConvDescriptorSpec spec;
  spec.x_dims = {as_int(g.batch, "batch"), as_int(g.in_channels, "channels"), as_int(g.in_h, "height"),
                 as_int(g.in_w, "width")};
  spec.y_dims = {spec.x_dims[0], as_int(g.out_channels, "channels"), as_int(g.out_h, "height"),
                 as_int(g.out_w, "width")};
  spec.w_dims = {spec.y_dims[1], as_int(g.in_per_group(), "channels"), as_int(g.kernel_h, "kernel"),
                 as_int(g.kernel_w, "kernel")};
  spec.layout = conv_layout(g.memory_format);
  spec.x_strides = dense_strides(spec.x_dims, spec.layout);
  spec.y_strides = dense_strides(spec.y_dims, spec.layout);
  spec.padding = {as_int(g.padding[0], "padding"), as_int(g.padding[1], "padding")};
  spec.stride = {as_int(g.stride[0], "stride"), as_int(g.stride[1], "stride")};
  spec.dilation = {as_int(g.dilation[0], "dilation"), as_int(g.dilation[1], "dilation")};
  spec.groups = as_int(g.groups, "groups");
  spec.allow_tensor_cores = dtype != DType::Float32 || tf32;
  spec.compute_dtype = conv_compute_dtype(dtype);
  return spec;
}

ConvKey conv_key(ConvPass pass, const ops::ConvGeometry& g, DType dtype, bool tf32) {
  ConvKey key;
  key.pass = pass;
  key.dtype = dtype;
  key.layout = conv_layout(g.memory_format);
  key.tf32 = dtype == DType::Float32 && tf32;  // the switch changes nothing for float64
  key.shape = {g.batch, g.in_channels, g.in_h, g.in_w, g.out_channels, g.kernel_h, g.kernel_w};
  key.conv = {g.padding[0], g.padding[1], g.stride[0], g.stride[1], g.dilation[0], g.dilation[1], g.groups};
  return key;
}

std::string conv_key_str(const ConvKey& key) {
  std::ostringstream out;
  const auto& s = key.shape;
  const auto& c = key.conv;
  out << "conv2d " << conv_pass_name(key.pass) << " " << dtype_name(key.dtype) << (key.tf32 ? " (tf32)" : "")
      << " " << conv_layout_name(key.layout) << " x[" << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3] << "] w[" << s[4] << ", "
      << s[1] / c[6] << ", " << s[5] << ", " << s[6] << "] padding (" << c[0] << ", " << c[1] << ") stride (" << c[2]
      << ", " << c[3] << ") dilation (" << c[4] << ", " << c[5] << ") groups " << c[6];
  return out.str();
}

AlgorithmChoice choose_algorithm(const std::vector<AlgorithmCandidate>& candidates, size_t workspace_cap,
                                 const std::string& problem) {
  const AlgorithmCandidate* smallest = nullptr;
  for (const AlgorithmCandidate& c : candidates) {
    if (!c.supported) continue;
    if (c.workspace_bytes <= workspace_cap) return {c.algorithm, c.workspace_bytes, true};
    if (smallest == nullptr || c.workspace_bytes < smallest->workspace_bytes) smallest = &c;
  }
  PNEUMA_CHECK(smallest != nullptr, problem, ": cuDNN offers no algorithm (", candidates.size(),
               " candidates, none supported)");
  return {smallest->algorithm, smallest->workspace_bytes, false};
}

AlgorithmChoice ConvAlgorithmCache::get_or_search(const ConvKey& key, const std::function<AlgorithmChoice()>& search) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = choices_.find(key);
    if (found != choices_.end()) return found->second;
  }
  // Searching outside the lock lets other problems proceed; two threads racing on one key
  // both search and store the same kind of answer.
  const AlgorithmChoice choice = search();
  std::lock_guard<std::mutex> lock(mutex_);
  return choices_.emplace(key, choice).first->second;
}

size_t ConvAlgorithmCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return choices_.size();
}

void ConvAlgorithmCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  choices_.clear();
}

}  // namespace pneuma::cuda
