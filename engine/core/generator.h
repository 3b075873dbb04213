#pragma once
// The default source of seeds for parameter initialisation and dropout, as
// torch.manual_seed: reproducible runs call manual_seed once at start.
#include <cstdint>

namespace pneuma {

void manual_seed(uint64_t seed);
// A fresh seed from the default generator (advances it).
uint64_t next_seed();

// The whole state of the default generator, so a resumed run draws what an uninterrupted
// one would have drawn.
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t counter = 0;
};
GeneratorState generator_state();
void set_generator_state(const GeneratorState& state);

}  // namespace pneuma
