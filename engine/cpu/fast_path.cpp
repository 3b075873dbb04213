#include "engine/cpu/fast_path.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace pneuma::cpu {

namespace {

bool enabled_from_environment() {
  const char* value = std::getenv("PNEUMA_DISABLE_ONEDNN");
  return value == nullptr || *value == '\0' || std::strcmp(value, "0") == 0;
}

std::atomic<bool>& process_setting() {
  static std::atomic<bool> enabled{enabled_from_environment()};
  return enabled;
}

thread_local int guard_depth = 0;

}  // namespace

bool fast_path_enabled() { return guard_depth == 0 && process_setting().load(std::memory_order_relaxed); }

void set_fast_path_enabled(bool enabled) { process_setting().store(enabled, std::memory_order_relaxed); }

FastPathGuard::FastPathGuard() { ++guard_depth; }
FastPathGuard::~FastPathGuard() { --guard_depth; }

}  // namespace pneuma::cpu
