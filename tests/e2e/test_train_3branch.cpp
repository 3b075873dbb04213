// pneuma-train-3branch end to end on a tiny synthetic two-domain set: the ablation table
// (files, JSON lines, shape), a single configuration on one fold, a checkpoint that
// pneuma-eval reads, and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/generator.h"
#include "engine/io/checkpoint.h"
#include "models/registry.h"
#include "tests/data/data_util.h"

using nlohmann::json;
using pneuma::testing::binary;
using pneuma::testing::run_command;
using pneuma::testing::TempDir;
using pneuma::testing::write_text;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

std::vector<json> parse_lines(const std::string& text) {
  std::vector<json> out;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);)
    if (!line.empty()) out.push_back(json::parse(line));  // throws (fails the test) on a non-JSON line
  return out;
}

// 64 synthetic 32 px images, pediatric and adult patients alternating.
void make_synthetic_set(const TempDir& dir) {
  REQUIRE(run_command(binary("pneuma-synth") + " --out " + (dir / "synth") +
                      " --n 64 --size 32 --seed 4 --domains pediatric,adult >/dev/null") == 0);
}

const std::string kFast = " --backbone simplecnn --img-size 32 --batch 8 --batches-per-epoch 2 --threads 1 --workers 0";

void check_auroc(const json& value) {
  CHECK(value.at("mean").get<double>() >= 0.0);
  CHECK(value.at("mean").get<double>() <= 1.0);
  CHECK(value.at("std").get<double>() >= 0.0);
}

// A failing run: exit 1 and one line "pneuma-train-3branch: ..." holding `expected`.
void check_one_line_error(const std::string& args, const std::string& expected) {
  std::string error;
  INFO("pneuma-train-3branch ", args);
  CHECK(run_command(binary("pneuma-train-3branch") + " " + args + " 2>&1 >/dev/null", &error) == 1);
  INFO("stderr: ", error);
  CHECK(error.rfind("pneuma-train-3branch: ", 0) == 0);
  CHECK(std::count(error.begin(), error.end(), '\n') == 1);
  CHECK(error.find(expected) != std::string::npos);
}

