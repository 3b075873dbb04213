#pragma once
// check_parity: compares an op with PyTorch, forward and backward. The goldens are
// written by tests/parity/make_goldens.py (Debian's /usr/bin/python3 with torch) into
// the build tree on first use, and again whenever a cases_*.py file is newer.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/gradcheck.h"

namespace pneuma::testing {

inline std::filesystem::path parity_dir() { return std::filesystem::path(PNEUMA_BINARY_DIR) / "parity"; }

inline void ensure_goldens() {
  namespace fs = std::filesystem;
  const fs::path source = fs::path(PNEUMA_SOURCE_DIR) / "tests" / "parity";
  const fs::path stamp = parity_dir() / "STAMP";
  bool stale = !fs::exists(stamp);
  if (!stale)
    for (const auto& entry : fs::directory_iterator(source))
      if (entry.path().extension() == ".py" && entry.last_write_time() > fs::last_write_time(stamp)) stale = true;
  if (!stale) return;
  const std::string command = "/usr/bin/python3 " + (source / "make_goldens.py").string() + " " + parity_dir().string();
  REQUIRE_MESSAGE(std::system(command.c_str()) == 0, "parity goldens: '", command, "' failed");
}

inline Tensor tensor_from_json(const nlohmann::json& j, DType float_dtype) {
  const Shape shape = j.at("shape").get<Shape>();
  const std::string dtype = j.at("dtype");
  if (dtype == "int64") return Tensor::from_indices(j.at("values").get<std::vector<int64_t>>(), shape);
  const std::vector<double> values = j.at("values").get<std::vector<double>>();
  return Tensor::from_vector(values, shape, dtype == "bool" ? DType::Bool : float_dtype);
}

// Runs f on the golden inputs (floating inputs converted to dtype) and compares the
// output and every input gradient with PyTorch's.
inline void check_parity(const std::string& name, const Function& f, DType dtype = DType::Float64,
                         double rtol = 1e-6, double atol = 1e-8) {
  ensure_goldens();
  const std::filesystem::path file = parity_dir() / (name + ".json");
  std::ifstream in(file);
  REQUIRE_MESSAGE(in.good(), "parity case '", name, "' has no golden ", file.string(),
                  " (is it defined in tests/parity/cases_*.py?)");
  const nlohmann::json golden = nlohmann::json::parse(in);
  std::vector<Tensor> inputs, grads;
  Tensor expected, weight;
  for (const auto& t : golden.at("tensors")) {
    const std::string role = t.at("role");
    Tensor value = tensor_from_json(t, dtype);
    if (role == "input") {
      if (t.at("requires_grad").get<bool>()) value.set_requires_grad(true);
      inputs.push_back(value);
    } else if (role == "output") {
      expected = value;
    } else if (role == "weight") {
      weight = value;
    } else {
      grads.push_back(value);
    }
  }
  INFO("parity case ", name, " in ", std::string(dtype_name(dtype)));
  const Tensor output = f(inputs);
  {
    INFO("output");
    check_close(output.to(DType::Float64), expected.to(DType::Float64), rtol, atol);
  }
  if (!weight.defined()) return;
  output.backward(weight.to(output.dtype()));
  size_t g = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    INFO("gradient of input ", i);
    REQUIRE(g < grads.size());
    REQUIRE_MESSAGE(inputs[i].grad().defined(), "input ", i, " received no gradient");
    check_close(inputs[i].grad().to(DType::Float64), grads[g++], rtol, atol);
  }
}

}  // namespace pneuma::testing
