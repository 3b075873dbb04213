#include "engine/core/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <utility>

namespace pneuma::profiler {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_enabled{false};

struct Frame {
  const char* kind;
  const char* name;
  Phase phase;
  Clock::time_point start;
  double nested_seconds;
};

// Open scopes of this thread, innermost last.
thread_local std::vector<Frame> t_open;

struct Totals {
  std::string kind;
  int64_t calls = 0;
  double total_seconds = 0;
  double self_seconds = 0;
};

struct Store {
  std::mutex mutex;
  std::map<std::pair<std::string, Phase>, Totals> totals;
};

Store& store() {
  static Store s;
  return s;
}

}  // namespace

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::Inherit: return "inherit";
    case Phase::Forward: return "forward";
    case Phase::Backward: return "backward";
    case Phase::Optimizer: return "optimizer";
  }
  return "?";
}

bool enabled() { return g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  Store& s = store();
  std::lock_guard lock(s.mutex);
  s.totals.clear();
}

void Scope::begin(const char* kind, const char* name, Phase phase) {
  if (phase == Phase::Inherit) phase = t_open.empty() ? Phase::Forward : t_open.back().phase;
  t_open.push_back({kind, name, phase, Clock::now(), 0.0});
}

void Scope::end() {
  const Clock::time_point now = Clock::now();
  if (t_open.empty()) return;
  const Frame frame = t_open.back();
  t_open.pop_back();
  const double seconds = std::chrono::duration<double>(now - frame.start).count();
  if (!t_open.empty()) t_open.back().nested_seconds += seconds;
  Store& s = store();
  std::lock_guard lock(s.mutex);
  Totals& t = s.totals[{frame.name, frame.phase}];
  if (t.kind.empty() && frame.kind != nullptr) t.kind = frame.kind;
  ++t.calls;
  t.total_seconds += seconds;
  t.self_seconds += seconds - frame.nested_seconds;
}

std::vector<Record> records() {
  Store& s = store();
  std::lock_guard lock(s.mutex);
  std::map<std::string, std::string> kind_of_name;  // from the scopes that named their kind
  for (const auto& [key, t] : s.totals)
    if (!t.kind.empty()) kind_of_name.try_emplace(key.first, t.kind);
  std::vector<Record> out;
  for (const auto& [key, t] : s.totals) {
    std::string kind = t.kind;
    if (kind.empty()) {
      const auto it = kind_of_name.find(key.first);
      kind = it != kind_of_name.end() ? it->second : "autograd";
    }
    out.push_back({key.first, kind, key.second, t.calls, t.total_seconds, t.self_seconds});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Record& a, const Record& b) { return a.self_seconds > b.self_seconds; });
  return out;
}

}  // namespace pneuma::profiler
