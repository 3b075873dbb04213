#pragma once
// A scoped-timer profiler: wall time and call counts per op name, for pneuma-bench's
// "where does the time go". Off by default; a Scope then costs one relaxed atomic load.
//
// Ops open a Scope at their entry point (kind = op family, name = op), the autograd engine
// one per backward node, and a caller may open its own around a region (a training step's
// forward, backward, optimizer update). Scopes nest per thread: each record keeps its total
// (inclusive) time and its self time (total minus the scopes nested in it on the same
// thread), so self times add up without double counting. A scope without an explicit
// phase takes its enclosing scope's phase (Forward at the top), so an `add` run by a
// backward node counts as backward time.
#include <cstdint>
#include <string>
#include <vector>

namespace pneuma::profiler {

enum class Phase : uint8_t { Inherit, Forward, Backward, Optimizer };
const char* phase_name(Phase phase);  // "forward", "backward", "optimizer"

struct Record {
  std::string name;   // op ("conv2d") or region ("backward")
  std::string kind;   // op family ("conv"); backward nodes take the kind of the forward op of the same name
  Phase phase = Phase::Forward;
  int64_t calls = 0;
  double total_seconds = 0;  // inclusive of nested scopes
  double self_seconds = 0;   // exclusive of nested scopes on the same thread
};

bool enabled();
void set_enabled(bool on);
// Drops everything recorded so far (scopes open right now still record when they close).
void reset();
// Everything recorded since the last reset, one entry per (name, phase), largest self time first.
std::vector<Record> records();

class Scope {
 public:
  // kind and name must outlive the scope (string literals, op names). kind nullptr: the
  // kind of the forward scope with the same name, else "autograd" (for backward nodes).
  Scope(const char* kind, const char* name, Phase phase = Phase::Inherit) {
    if (enabled()) {
      begin(kind, name, phase);
      active_ = true;
    }
  }
  ~Scope() {
    if (active_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  static void begin(const char* kind, const char* name, Phase phase);
  static void end();
  bool active_ = false;
};

}  // namespace pneuma::profiler
