#pragma once
// The one oneDNN CPU engine of the process, and a stream per thread (streams are
// cheap on the CPU and must not be shared between threads). Every oneDNN fast path
// uses these instead of creating its own.
#include <dnnl.hpp>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();

// Whether oneDNN has bfloat16 convolutions on this CPU (2.6 needs AVX-512; ONEDNN_MAX_CPU_ISA
// can lower it). Without them the bfloat16 ops run their reference loops in float.
bool onednn_supports_bfloat16();

// A oneDNN memory object over a tensor's data (no copy); md must describe its layout.
inline dnnl::memory onednn_memory(const dnnl::memory::desc& md, const Tensor& t) {
  return dnnl::memory(md, onednn_engine(), t.raw_data());
}

}  // namespace pneuma::cpu
