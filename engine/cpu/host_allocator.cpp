#include "engine/cpu/host_allocator.h"

#include <cctype>
#include <cstdlib>
#include <limits>
#include <new>

#include "engine/core/error.h"
#include "engine/cpu/host_arena.h"

namespace pneuma::cpu {

namespace {
size_t round_to_alignment(size_t nbytes) {
  return (std::max<size_t>(nbytes, 1) + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
}

void* aligned_or_null(size_t nbytes) { return std::aligned_alloc(kHostAlignment, round_to_alignment(nbytes)); }

// Created on first use and never destroyed: tensors held in static objects may be freed
// after static destructors have run.
HostArena& host_cache() {
  static auto* cache =
      new HostArena(aligned_or_null, [](void* block) { std::free(block); }, kHostCacheGranularity, host_cache_limit());
  return *cache;
}
}  // namespace

size_t parse_cache_bytes(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  size_t shift = 0;
  bool ok = digits > 0 && digits + 1 >= text.size();
  if (ok && digits < text.size()) {
    switch (std::toupper(static_cast<unsigned char>(text[digits]))) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      default: ok = false;
    }
  }
  unsigned long long value = 0;
  if (ok) {
    try {
      value = std::stoull(text.substr(0, digits));
    } catch (const std::exception&) {
      ok = false;
    }
  }
  ok = ok && value <= (std::numeric_limits<size_t>::max() >> shift);
  PNEUMA_CHECK(ok, "PNEUMA_CPU_CACHE_BYTES='", text,
               "' is not a byte count (digits, optionally followed by K, M or G)");
  return static_cast<size_t>(value) << shift;
}

size_t host_cache_limit() {
  static const size_t limit = [] {
    const char* text = std::getenv("PNEUMA_CPU_CACHE_BYTES");
    return text == nullptr ? kDefaultHostCacheLimit : parse_cache_bytes(text);
  }();
  return limit;
}

void* host_allocate(size_t nbytes) {
  if (host_cached_size(nbytes)) return host_cache().allocate(nbytes);
  void* block = aligned_or_null(nbytes);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}

void host_free(void* block, size_t nbytes) {
  if (host_cached_size(nbytes)) host_cache().deallocate(block);
  else std::free(block);
}

cuda::AllocatorStats host_cache_stats() { return host_cache().stats(); }

void host_empty_cache() { host_cache().empty_cache(); }

}  // namespace pneuma::cpu
