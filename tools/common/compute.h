#pragma once
// --precision and --channels-last, for the tools that run a model (and pneuma-bench): bf16 runs
// the forward pass and the loss under autocast (torch.autocast(dtype=torch.bfloat16); the
// parameters stay float32 master weights), channels-last lays the model's 4-d parameters out
// NHWC, so its convolutions, and with them its activations, run channels-last
// (model.to(memory_format=torch.channels_last)).
#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "engine/nn/module.h"
#include "engine/ops/autocast.h"

namespace pneuma::tools {

inline void add_compute_flags(CLI::App& app, std::string& precision, bool& channels_last) {
  app.add_option("--precision", precision,
                 "fp32, or bf16: autocast to bfloat16 with float32 master weights (default fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_flag("--channels-last", channels_last, "NHWC conv weights and activations (torch.channels_last)");
}

// The autocast of --precision, on for the scope it lives in (per thread, as autocast itself).
class PrecisionScope {
 public:
  explicit PrecisionScope(const std::string& precision) {
    if (precision == "bf16") guard_.emplace(DType::BFloat16);
  }

 private:
  std::optional<autocast::Guard> guard_;
};

// Lays the model out as --channels-last asks; call after moving it to its device and before
// building its optimizer (the optimizer's state takes the parameters' layout).
inline void apply_memory_format(nn::Module& model, bool channels_last) {
  if (channels_last) model.to(MemoryFormat::ChannelsLast);
}

}  // namespace pneuma::tools
