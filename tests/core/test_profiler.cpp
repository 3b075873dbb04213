// engine/core/profiler.h: scopes nest and accumulate (self = total - nested), phases are
// inherited, backward nodes take their forward op's kind, nothing is recorded while off, and
// scopes on several threads all count.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "engine/core/profiler.h"
#include "engine/pneuma.h"

using namespace pneuma;

namespace {

// The profiler is process-wide: each test starts from empty and leaves it off and empty.
struct ProfilerSession {
  explicit ProfilerSession(bool on) {
    profiler::reset();
    profiler::set_enabled(on);
  }
  ~ProfilerSession() {
    profiler::set_enabled(false);
    profiler::reset();
  }
};

const profiler::Record* find(const std::vector<profiler::Record>& records, const std::string& name,
                             profiler::Phase phase) {
  for (const profiler::Record& r : records)
    if (r.name == name && r.phase == phase) return &r;
  return nullptr;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

TEST_CASE("profiler: nested scopes accumulate total and self time - and inherit the phase") {
  ProfilerSession session(true);
  for (int i = 0; i < 2; ++i) {
    profiler::Scope outer("region", "outer", profiler::Phase::Backward);
    sleep_ms(10);
    {
      profiler::Scope inner("op", "inner");
      sleep_ms(15);
    }
  }
  const std::vector<profiler::Record> records = profiler::records();
  REQUIRE(records.size() == 2);
  const profiler::Record* outer = find(records, "outer", profiler::Phase::Backward);
  const profiler::Record* inner = find(records, "inner", profiler::Phase::Backward);  // inherited
  REQUIRE(outer != nullptr);
  REQUIRE(inner != nullptr);
  CHECK(outer->kind == "region");
  CHECK(inner->kind == "op");
  CHECK(outer->calls == 2);
  CHECK(inner->calls == 2);
  CHECK(inner->total_seconds >= 0.030);
  CHECK(inner->self_seconds == doctest::Approx(inner->total_seconds));
  CHECK(outer->total_seconds >= 0.050);
  CHECK(outer->total_seconds >= inner->total_seconds + 0.020);
  CHECK(outer->self_seconds == doctest::Approx(outer->total_seconds - inner->total_seconds).epsilon(1e-9));
  CHECK(std::string(profiler::phase_name(outer->phase)) == "backward");
  // Largest self time first.
  CHECK(records[0].self_seconds >= records[1].self_seconds);
}

TEST_CASE("profiler: off records nothing - and reset empties") {
  {
    ProfilerSession session(false);
    {
      profiler::Scope scope("op", "ignored");
      Tensor x = Tensor::randn({4, 4}, 1);
      x.set_requires_grad(true);
      sum(relu(x)).backward();
    }
    CHECK(profiler::records().empty());
  }
  ProfilerSession session(true);
  { profiler::Scope scope("op", "recorded"); }
  CHECK(profiler::records().size() == 1);
  profiler::reset();
  CHECK(profiler::records().empty());
}

TEST_CASE("profiler: ops and their backward nodes are recorded with the op's kind") {
  ProfilerSession session(true);
  Tensor x = Tensor::randn({2, 3, 8, 8}, 1);
  Tensor w = Tensor::randn({4, 3, 3, 3}, 2);
  w.set_requires_grad(true);
  sum(relu(conv2d(x, w))).backward();
  const std::vector<profiler::Record> records = profiler::records();
  for (const char* name : {"conv2d", "relu", "sum"}) {
    INFO(name);
    const profiler::Record* forward = find(records, name, profiler::Phase::Forward);
    const profiler::Record* backward = find(records, name, profiler::Phase::Backward);
    REQUIRE(forward != nullptr);
    REQUIRE(backward != nullptr);
    CHECK(forward->calls == 1);
    CHECK(backward->kind == forward->kind);
  }
  CHECK(find(records, "conv2d", profiler::Phase::Forward)->kind == "conv");
  CHECK(find(records, "relu", profiler::Phase::Forward)->kind == "elementwise");
  const profiler::Record* accumulate = find(records, "AccumulateGrad", profiler::Phase::Backward);
  REQUIRE(accumulate != nullptr);
  CHECK(accumulate->kind == "autograd");
}

TEST_CASE("profiler: scopes on several threads all count") {
  ProfilerSession session(true);
  constexpr int kThreads = 4, kScopes = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([] {
      for (int i = 0; i < kScopes; ++i) {
        profiler::Scope outer("op", "threaded");
        profiler::Scope inner("op", "threaded_inner");
      }
    });
  for (std::thread& t : threads) t.join();
  const std::vector<profiler::Record> records = profiler::records();
  REQUIRE(find(records, "threaded", profiler::Phase::Forward) != nullptr);
  CHECK(find(records, "threaded", profiler::Phase::Forward)->calls == kThreads * kScopes);
  CHECK(find(records, "threaded_inner", profiler::Phase::Forward)->calls == kThreads * kScopes);
}
