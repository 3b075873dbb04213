#pragma once
// --device for the tools: "cpu", "cuda" or "cuda:N". A device that cannot be used here is
// one clear Error before any work starts: "--device cuda: no CUDA device is visible" on a
// machine without a GPU, "... built without CUDA" in a build without the CUDA backend.
#include <CLI/CLI.hpp>
#include <string>

#include "engine/core/device.h"
#include "engine/core/error.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/device_memory.h"
#endif

namespace pneuma::tools {

// The device --device names, checked to exist here.
inline Device select_device(const std::string& text) {
  Device device;
  try {
    device = Device::parse(text);
  } catch (const Error&) {
    PNEUMA_FAIL("unknown device '", text, "' (cpu, cuda, cuda:N)");
  }
  if (device.is_cpu()) return device;
#ifdef PNEUMA_WITH_CUDA
  const int count = cuda::device_count();
  PNEUMA_CHECK(count > 0, "--device ", text, ": no CUDA device is visible");
  PNEUMA_CHECK(device.index < count, "--device ", text, ": no such CUDA device (", count, " visible)");
  return device;
#else
  PNEUMA_FAIL("--device ", text, ": this build of Pneuma was built without CUDA (configure with nvcc, cuDNN and "
              "cuBLAS found)");
#endif
}

inline void add_device_flag(CLI::App& app, std::string& device) {
  app.add_option("--device", device, "cpu, cuda or cuda:N (default cpu)");
}

}  // namespace pneuma::tools
