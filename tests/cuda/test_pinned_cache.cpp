// The pinned host cache's bookkeeping, with fake fences standing in for CUDA events.
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/core/error.h"
#include "engine/cuda/pinned_cache.h"

using namespace pneuma;
using namespace pneuma::cuda;

namespace {

struct FakeFence {
  bool passed = false;
};

struct FakeDevice {
  std::vector<std::unique_ptr<FakeFence>> fences;
  int destroyed = 0, raw_allocations = 0, raw_frees = 0;

  PinnedHostCache make_cache() {
    FenceHooks hooks;
    hooks.record = [this](void*) -> void* {
      fences.push_back(std::make_unique<FakeFence>());
      return fences.back().get();
    };
    hooks.passed = [](void* fence) { return static_cast<FakeFence*>(fence)->passed; };
    hooks.destroy = [this](void*) { ++destroyed; };
    return PinnedHostCache(
        [this](size_t n) {
          ++raw_allocations;
          return std::malloc(n);
        },
        [this](void* p) {
          ++raw_frees;
          std::free(p);
        },
        std::move(hooks));
  }
};

}  // namespace

TEST_SUITE("allocator") {
  TEST_CASE("pinned host cache: a freed block is reused only after its copies have passed") {
    FakeDevice device;
    auto cache = device.make_cache();
    void* a = cache.allocate(1000);
    cache.record_use(a, nullptr);
    cache.record_use(a, nullptr);
    cache.deallocate(a);
    CHECK(cache.pending_blocks() == 1);

    // both copies still running: a new request of the same size gets a new block
    void* b = cache.allocate(1000);
    CHECK(b != a);
    CHECK(device.raw_allocations == 2);

    device.fences[0]->passed = true;
    cache.deallocate(b);  // b had no copies: cached at once; a still waits on its second fence
    CHECK(cache.pending_blocks() == 1);
    CHECK(device.destroyed == 1);

    device.fences[1]->passed = true;
    void* c = cache.allocate(1000);
    void* d = cache.allocate(1000);
    CHECK(cache.pending_blocks() == 0);
    CHECK(device.destroyed == 2);
    CHECK(device.raw_allocations == 2);  // both served from the cache
    CHECK(((c == a && d == b) || (c == b && d == a)));
    CHECK(cache.stats().cache_hits == 2);
    cache.deallocate(c);
    cache.deallocate(d);
    cache.empty_cache();
    CHECK(device.raw_frees == 2);
  }

  TEST_CASE("pinned host cache: foreign pointers are errors - null is ignored") {
    FakeDevice device;
    auto cache = device.make_cache();
    int other = 0;
    CHECK_THROWS_WITH_AS(cache.record_use(&other, nullptr), doctest::Contains("did not allocate"), Error);
    CHECK_THROWS_WITH_AS(cache.deallocate(&other), doctest::Contains("did not allocate"), Error);
    cache.deallocate(nullptr);
    CHECK(cache.pending_blocks() == 0);
  }
}
