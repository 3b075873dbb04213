#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/cpu/host_allocator.h"
#include "engine/cpu/host_arena.h"

using namespace pneuma;
using pneuma::cuda::CachePolicy;
using pneuma::cuda::CachingAllocator;

namespace {
// malloc/free that record which blocks are out, so a test sees what the cache returned.
struct CountingHeap {
  std::mutex mutex;
  std::set<void*> blocks;
  int64_t allocations = 0;
  CachingAllocator make(CachePolicy policy) {
    return CachingAllocator(
        [this](size_t n) {
          void* p = std::malloc(n);
          std::lock_guard<std::mutex> lock(mutex);
          blocks.insert(p);
          ++allocations;
          return p;
        },
        [this](void* p) {
          {
            std::lock_guard<std::mutex> lock(mutex);
            REQUIRE(blocks.erase(p) == 1);
          }
          std::free(p);
        },
        policy);
  }
};

constexpr size_t kMiB = size_t{1} << 20;

// A HostArena over a CountingHeap, as host_allocate's (64 KiB granularity).
cpu::HostArena make_arena(CountingHeap& heap, size_t max_cached_bytes) {
  return cpu::HostArena(
      [&heap](size_t n) {
        void* p = std::malloc(n);
        std::lock_guard<std::mutex> lock(heap.mutex);
        heap.blocks.insert(p);
        ++heap.allocations;
        return p;
      },
      [&heap](void* p) {
        {
          std::lock_guard<std::mutex> lock(heap.mutex);
          REQUIRE(heap.blocks.erase(p) == 1);
        }
        std::free(p);
      },
      65536, max_cached_bytes);
}
}  // namespace

