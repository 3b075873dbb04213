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
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/train/checkpointing.h"

namespace pneuma::tools {

// --resume DIR and --stop-after N (which lets a test or a scheduler interrupt a run).
inline void add_resume_flags(CLI::App& app, std::string& resume, int64_t& stop_after) {
  app.add_option("--resume", resume, "continue the interrupted run in this folder with its saved settings");
  app.add_option("--stop-after", stop_after, "stop after this many epochs as if interrupted (resume later)")
      ->check(CLI::NonNegativeNumber);
}

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

// A path as saved in a run's settings: absolute, so --resume works from any folder ("" stays).
inline std::string absolute_path(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

// What every training tool lets a resumed run change: how long and where it runs (epochs, threads,
// loader workers, device, precision, memory layout, --stop-after) and the folder flags; a tool
// adds its own (`extra`).
inline std::set<std::string> may_change_on_resume(std::initializer_list<std::string> extra = {}) {
  std::set<std::string> keys{"epochs", "threads",   "workers",       "stop_after", "resume",
                             "out",    "device",    "precision",     "channels_last"};
  keys.insert(extra.begin(), extra.end());
  return keys;
}

// The settings of the run in given.resume (Options: the tool's settings with JSON
// conversions, members `out`, `resume` and `stop_after`) with the flags given on this
// command line applied (merge_resumed_options); --stop-after belongs to one invocation,
// and the run writes into its own folder.
template <class Options>
Options resumed_options(const CLI::App& app, const Options& given, const std::set<std::string>& may_change) {
  PNEUMA_CHECK(given.out.empty() || given.out == given.resume, "--out ", given.out, " differs from --resume ",
               given.resume, " (a resumed run writes into its own folder)");
  const nlohmann::json now = given;
  nlohmann::json merged = merge_resumed_options(app, saved_run_options(given.resume), now, may_change);
  merged["stop_after"] = now["stop_after"];
  Options o = merged.get<Options>();
  o.resume = o.out = given.resume;
  return o;
}

// A new run never overwrites a run's folder.
inline void require_no_run(const std::string& dir) {
  PNEUMA_CHECK(!train::has_train_state(dir), dir, " already holds a run (", train::kTrainState,
               "); continue it with --resume ", dir, " or choose another --out");
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
