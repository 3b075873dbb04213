#pragma once
// Helpers of the end-to-end tests of the training tools: tool paths, one synthetic data set
// per test process, JSON lines.
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/io/safetensors.h"
#include "tests/data/data_util.h"

namespace pneuma::testing {

inline std::string tool_path(const std::string& name) {
  return std::string(PNEUMA_BINARY_DIR) + "/bin/pneuma-" + name;
}

inline std::vector<std::string> text_lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

inline std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open ", path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The last line of a tool's stdout as JSON (its summary line).
inline nlohmann::json last_json_line(const std::string& output) {
  const std::vector<std::string> lines = text_lines(output);
  REQUIRE(!lines.empty());
  return nlohmann::json::parse(lines.back());
}

// pneuma-synth's two-domain set (n images of size x size) in a folder that lives as long as
// the test process: <dir>/train.csv (path,label,domain,subtype,patient,mask) and
// <dir>/train/{NORMAL,PNEUMONIA}. Generated once per (n, size).
inline std::string synthetic_set(int n, int size) {
  static std::vector<std::pair<std::string, std::unique_ptr<TempDir>>> made;
  const std::string key = std::to_string(n) + "x" + std::to_string(size);
  for (const auto& [k, dir] : made)
    if (k == key) return dir->str();
  auto dir = std::make_unique<TempDir>("synth-" + key);
  const std::string command = tool_path("synth") + " --out " + dir->str() + " --n " + std::to_string(n) +
                              " --seed 7 --size " + std::to_string(size) + " >/dev/null";
  REQUIRE_MESSAGE(run_command(command) == 0, command);
  made.emplace_back(key, std::move(dir));
  return made.back().second->str();
}

// Same names, shapes, dtypes and bytes for every tensor; the first difference is reported.
inline bool same_tensors(const std::string& a, const std::string& b) {
  const io::Safetensors x = io::load_safetensors(a), y = io::load_safetensors(b);
  if (x.tensors.size() != y.tensors.size()) return false;
  for (size_t i = 0; i < x.tensors.size(); ++i) {
    const Tensor& s = x.tensors[i].second;
    const Tensor& t = y.tensors[i].second;
    if (x.tensors[i].first != y.tensors[i].first || s.shape() != t.shape() || s.dtype() != t.dtype() ||
        std::memcmp(s.raw_data(), t.raw_data(), static_cast<size_t>(s.numel()) * dtype_size(s.dtype())) != 0) {
      MESSAGE("first difference: ", x.tensors[i].first, " of ", a, " and ", b);
      return false;
    }
  }
  return true;
}

}  // namespace pneuma::testing
