// conv2d / conv_transpose2d on CUDA tensors through cuDNN, on the device context's handle (bound to
// its stream). Descriptor shapes, the problem key, the algorithm choice and its cache are host code
// in engine/cuda/conv_plan.h; this file only makes the cuDNN calls.
#include <cudnn.h>

#include <vector>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/cudnn_descriptors.h"
#include "engine/cuda/op_stream.h"
#include "engine/ops/conv/conv_cuda.h"
#include "engine/ops/elementwise/elementwise_cuda.h"
#include "engine/ops/reduce/reduce_cuda.h"

namespace pneuma::cuda {

namespace {

// cuDNN's perf records (of any pass) as candidates, in cuDNN's order of preference.
template <class Perf>
std::vector<AlgorithmCandidate> candidates_of(const std::vector<Perf>& perf, int returned) {
  std::vector<AlgorithmCandidate> out;
  for (int i = 0; i < returned; ++i)
    out.push_back({static_cast<int>(perf[i].algo), perf[i].status == CUDNN_STATUS_SUCCESS, perf[i].memory});
  return out;
}

AlgorithmChoice forward_algorithm(DeviceContext& context, const ConvDescriptors& d, const ConvKey& key) {
  return context.conv_algorithms().get_or_search(key, [&] {
    cudnnHandle_t handle = context.cudnn();
    int count = 0, returned = 0;
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(count);
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, d.x.get(), d.w.get(), d.conv.get(), d.y.get(),
                                                              count, &returned, perf.data()));
    AlgorithmChoice choice = choose_algorithm(candidates_of(perf, returned), kDefaultConvWorkspaceCap, conv_key_str(key));
    // The heuristics' workspace figure is an estimate; ask for the chosen algorithm's exact one.
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, d.x.get(), d.w.get(), d.conv.get(), d.y.get(),
                                                               static_cast<cudnnConvolutionFwdAlgo_t>(choice.algorithm),
                                                               &choice.workspace_bytes));
    return choice;
  });
}

AlgorithmChoice backward_data_algorithm(DeviceContext& context, const ConvDescriptors& d, const ConvKey& key) {
  return context.conv_algorithms().get_or_search(key, [&] {
    cudnnHandle_t handle = context.cudnn();
    int count = 0, returned = 0;
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(count);
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, d.w.get(), d.y.get(), d.conv.get(),
                                                                   d.x.get(), count, &returned, perf.data()));
    AlgorithmChoice choice = choose_algorithm(candidates_of(perf, returned), kDefaultConvWorkspaceCap, conv_key_str(key));
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
        handle, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
        static_cast<cudnnConvolutionBwdDataAlgo_t>(choice.algorithm), &choice.workspace_bytes));
    return choice;
  });
}

AlgorithmChoice backward_filter_algorithm(DeviceContext& context, const ConvDescriptors& d, const ConvKey& key) {
  return context.conv_algorithms().get_or_search(key, [&] {
    cudnnHandle_t handle = context.cudnn();
    int count = 0, returned = 0;
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(count);
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, d.x.get(), d.y.get(), d.conv.get(),
                                                                     d.w.get(), count, &returned, perf.data()));
    AlgorithmChoice choice = choose_algorithm(candidates_of(perf, returned), kDefaultConvWorkspaceCap, conv_key_str(key));
    PNEUMA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        handle, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice.algorithm), &choice.workspace_bytes));
    return choice;
  });
}

// cuDNN's alpha/beta scalars: double for double data, float otherwise (bfloat16 data computes in
// float, and cuDNN takes float scalars for it).
struct Scalars {
  float one_f = 1, zero_f = 0;
  double one_d = 1, zero_d = 0;
  bool is_double;
  explicit Scalars(DType dtype) : is_double(dtype == DType::Float64) {}
  const void* one() const { return is_double ? static_cast<const void*>(&one_d) : &one_f; }
  const void* zero() const { return is_double ? static_cast<const void*>(&zero_d) : &zero_f; }
};

void* workspace_for(DeviceContext& context, const AlgorithmChoice& choice) {
  return choice.workspace_bytes == 0 ? nullptr : context.workspace(choice.workspace_bytes);
}

void zero_fill(const Tensor& t, cudaStream_t stream) {
  if (t.defined() && t.numel() > 0)
    PNEUMA_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.numel() * dtype_size(t.dtype()), stream));
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ops::ConvGeometry& g) {
  op_stream(y.device());
  if (y.numel() == 0) return;
  DeviceContext& context = DeviceContext::get(y.device().index);
  const DType dtype = y.dtype();
  const bool tf32 = context.tf32();
  const ConvDescriptors d(conv_descriptor_spec(g, dtype, tf32), dtype);
  const AlgorithmChoice algorithm =
      forward_algorithm(context, d, conv_key(ConvPass::Forward, g, dtype, tf32));
  void* workspace = workspace_for(context, algorithm);
  const Scalars s(dtype);
  PNEUMA_CUDNN_CHECK(cudnnConvolutionForward(context.cudnn(), s.one(), d.x.get(), x.raw_data(), d.w.get(), w.raw_data(),
                                             d.conv.get(), static_cast<cudnnConvolutionFwdAlgo_t>(algorithm.algorithm),
                                             workspace, algorithm.workspace_bytes, s.zero(), d.y.get(), y.raw_data()));
  if (b.defined()) add_channel_bias(y, b);
}

