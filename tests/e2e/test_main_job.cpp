// The README's main job at CI size: tools/main-job --smoke runs every stage (synthetic
// data, U-Net + crops, the seed-000 comparison table, and the Kermany ResNet stage when the
// shared data is there) and leaves its results in the output folder.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/data/data_util.h"

using pneuma::testing::run_command;
using pneuma::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

size_t count_lines_starting_with(const std::string& text, const std::string& prefix) {
  size_t n = 0;
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(prefix, 0) == 0) ++n;
  return n;
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("tools/main-job --smoke: every stage runs and the summary holds the comparison table") {
    TempDir dir("main-job");
    const std::string out = dir / "job";
    const std::string script = std::string(PNEUMA_SOURCE_DIR) + "/tools/main-job";
    std::string log;
    const int code = run_command(script + " --smoke --threads 1 --build " + PNEUMA_BINARY_DIR + " --out " + out +
                                     " 2>&1",
                                 &log);
    INFO("main-job output:\n", log);
    REQUIRE(code == 0);

    const std::string summary = read_text(out + "/summary.md");
    // Caption rule + six configuration rows, each "| name |".
    CHECK(count_lines_starting_with(summary, "| three-branch") == 3);
    CHECK(count_lines_starting_with(summary, "| pediatric-only |") == 1);
    CHECK(count_lines_starting_with(summary, "| adult-only |") == 1);
    CHECK(count_lines_starting_with(summary, "| joint |") == 1);
    CHECK(fs::exists(out + "/unet/best.safetensors"));
    CHECK(fs::exists(out + "/crops/train.csv"));
    CHECK(fs::exists(out + "/comparison/three-branch+contrastive+embedding/fold1/best.safetensors"));
    // comparison.jsonl: JSON lines only; the last six are the table rows.
    std::stringstream lines(read_text(out + "/comparison.jsonl"));
    int rows = 0;
    for (std::string line; std::getline(lines, line);)
      if (nlohmann::json::parse(line).contains("row")) ++rows;
    CHECK(rows == 6);

    if (fs::exists(pneuma::testing::kermany_csv())) {
      const nlohmann::json report = nlohmann::json::parse(read_text(out + "/kermany/eval.json"));
      CHECK(report.at("auroc").get<double>() >= 0.0);
      CHECK(summary.find("AUROC") != std::string::npos);
    } else {
      CHECK(summary.find("skipped") != std::string::npos);
    }

    // A second run replaces the folder; a folder main-job did not write is refused.
    fs::create_directories(dir / "foreign");
    std::ofstream(dir / "foreign/keep.txt") << "data";
    std::string refusal;
    CHECK(run_command(script + " --smoke --build " + PNEUMA_BINARY_DIR + " --out " + (dir / "foreign") + " 2>&1",
                      &refusal) == 1);
    CHECK(refusal.find("was not written by main-job") != std::string::npos);
    CHECK(fs::exists(dir / "foreign/keep.txt"));
  }
}
