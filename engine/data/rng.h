#pragma once
// Random streams of the data pipeline, built on the counter-based generator in
// engine/core/random.h: a stream is (seed, counter), and every seed below is a pure
// function of (run seed, epoch, position, view, ...), so which thread draws a number,
// and in which order samples are processed, never changes what is drawn.
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "engine/core/random.h"

namespace pneuma::data {

// A sub-seed: independent streams for distinct (seed, key) pairs.
inline uint64_t derive_seed(uint64_t seed, uint64_t key) { return random::bits(seed ^ 0x6a09e667f3bcc909ULL, key); }

// Seed of view `view` of the sample at `position` of `epoch`.
inline uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t position, int64_t view = 0) {
  return derive_seed(derive_seed(derive_seed(seed, static_cast<uint64_t>(epoch)), static_cast<uint64_t>(position)),
                     static_cast<uint64_t>(view));
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t bits() { return random::bits(seed_, counter_++); }
  double uniform() { return random::uniform(seed_, counter_++); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [lo, hi], both included.
  int64_t integer(int64_t lo, int64_t hi) {
    const int64_t span = hi - lo + 1;
    int64_t v = lo + static_cast<int64_t>(uniform() * static_cast<double>(span));
    return v > hi ? hi : v;
  }
  bool bernoulli(double p) { return uniform() < p; }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t seed_;
  uint64_t counter_ = 0;
};

// Fisher-Yates permutation of [0, n) determined by the seed alone.
inline std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.integer(0, i)]);
  return p;
}

template <class T>
void shuffle(std::vector<T>& items, uint64_t seed) {
  Rng rng(seed);
  for (int64_t i = static_cast<int64_t>(items.size()) - 1; i > 0; --i) std::swap(items[i], items[rng.integer(0, i)]);
}

}  // namespace pneuma::data
