#pragma once
// --device for the tools: "cpu" or "cuda". The CUDA backend has its device context and
// allocator, but no op runs on the GPU yet, so "cuda" is refused with one clear line
// rather than silently running on the CPU.
#include <string>

#include "engine/core/error.h"

namespace pneuma::tools {

inline void require_supported_device(const std::string& device) {
  PNEUMA_CHECK(device == "cpu" || device == "cuda", "unknown device '", device, "' (cpu, cuda)");
  PNEUMA_CHECK(device == "cpu", "--device cuda: CUDA ops are not implemented yet; use --device cpu");
}

}  // namespace pneuma::tools
