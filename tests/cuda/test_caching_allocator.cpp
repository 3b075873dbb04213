#include <doctest/doctest.h>

#include <cstdlib>
#include <map>

#include "engine/core/error.h"
#include "engine/cuda/caching_allocator.h"

using pneuma::cuda::CachingAllocator;

namespace {
// A host stand-in for cudaMalloc/cudaFree that counts calls and can run out.
struct FakeDevice {
  size_t capacity = 1 << 20;
  size_t used = 0;
  std::map<void*, size_t> blocks;
  CachingAllocator make() {
    return CachingAllocator(
        [this](size_t n) -> void* {
          if (used + n > capacity) return nullptr;
          used += n;
          void* p = std::malloc(n);
          blocks[p] = n;
          return p;
        },
        [this](void* p) {
          used -= blocks.at(p);
          blocks.erase(p);
          std::free(p);
        });
  }
};
}  // namespace

TEST_SUITE("allocator") {
  TEST_CASE("caching allocator reuses blocks: no device calls in a steady loop") {
    FakeDevice device;
    CachingAllocator alloc = device.make();
    for (int step = 0; step < 5; ++step) {
      void* a = alloc.allocate(1000);
      void* b = alloc.allocate(70000);
      void* c = alloc.allocate(1000);
      alloc.deallocate(b);
      alloc.deallocate(a);
      alloc.deallocate(c);
    }
    const auto s = alloc.stats();
    CHECK(s.device_allocations == 3);  // the first step only
    CHECK(s.cache_hits == 12);
    CHECK(s.allocated == 0);
    CHECK(s.reserved == CachingAllocator::size_class(1000) * 2 + CachingAllocator::size_class(70000));
    CHECK(s.peak_allocated == s.reserved);
    alloc.empty_cache();
    CHECK(alloc.stats().reserved == 0);
    CHECK(device.blocks.empty());
  }

  TEST_CASE("caching allocator size classes waste at most a quarter") {
    for (size_t n : {1ul, 511ul, 512ul, 513ul, 3000ul, 4097ul, 100000ul, 123456789ul}) {
      const size_t c = CachingAllocator::size_class(n);
      CHECK(c >= n);
      CHECK(c % 512 == 0);
      CHECK(static_cast<double>(c) <= std::max(1.25 * static_cast<double>(n) + 512, 512.0));
    }
  }

  TEST_CASE("caching allocator frees its cache and retries when the device is full") {
    FakeDevice device;
    device.capacity = 3 * 262144;
    CachingAllocator alloc = device.make();
    void* a = alloc.allocate(262144);
    void* b = alloc.allocate(262144);
    alloc.deallocate(a);
    alloc.deallocate(b);
    // a different size class does not fit beside the two cached blocks: the cache is freed
    void* c = alloc.allocate(600000);
    CHECK(c != nullptr);
    CHECK(alloc.stats().device_frees == 2);
    CHECK_THROWS_AS(alloc.allocate(10 << 20), pneuma::Error);
    alloc.deallocate(c);
    CHECK_THROWS_AS(alloc.deallocate(&device), pneuma::Error);
  }
}
