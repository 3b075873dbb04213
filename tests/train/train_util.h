#pragma once
// Helpers of the training-infrastructure tests: the PyTorch reference values
// (torch_reference.py, run once per test process).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/data/data_util.h"

namespace pneuma::testing {

inline const nlohmann::json& torch_reference() {
  static const nlohmann::json reference = [] {
    std::string output;
    const std::string command =
        "/usr/bin/python3 " + std::string(PNEUMA_SOURCE_DIR) + "/tests/train/torch_reference.py 2>/dev/null";
    const int status = run_command(command, &output);
    REQUIRE_MESSAGE(status == 0, "'", command, "' failed with status ", status);
    return nlohmann::json::parse(output);
  }();
  return reference;
}

}  // namespace pneuma::testing
