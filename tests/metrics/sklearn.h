#pragma once
// Runs tests/metrics/sklearn_metrics.py (Debian's /usr/bin/python3 with scikit-learn) on a
// list of cases and returns its results, for the metric parity tests.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/data/data_util.h"

namespace pneuma::testing {

inline nlohmann::json sklearn_results(const nlohmann::json& cases) {
  TempDir dir("sklearn");
  write_text(dir / "cases.json", nlohmann::json{{"cases", cases}}.dump());
  const std::string command = "/usr/bin/python3 " + std::string(PNEUMA_SOURCE_DIR) +
                              "/tests/metrics/sklearn_metrics.py " + (dir / "cases.json") + " " +
                              (dir / "results.json");
  REQUIRE_MESSAGE(run_command(command) == 0, "'", command, "' failed");
  std::ifstream in(dir / "results.json");
  const nlohmann::json results = nlohmann::json::parse(in).at("results");
  REQUIRE(results.size() == cases.size());
  return results;
}

}  // namespace pneuma::testing
