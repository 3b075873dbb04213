#pragma once
// The default source of seeds for parameter initialisation and dropout, as
// torch.manual_seed: reproducible runs call manual_seed once at start.
#include <cstdint>

namespace pneuma {

void manual_seed(uint64_t seed);
// A fresh seed from the default generator (advances it).
uint64_t next_seed();

}  // namespace pneuma