// The synthetic manifest without the rows for which keep(domain, label) is false.
void filter_manifest(const std::string& in, const std::string& out, bool (*keep)(const std::string&, int)) {
  const std::vector<std::string> lines = read_lines(in);
  REQUIRE(lines.front().rfind("path,label,domain,", 0) == 0);
  std::string text = lines.front() + "\n";
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> fields;
    std::stringstream row(lines[i]);
    for (std::string field; std::getline(row, field, ',');) fields.push_back(field);
    if (keep(fields.at(2), std::stoi(fields.at(1)))) text += lines[i] + "\n";
  }
  write_text(out, text);
}

}  // namespace

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-train-3branch --ablations all: six rows x two folds - files - JSON lines - table") {
    TempDir dir("train3b-table");
    make_synthetic_set(dir);
    std::string out;
    const std::string command = binary("pneuma-train-3branch") + " --data " + (dir / "synth/train.csv") +
                                " --folds 2 --epochs 1 --ablations all --out " + (dir / "out") + " --table " +
                                (dir / "table.md") + kFast + " 2>/dev/null";
    REQUIRE(run_command(command, &out) == 0);

    // stdout: JSON lines only: 12 epoch records, 12 fold results, 6 table rows.
    const std::vector<json> lines = parse_lines(out);
    const std::vector<std::string> rows{"pediatric-only", "adult-only", "joint", "three-branch",
                                        "three-branch+contrastive", "three-branch+contrastive+embedding"};
    int64_t epochs = 0, folds = 0;
    std::vector<std::string> row_names;
    for (const json& line : lines) {
      if (line.contains("row")) {
        row_names.push_back(line.at("row"));
        check_auroc(line.at("auroc_pediatric"));
        check_auroc(line.at("auroc_adult"));
        check_auroc(line.at("auroc_both"));
        CHECK(line.at("folds").size() == 2);
      } else if (line.contains("epoch")) {
        ++epochs;
        CHECK(line.at("steps") == 2);
        CHECK(std::isfinite(line.at("train_loss").get<double>()));
        const std::string name = line.at("configuration");
        CHECK((line.at("contrastive").get<double>() > 0) == (name.find("+contrastive") != std::string::npos));
        CHECK((line.at("similarity").get<double>() > 0) == (name.find("+embedding") != std::string::npos));
      } else {
        ++folds;
        CHECK(line.at("best_epoch") == 1);
      }
    }
    CHECK(epochs == 12);
    CHECK(folds == 12);
    CHECK(row_names == rows);
    // Without the contrastive and embedding losses the paths never interact, so the common
    // path trains exactly as joint training does (same initial weights, same batches).
    json joint, three_branch;
    for (const json& line : lines)
      if (line.contains("row") && line.at("row") == "joint") joint = line;
      else if (line.contains("row") && line.at("row") == "three-branch") three_branch = line;
    CHECK(joint.at("folds") == three_branch.at("folds"));

    for (const std::string& row : rows)
      for (const char* fold : {"fold0", "fold1"}) {
        const fs::path fold_dir = fs::path(dir / "out") / row / fold;
        CHECK(fs::exists(fold_dir / "best.safetensors"));
        CHECK(read_lines((fold_dir / "metrics.jsonl").string()).size() == 1);
      }

    // The table: a caption, a header, a rule and one row per configuration with three
    // "mean ± std" cells; the same as markdown in --out and --table, and as JSON lines.
    const std::vector<std::string> table = read_lines(dir / "table.md");
    REQUIRE(table.size() == 3 + rows.size());
    CHECK(table[1].find("| Configuration |") == 0);
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string& line = table[3 + i];
      CHECK(line.find("| " + rows[i] + " |") == 0);
      size_t cells = 0;
      for (size_t at = line.find("±"); at != std::string::npos; at = line.find("±", at + 1)) ++cells;
      CHECK(cells == 3);
    }
    CHECK(read_lines(dir / "out/table.md") == table);
    const std::vector<std::string> table_json = read_lines(dir / "out/table.jsonl");
    REQUIRE(table_json.size() == rows.size());
    CHECK(json::parse(table_json[5]).at("embedding") == true);
    CHECK(read_lines(dir / "out/results.jsonl").size() == 12 + rows.size());

    // A checkpoint is a three-branch model that pneuma-eval runs (its common path).
    std::string eval;
    REQUIRE(run_command(binary("pneuma-eval") + " --weights " + (dir / "out/joint/fold0/best.safetensors") +
                            " --data " + (dir / "synth/train.csv") + " --bootstrap 10 --threads 1 2>/dev/null",
                        &eval) == 0);
    const json report = json::parse(eval);
    CHECK(report.at("auroc").get<double>() >= 0.0);
  }

  TEST_CASE("pneuma-train-3branch: one configuration on one fold from separate pediatric and adult manifests") {
    TempDir dir("train3b-one");
    make_synthetic_set(dir);
    filter_manifest(dir / "synth/train.csv", dir / "synth/pediatric.csv",
                    [](const std::string& domain, int) { return domain == "pediatric"; });
    filter_manifest(dir / "synth/train.csv", dir / "synth/adult.csv",
                    [](const std::string& domain, int) { return domain == "adult"; });
    // Pretrained backbone weights by torchvision names: a simple-CNN classifier checkpoint.
    pneuma::manual_seed(9);
    pneuma::io::save_checkpoint(*pneuma::models::create_classifier("simplecnn", 1), dir / "init.safetensors");
    std::string out;
    REQUIRE(run_command(binary("pneuma-train-3branch") + " --pediatric " + (dir / "synth/pediatric.csv") +
                            " --adult " + (dir / "synth/adult.csv") + " --mode single --train-domains pediatric" +
                            " --contrastive --folds 2 --fold 1 --epochs 2 --init " + (dir / "init.safetensors") +
                            " --out " + (dir / "out") + kFast + " 2>" + (dir / "stderr.txt"),
                        &out) == 0);
    const std::vector<std::string> log = read_lines(dir / "stderr.txt");
    CHECK(std::count_if(log.begin(), log.end(), [](const std::string& line) {
            // every backbone tensor came from the file: nothing listed as missing
            return line.find("--init ") != std::string::npos &&
                   line.find("backbone tensors for each path") != std::string::npos &&
                   line.find("not in the file") == std::string::npos;
          }) == 1);
    const std::vector<json> lines = parse_lines(out);
    REQUIRE(lines.size() == 4);  // 2 epochs, 1 fold result, 1 row
    CHECK(lines[0].at("configuration") == "pediatric-only+contrastive");
    CHECK(lines[1].at("epoch") == 2);
    CHECK(lines[3].at("row") == "pediatric-only+contrastive");
    CHECK(lines[3].at("auroc_both").at("std") == 0.0);  // one fold
    CHECK(fs::exists(fs::path(dir / "out") / "fold1/best.safetensors"));
    CHECK_FALSE(fs::exists(fs::path(dir / "out") / "fold0"));
    CHECK(read_lines(dir / "out/fold1/metrics.jsonl").size() == 2);
  }

  TEST_CASE("pneuma-train-3branch: bad input is one line on stderr and exit code 1") {
    TempDir dir("train3b-bad");
    make_synthetic_set(dir);
    const std::string input = " --data " + (dir / "synth/train.csv") + " --out " + (dir / "out");
    const std::string data = input + kFast;
    CHECK(run_command(binary("pneuma-train-3branch") + " --help >/dev/null 2>&1") == 0);

    // No domain column.
    write_text(dir / "nodomain.csv", "path,label\nsynth/train/NORMAL/a.jpeg,0\n");
    check_one_line_error("--data " + (dir / "nodomain.csv") + " --out " + (dir / "out"), "no domain column");
    // A (class, domain) group without images.
    filter_manifest(dir / "synth/train.csv", dir / "synth/no_adult_pneumonia.csv",
                    [](const std::string& domain, int label) { return domain != "adult" || label == 0; });
    check_one_line_error("--data " + (dir / "synth/no_adult_pneumonia.csv") + " --out " + (dir / "out") + kFast,
                         "no pneumonia adult images");
    filter_manifest(dir / "synth/train.csv", dir / "synth/pediatric.csv",
                    [](const std::string& domain, int) { return domain == "pediatric"; });
    check_one_line_error("--data " + (dir / "synth/pediatric.csv") + " --out " + (dir / "out") + kFast,
                         "no normal adult images");
    check_one_line_error("--pediatric " + (dir / "synth/pediatric.csv") + " --out " + (dir / "out"),
                         "--adult is missing");
    check_one_line_error("--pediatric " + (dir / "synth/pediatric.csv") + " --adult " + (dir / "missing.csv") +
                             " --out " + (dir / "out"),
                         "missing.csv");
    check_one_line_error(data + " --ablations all,joint", "unknown configuration 'all'");
    check_one_line_error(data + " --ablations joint,joint", "twice");
    check_one_line_error(data + " --ablations all --no-contrastive", "excludes");
    check_one_line_error(input + " --backbone resnet7", "unknown backbone 'resnet7'");
    check_one_line_error(input + " --backbone simplecnn --batch 6", "not a multiple of 4");
    check_one_line_error(data + " --mode single --train-domains kids", "unknown --train-domains 'kids'");
    check_one_line_error(data + " --mode single --embedding", "compare the three paths");
    check_one_line_error(data + " --fold 4", "--fold 4 outside [0, 4)");
    check_one_line_error(data + " --epochs 0", "--epochs");
    // --init with weights of another model: here a three-branch checkpoint (other names).
    REQUIRE(run_command(binary("pneuma-train-3branch") + " --data " + (dir / "synth/train.csv") + kFast +
                        " --folds 2 --fold 0 --epochs 1 --mode single --out " + (dir / "first") + " >/dev/null 2>&1") ==
            0);
    check_one_line_error(data + " --init " + (dir / "first/fold0/best.safetensors"), "no tensor of the simplecnn backbone");
  }
}
