#include "engine/cpu/onednn_context.h"

namespace pneuma::cpu {

dnnl::engine& onednn_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& onednn_stream() {
  thread_local dnnl::stream stream(onednn_engine());
  return stream;
}

bool onednn_supports_bfloat16() {
  static const bool supported = [] {
    using dnnl::memory;
    const memory::desc data({1, 16, 4, 4}, memory::data_type::bf16, memory::format_tag::any);
    const memory::desc weights({16, 16, 1, 1}, memory::data_type::bf16, memory::format_tag::any);
    try {
      const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                 data, weights, data, {1, 1}, {0, 0}, {0, 0});
      dnnl::convolution_forward::primitive_desc(desc, onednn_engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return supported;
}

}  // namespace pneuma::cpu
