#include "engine/core/generator.h"

#include <atomic>

#include "engine/core/random.h"

namespace pneuma {

namespace {
std::atomic<uint64_t> g_seed{0x5eed};
std::atomic<uint64_t> g_counter{0};
}  // namespace

void manual_seed(uint64_t seed) {
  g_seed = seed;
  g_counter = 0;
}

uint64_t next_seed() { return random::bits(g_seed.load(), g_counter.fetch_add(1)); }

}  // namespace pneuma
