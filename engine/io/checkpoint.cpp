#include "engine/io/checkpoint.h"

#include <map>
#include <set>

#include "engine/autograd/grad_mode.h"
#include "engine/cpu/copy.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/device_memory.h"
#endif

namespace pneuma::io {

namespace {

template <class GetShape>
LoadReport compare(const nn::Module& module, const std::vector<std::string>& names, GetShape shape_of) {
  LoadReport report;
  std::map<std::string, Shape> model;
  for (const auto& [name, t] : module.state_dict()) model.emplace(name, t.shape());
  std::set<std::string> present;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    present.insert(name);
    const auto it = model.find(name);
    if (it == model.end()) {
      report.unexpected_keys.push_back(name);
    } else if (it->second != shape_of(i)) {
      report.mismatched.push_back({name, it->second, shape_of(i)});
    }
  }
  for (const auto& [name, t] : module.state_dict())
    if (!present.count(name)) report.missing_keys.push_back(name);
  return report;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", \"" : "\"") + names[i] + "\"";
  return s;
}

}  // namespace

std::string LoadReport::str() const {
  std::vector<std::string> parts;
  if (!missing_keys.empty()) parts.push_back("missing key(s): " + quoted_list(missing_keys));
  if (!unexpected_keys.empty()) parts.push_back("unexpected key(s): " + quoted_list(unexpected_keys));
  for (const ShapeMismatch& m : mismatched)
    parts.push_back("size mismatch for " + m.name + ": copying a param with shape " + shape_str(m.checkpoint) +
                    " from checkpoint, the shape in current model is " + shape_str(m.model));
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? "; " : "") + parts[i];
  return s;
}

LoadReport compare_state_dict(const nn::Module& module, const nn::NamedTensors& state) {
  std::vector<std::string> names;
  for (const auto& [name, t] : state) names.push_back(name);
  return compare(module, names, [&](size_t i) { return state[i].second.shape(); });
}

LoadReport compare_state_dict(const nn::Module& module, const SafetensorsHeader& header) {
  std::vector<std::string> names;
  for (const TensorInfo& t : header.tensors) names.push_back(t.name);
  return compare(module, names, [&](size_t i) { return header.tensors[i].shape; });
}

LoadReport load_state_dict(nn::Module& module, const nn::NamedTensors& state, LoadOptions options) {
  std::set<std::string> seen;
  for (const auto& [name, t] : state)
    PNEUMA_CHECK(seen.insert(name).second, "load_state_dict: key \"", name, "\" appears twice in the state dict");
  LoadReport report = compare_state_dict(module, state);
  LoadReport refused;
  if (options.strict) {
    refused.missing_keys = report.missing_keys;
    refused.unexpected_keys = report.unexpected_keys;
  }
  if (!options.skip_mismatched) refused.mismatched = report.mismatched;
  PNEUMA_CHECK(refused.clean(), "load_state_dict: ", refused.str());

  std::map<std::string, Tensor> source(state.begin(), state.end());
  std::set<std::string> skipped;
  for (const ShapeMismatch& m : report.mismatched) skipped.insert(m.name);
  NoGradGuard no_grad;
  for (const auto& [name, dst] : module.state_dict()) {
    const auto it = source.find(name);
    if (it == source.end() || skipped.count(name)) continue;
    Tensor src = it->second;
    if (!src.device().is_cpu()) src = src.to(Device::cpu());
    if (dst.device().is_cpu()) {
      cpu::copy_strided(src, dst);
    } else {
      // A model already on the GPU (a resumed run moves it before its optimizer exists):
      // the value converted on the host, then uploaded into the tensor's own memory.
      PNEUMA_CHECK(dst.is_non_overlapping_and_dense(), "load_state_dict: ", name, " on ", dst.device().str(),
                   " is not dense; load into a CPU model, then move it");
      const Tensor staged = Tensor::empty_strided(dst.shape(), dst.strides(), dst.dtype(), Device::cpu());
      cpu::copy_strided(src, staged);
#ifdef PNEUMA_WITH_CUDA
      cuda::copy_bytes(dst.raw_data(), dst.device(), staged.raw_data(), Device::cpu(),
                       static_cast<size_t>(dst.numel()) * dtype_size(dst.dtype()));
#endif
    }
    report.loaded.push_back(name);
  }
  return report;
}

LoadReport load_checkpoint(nn::Module& module, const std::string& path, LoadOptions options, Metadata* metadata) {
  Safetensors file = load_safetensors(path);
  if (metadata) *metadata = file.metadata;
  try {
    return load_state_dict(module, file.tensors, options);
  } catch (const Error& e) {
    PNEUMA_FAIL(path, ": ", e.what());
  }
}

void save_checkpoint(const nn::Module& module, const std::string& path, const Metadata& metadata) {
  save_safetensors(path, module.state_dict(), metadata);
}

}  // namespace pneuma::io
