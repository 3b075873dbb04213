#pragma once
// Moving weights between a module and a state dict or a safetensors checkpoint by
// name, as PyTorch's load_state_dict: strict loading fails on missing, unexpected or
// shape-mismatched keys; every problem is listed in one message, and nothing is copied
// unless the whole load can succeed.
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "engine/nn/module.h"

namespace pneuma::io {

struct ShapeMismatch {
  std::string name;
  Shape model, checkpoint;
};

struct LoadReport {
  std::vector<std::string> missing_keys;     // in the model, not in the checkpoint
  std::vector<std::string> unexpected_keys;  // in the checkpoint, not in the model
  std::vector<ShapeMismatch> mismatched;     // in both, with different shapes
  std::vector<std::string> loaded;           // copied into the model

  bool clean() const { return missing_keys.empty() && unexpected_keys.empty() && mismatched.empty(); }
  // PyTorch's wording on one line: 'missing key(s): "fc.weight", "fc.bias"; size mismatch
  // for conv1.weight: copying a param with shape [64, 3, 7, 7] from checkpoint, the shape
  // in current model is [64, 1, 7, 7]'. Empty when clean.
  std::string str() const;
};

struct LoadOptions {
  // false: missing and unexpected keys are reported, not errors (PyTorch strict=False).
  bool strict = true;
  // Shape mismatches are errors even when not strict, as in PyTorch; with this set they
  // are skipped instead (e.g. loading a backbone with another class count's classifier).
  bool skip_mismatched = false;
};

// Only compares names and shapes; copies nothing.
LoadReport compare_state_dict(const nn::Module& module, const nn::NamedTensors& state);
LoadReport compare_state_dict(const nn::Module& module, const SafetensorsHeader& header);

// Copies values into the module's existing tensors on whatever device they live (handles
// stay valid; dtypes convert as Tensor.copy_). Throws pneuma::Error with report.str() when the load is refused.
LoadReport load_state_dict(nn::Module& module, const nn::NamedTensors& state, LoadOptions options = {});

// Checkpoint files: the module's state_dict() plus string metadata.
LoadReport load_checkpoint(nn::Module& module, const std::string& path, LoadOptions options = {},
                           Metadata* metadata = nullptr);
void save_checkpoint(const nn::Module& module, const std::string& path, const Metadata& metadata = {});

}  // namespace pneuma::io
