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

GeneratorState generator_state() { return {g_seed.load(), g_counter.load()}; }

void set_generator_state(const GeneratorState& state) {
  g_seed = state.seed;
  g_counter = state.counter;
}

}  // namespace pneuma
