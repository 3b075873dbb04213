#pragma once
// --resume DIR for the training tools that keep their settings in the run's train state
// (train::save_train_state with extra = {"options": <the tool's options as JSON>}): the
// saved settings come back, flags given again must repeat them, and a few flags (epochs,
// threads, ...) may change. Also trims metrics.jsonl to the epochs the train state holds.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/train/checkpointing.h"

namespace pneuma::tools {

// The options saved in DIR's train state (extra.options).
inline nlohmann::json saved_run_options(const std::string& dir) {
  PNEUMA_CHECK(train::has_train_state(dir), "cannot resume from ", dir, ": it has no ", train::kTrainState);
  const std::string path = (std::filesystem::path(dir) / train::kTrainState).string();
  const io::SafetensorsHeader header = io::read_safetensors_header(path);
  try {
    return nlohmann::json::parse(header.metadata.at("train_state")).at("extra").at("options");
  } catch (const std::exception& e) {
    PNEUMA_FAIL(path, ": no saved options in its train state (", e.what(), ")");
  }
}

// `saved` with every flag given on this command line applied: a flag's JSON key is its long
// name with '-' as '_'. Keys in `may_change` take the new value; any other flag given must
// equal the saved value, else an Error says which and how to start a new run instead.
inline nlohmann::json merge_resumed_options(const CLI::App& app, const nlohmann::json& saved,
                                            const nlohmann::json& given, const std::set<std::string>& may_change) {
  nlohmann::json merged = saved;
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0 || option->get_lnames().empty()) continue;
    std::string key = option->get_lnames().front();
    std::replace(key.begin(), key.end(), '-', '_');
    if (!given.contains(key)) continue;
    if (may_change.count(key)) {
      merged[key] = given[key];
    } else {
      PNEUMA_CHECK(!saved.contains(key) || saved[key] == given[key], "--", option->get_lnames().front(), " ",
                   given[key].dump(), " differs from the resumed run's ", saved.value(key, nlohmann::json()).dump(),
                   " (a resumed run keeps its settings; start a new --out to change them)");
    }
  }
  return merged;
}

// Keeps the lines of epochs <= epochs_done (a kill may come between an epoch's line and its
// checkpoint), so a resumed run appends without duplicates. A line cut short is dropped.
inline void truncate_metrics_log(const std::string& path, int64_t epochs_done) {
  std::ifstream in(path);
  if (!in) return;
  std::vector<std::string> keep;
  for (std::string line; std::getline(in, line);) {
    try {
      if (nlohmann::json::parse(line).value("epoch", int64_t{0}) <= epochs_done) keep.push_back(line);
    } catch (const nlohmann::json::exception&) {
    }
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& line : keep) out << line << '\n';
}

// The start of a training run in `dir`: when resuming, its train state is restored (said on
// stderr) and its metrics log trimmed to the restored epochs; otherwise the folder is
// created. Returns the number of epochs already done.
inline int64_t resume_or_start(const char* tool, const std::string& dir, bool resuming, nn::Module& model,
                               optim::Optimizer& optimizer, train::LrScheduler* scheduler,
                               train::EarlyStopping* early_stopping, const std::string& metrics_path) {
  if (!resuming) {
    std::filesystem::create_directories(dir);
    return 0;
  }
  const int64_t epochs_done = train::load_train_state(dir, model, optimizer, scheduler, early_stopping).epoch;
  std::fprintf(stderr, "%s: resuming %s after epoch %lld\n", tool, dir.c_str(), static_cast<long long>(epochs_done));
  truncate_metrics_log(metrics_path, epochs_done);
  return epochs_done;
}

}  // namespace pneuma::tools