TEST_SUITE("allocator") {
  TEST_CASE("host cache policy: sizes round to the granularity - not to 25% classes") {
    CountingHeap heap;
    CachingAllocator alloc = heap.make(CachePolicy{.granularity = 65536});
    CHECK(alloc.block_size(1) == 65536);
    CHECK(alloc.block_size(5 * kMiB + 1) == 5 * kMiB + 65536);
    CHECK(alloc.block_size(5 * kMiB) == 5 * kMiB);
    // the default policy keeps the device allocator's classes
    CachingAllocator device_like = heap.make(CachePolicy{});
    CHECK(device_like.block_size(5 * kMiB + 1) == CachingAllocator::size_class(5 * kMiB + 1));
  }

  TEST_CASE("host cache policy: the bound releases the oldest cached blocks first") {
    CountingHeap heap;
    CachingAllocator alloc = heap.make(CachePolicy{.granularity = 65536, .max_cached_bytes = 3 * kMiB});
    void* a = alloc.allocate(kMiB);
    void* b = alloc.allocate(kMiB);
    void* c = alloc.allocate(2 * kMiB);
    alloc.deallocate(a);
    alloc.deallocate(b);
    CHECK(alloc.stats().reserved - alloc.stats().allocated == 2 * kMiB);
    alloc.deallocate(c);  // 4 MiB free > 3 MiB: a, the oldest, goes back
    CHECK(alloc.stats().reserved - alloc.stats().allocated == 3 * kMiB);
    CHECK(alloc.stats().device_frees == 1);
    CHECK(heap.blocks.count(b) == 1);
    CHECK(heap.blocks.count(c) == 1);
    // the cached blocks are reused
    CHECK(alloc.allocate(2 * kMiB) == c);
    CHECK(alloc.allocate(kMiB) == b);
    CHECK(alloc.stats().cache_hits == 2);
    // a block larger than the bound is never cached
    void* big = alloc.allocate(4 * kMiB);
    alloc.deallocate(big);
    CHECK(alloc.stats().device_frees == 2);
    CHECK(alloc.stats().reserved == 3 * kMiB);
    alloc.deallocate(b);
    alloc.deallocate(c);
    alloc.empty_cache();
    CHECK(heap.blocks.empty());
    CHECK(alloc.stats().reserved == 0);
  }

  TEST_CASE("host cache policy: a zero bound caches nothing") {
    CountingHeap heap;
    CachingAllocator alloc = heap.make(CachePolicy{.granularity = 65536, .max_cached_bytes = 0});
    for (int i = 0; i < 3; ++i) alloc.deallocate(alloc.allocate(kMiB));
    CHECK(heap.allocations == 3);
    CHECK(heap.blocks.empty());
  }

  TEST_CASE("host cache: concurrent allocate/free keeps consistent books") {
    CountingHeap heap;
    CachingAllocator alloc = heap.make(CachePolicy{.granularity = 65536, .max_cached_bytes = 8 * kMiB});
    std::vector<std::thread> threads;
    std::atomic<int> overlaps{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          const size_t n = kMiB + static_cast<size_t>((i + t) % 5) * 65536;
          auto* p = static_cast<unsigned char*>(alloc.allocate(n));
          // a block handed to two threads at once would see the other's mark
          std::memset(p, t + 1, n);
          std::this_thread::yield();
          for (size_t k = 0; k < n; k += 4096)
            if (p[k] != t + 1) ++overlaps;
          alloc.deallocate(p);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(overlaps == 0);
    const auto s = alloc.stats();
    CHECK(s.allocated == 0);
    CHECK(s.reserved <= 8 * kMiB);
    CHECK(s.cache_hits + s.device_allocations == 800);
    CHECK(s.device_allocations - s.device_frees == static_cast<int64_t>(heap.blocks.size()));
    alloc.empty_cache();
    CHECK(heap.blocks.empty());
  }

  TEST_CASE("CPU storage reuses large blocks and not small ones") {
    if (cpu::host_cache_limit() < 4 * kMiB) return;  // PNEUMA_CPU_CACHE_BYTES turned the cache (nearly) off
    const auto before = cpu::host_cache_stats();
    void* first = nullptr;
    {
      Tensor t = Tensor::empty({3, 512, 512});  // 3 MiB
      first = t.raw_data();
      CHECK(cpu::host_cache_stats().allocated >= before.allocated + 3 * kMiB);
    }
    Tensor again = Tensor::empty({3, 512, 512});
    CHECK(again.raw_data() == first);
    CHECK(cpu::host_cache_stats().cache_hits > before.cache_hits);
    CHECK(reinterpret_cast<uintptr_t>(again.raw_data()) % cpu::kHostAlignment == 0);
    {
      Tensor small = Tensor::empty({1000});
      CHECK(reinterpret_cast<uintptr_t>(small.raw_data()) % cpu::kHostAlignment == 0);
    }
    CHECK(cpu::host_cache_stats().allocated == before.allocated + 3 * kMiB);
    // zero_fill covers a reused block too
    void* data = again.raw_data();
    std::memset(data, 0x5a, 3 * kMiB);
    again = Tensor();
    Tensor zeros = Tensor::zeros({3, 512, 512});
    CHECK(zeros.raw_data() == data);
    const std::vector<double> values = zeros.to_vector();
    CHECK(std::all_of(values.begin(), values.end(), [](double v) { return v == 0.0; }));
#ifdef PNEUMA_POISON_EMPTY
    // sanitizer builds poison a reused block's unspecified contents as a fresh one's
    std::memset(zeros.raw_data(), 0, 3 * kMiB);
    zeros = Tensor();
    Tensor poisoned = Tensor::empty({3, 512, 512});
    CHECK(poisoned.raw_data() == data);
    const auto* bytes = static_cast<const unsigned char*>(poisoned.raw_data());
    CHECK(bytes[0] == 0xff);
    CHECK(bytes[3 * kMiB - 1] == 0xff);
#endif
    cpu::host_empty_cache();
    CHECK(cpu::host_cached_bytes(cpu::host_cache_stats()) == 0);
  }

  TEST_CASE("PNEUMA_CPU_CACHE_BYTES values") {
    CHECK(cpu::parse_cache_bytes("0") == 0);
    CHECK(cpu::parse_cache_bytes("12345") == 12345);
    CHECK(cpu::parse_cache_bytes("64K") == 65536);
    CHECK(cpu::parse_cache_bytes("3m") == 3 * kMiB);
    CHECK(cpu::parse_cache_bytes("2G") == size_t{2} << 30);
    for (const char* bad : {"", "G", "1.5G", "12GB", "-1", " 1", "99999999999999999999999"})
      CHECK_THROWS_WITH_AS(cpu::parse_cache_bytes(bad), doctest::Contains("PNEUMA_CPU_CACHE_BYTES"), Error);
  }

  TEST_CASE("host arena: a freed block serves smaller requests and merges back") {
    CountingHeap heap;
    cpu::HostArena arena = make_arena(heap, 64 * kMiB);
    auto* big = static_cast<char*>(arena.allocate(8 * kMiB));
    arena.deallocate(big);
    // two smaller tensors fit in the one block: no new memory from the system
    void* a = arena.allocate(2 * kMiB);
    void* b = arena.allocate(3 * kMiB - 100);  // rounds up to 3 MiB
    CHECK(a == big);
    CHECK(b == big + 2 * kMiB);
    CHECK(heap.allocations == 1);
    CHECK(arena.stats().allocated == 5 * kMiB);
    CHECK(arena.stats().reserved == 8 * kMiB);
    void* c = arena.allocate(3 * kMiB);  // the rest, exactly
    CHECK(c == big + 5 * kMiB);
    arena.deallocate(b);
    arena.deallocate(a);
    arena.deallocate(c);
    // the pieces merged: the whole block serves its full size again
    CHECK(arena.allocate(8 * kMiB) == big);
    CHECK(heap.allocations == 1);
    CHECK(arena.stats().cache_hits == 4);
    // and a request larger than any free block takes new memory
    void* more = arena.allocate(kMiB);
    CHECK(heap.allocations == 2);
    arena.deallocate(big);
    arena.deallocate(more);
    arena.empty_cache();
    CHECK(heap.blocks.empty());
    CHECK(arena.stats().reserved == 0);
  }

  TEST_CASE("host arena: best fit takes the smallest free block that fits") {
    CountingHeap heap;
    cpu::HostArena arena = make_arena(heap, 64 * kMiB);
    void* large = arena.allocate(6 * kMiB);
    void* small = arena.allocate(2 * kMiB);
    arena.deallocate(large);
    arena.deallocate(small);
    void* again = arena.allocate(2 * kMiB);
    CHECK(again == small);
    void* piece = arena.allocate(kMiB);
    CHECK(piece == large);  // the 2 MiB block is taken: the 6 MiB one splits
    CHECK(heap.allocations == 2);
    arena.deallocate(again);
    arena.deallocate(piece);
  }

  TEST_CASE("host arena: the bound releases idle segments oldest first and keeps ones in use") {
    CountingHeap heap;
    cpu::HostArena arena = make_arena(heap, 3 * kMiB);
    void* a = arena.allocate(2 * kMiB);
    void* b = arena.allocate(2 * kMiB);
    auto* c = static_cast<char*>(arena.allocate(4 * kMiB));
    arena.deallocate(a);
    CHECK(arena.stats().device_frees == 0);
    arena.deallocate(b);  // 4 MiB free > 3: a's segment, idle longest, goes
    CHECK(arena.stats().device_frees == 1);
    CHECK(heap.blocks.count(a) == 0);
    CHECK(heap.blocks.count(b) == 1);
    // free space inside a segment in use is not returned (it cannot be)
    void* d = arena.allocate(kMiB);
    CHECK(d == b);
    void* e = arena.allocate(kMiB);
    CHECK(e == static_cast<char*>(b) + kMiB);
    arena.deallocate(c);  // c's whole segment is idle now: 4 MiB free > 3 MiB, released
    CHECK(heap.blocks.count(c) == 0);
    CHECK(arena.stats().reserved == 2 * kMiB);
    arena.deallocate(d);
    arena.deallocate(e);
  }

  TEST_CASE("host arena: a zero bound keeps no idle segment") {
    CountingHeap heap;
    cpu::HostArena arena = make_arena(heap, 0);
    for (int i = 0; i < 3; ++i) arena.deallocate(arena.allocate(2 * kMiB));
    CHECK(heap.allocations == 3);
    CHECK(heap.blocks.empty());
  }

  TEST_CASE("host arena: concurrent allocate/free keeps consistent books") {
    CountingHeap heap;
    cpu::HostArena arena = make_arena(heap, 16 * kMiB);
    std::vector<std::thread> threads;
    std::atomic<int> overlaps{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::pair<unsigned char*, size_t>> held;
        for (int i = 0; i < 200; ++i) {
          const size_t n = kMiB / 2 + static_cast<size_t>((i * 7 + t) % 11) * 65536;
          auto* p = static_cast<unsigned char*>(arena.allocate(n));
          // a block overlapping another thread's would see that thread's mark
          std::memset(p, t + 1, n);
          held.emplace_back(p, n);
          std::this_thread::yield();
          if (held.size() > 3 || i % 3 == 0) {
            const auto [q, m] = held.front();
            for (size_t k = 0; k < m; k += 4096)
              if (q[k] != t + 1) ++overlaps;
            arena.deallocate(q);
            held.erase(held.begin());
          }
        }
        for (const auto& [q, m] : held) arena.deallocate(q);
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(overlaps == 0);
    const auto s = arena.stats();
    CHECK(s.allocated == 0);
    CHECK(s.cache_hits + s.device_allocations == 800);
    CHECK(s.device_allocations - s.device_frees == static_cast<int64_t>(heap.blocks.size()));
    arena.empty_cache();
    CHECK(heap.blocks.empty());
    CHECK(arena.stats().reserved == 0);
  }
}