void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ops::ConvGeometry& g) {
  const cudaStream_t stream = op_stream(gy.device());
  if (gy.numel() == 0) {  // nothing flowed back: zero gradients for the weights, none for an empty input
    zero_fill(gw, stream);
    zero_fill(gb, stream);
    return;
  }
  DeviceContext& context = DeviceContext::get(gy.device().index);
  const DType dtype = gy.dtype();
  const bool tf32 = context.tf32();
  const ConvDescriptors d(conv_descriptor_spec(g, dtype, tf32), dtype);
  const Scalars s(dtype);
  if (gx.defined()) {
    const AlgorithmChoice algorithm =
        backward_data_algorithm(context, d, conv_key(ConvPass::BackwardData, g, dtype, tf32));
    void* workspace = workspace_for(context, algorithm);
    PNEUMA_CUDNN_CHECK(cudnnConvolutionBackwardData(
        context.cudnn(), s.one(), d.w.get(), w.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(),
        static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm.algorithm), workspace, algorithm.workspace_bytes, s.zero(),
        d.x.get(), gx.raw_data()));
  }
  if (gw.defined()) {
    const AlgorithmChoice algorithm =
        backward_filter_algorithm(context, d, conv_key(ConvPass::BackwardFilter, g, dtype, tf32));
    void* workspace = workspace_for(context, algorithm);
    PNEUMA_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        context.cudnn(), s.one(), d.x.get(), x.raw_data(), d.y.get(), gy.raw_data(), d.conv.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm.algorithm), workspace, algorithm.workspace_bytes,
        s.zero(), d.w.get(), gw.raw_data()));
  }
  if (gb.defined()) channel_sum(gy, gb);
}

// cudnnAddTensor and cudnnConvolutionBackwardBias serve float and double NCHW tensors. cuDNN
// documents no bfloat16 for them; bfloat16 and channels-last tensors go through the engine's own
// elementwise and sum kernels instead, which take any strides and walk y in memory order (float
// math for bfloat16, one rounding per element).
namespace {
bool cudnn_bias_takes(const Tensor& t) { return t.dtype() != DType::BFloat16 && t.is_contiguous(); }
}  // namespace

void add_channel_bias(const Tensor& y, const Tensor& b) {
  op_stream(y.device());
  if (y.numel() == 0) return;
  if (!cudnn_bias_takes(y)) {
    const Tensor per_channel = make_view(b, {1, b.numel(), 1, 1}, {0, b.strides()[0], 0, 0}, b.offset());
    return binary_forward(kern::BinaryOp::Add, y, per_channel, y);
  }
  DeviceContext& context = DeviceContext::get(y.device().index);
  const std::array<int, 4> dims = nchw_dims(y.shape()), channel_dims{1, dims[1], 1, 1};
  const TensorDescriptor y_desc(y.dtype(), dims, dense_strides(dims));
  const TensorDescriptor b_desc(y.dtype(), channel_dims, dense_strides(channel_dims));
  const Scalars s(y.dtype());
  PNEUMA_CUDNN_CHECK(cudnnAddTensor(context.cudnn(), s.one(), b_desc.get(), b.raw_data(), s.one(), y_desc.get(),
                                    y.raw_data()));
}

void channel_sum(const Tensor& gy, const Tensor& gb) {
  const cudaStream_t stream = op_stream(gy.device());
  if (gy.numel() == 0) return zero_fill(gb, stream);
  if (!cudnn_bias_takes(gy)) return copy_strided(sum(gy, {0, 2, 3}, false, 1.0), gb);
  DeviceContext& context = DeviceContext::get(gy.device().index);
  const std::array<int, 4> dims = nchw_dims(gy.shape()), channel_dims{1, dims[1], 1, 1};
  const TensorDescriptor gy_desc(gy.dtype(), dims, dense_strides(dims));
  const TensorDescriptor gb_desc(gy.dtype(), channel_dims, dense_strides(channel_dims));
  const Scalars s(gy.dtype());
  PNEUMA_CUDNN_CHECK(cudnnConvolutionBackwardBias(context.cudnn(), s.one(), gy_desc.get(), gy.raw_data(), s.zero(),
                                                  gb_desc.get(), gb.raw_data()));
}

}  // namespace pneuma::cuda
