#include "engine/data/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "engine/core/error.h"
#include "engine/data/rng.h"

namespace pneuma::data {

namespace {
// Stream keys, so that samplers sharing a seed do not share streams.
constexpr uint64_t kShuffleKey = 0x5348554646ULL, kWeightedKey = 0x5745494748ULL, kBalancedKey = 0x42414c414eULL;
}  // namespace

SequentialSampler::SequentialSampler(int64_t size) : size_(size) {
  PNEUMA_CHECK(size >= 0, "SequentialSampler: size must be >= 0, got ", size);
}

std::vector<int64_t> SequentialSampler::indices(int64_t) const {
  std::vector<int64_t> out(static_cast<size_t>(size_));
  std::iota(out.begin(), out.end(), int64_t{0});
  return out;
}

ShuffledSampler::ShuffledSampler(int64_t size, uint64_t seed) : size_(size), seed_(seed) {
  PNEUMA_CHECK(size >= 0, "ShuffledSampler: size must be >= 0, got ", size);
}

std::vector<int64_t> ShuffledSampler::indices(int64_t epoch) const {
  return permutation(size_, derive_seed(derive_seed(seed_, kShuffleKey), static_cast<uint64_t>(epoch)));
}

WeightedSampler::WeightedSampler(std::vector<double> weights, int64_t num_samples, uint64_t seed, bool replacement)
    : weights_(std::move(weights)), num_samples_(num_samples), seed_(seed), replacement_(replacement) {
  PNEUMA_CHECK(!weights_.empty(), "WeightedSampler: no weights");
  PNEUMA_CHECK(num_samples > 0, "WeightedSampler: num_samples must be > 0, got ", num_samples);
  double total = 0;
  int64_t positive = 0;
  for (double w : weights_) {
    PNEUMA_CHECK(std::isfinite(w) && w >= 0, "WeightedSampler: weights must be finite and >= 0, got ", w);
    total += w;
    positive += w > 0;
    cumulative_.push_back(total);
  }
  PNEUMA_CHECK(total > 0, "WeightedSampler: all weights are zero");
  PNEUMA_CHECK(replacement || num_samples <= positive, "WeightedSampler: cannot draw ", num_samples,
               " samples without replacement from ", positive, " with weight > 0");
}

std::vector<int64_t> WeightedSampler::indices(int64_t epoch) const {
  Rng rng(derive_seed(derive_seed(seed_, kWeightedKey), static_cast<uint64_t>(epoch)));
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(num_samples_));
  if (replacement_) {
    const double total = cumulative_.back();
    for (int64_t i = 0; i < num_samples_; ++i) {
      const double u = rng.uniform() * total;
      const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
      out.push_back(std::min<int64_t>(it - cumulative_.begin(), static_cast<int64_t>(weights_.size()) - 1));
    }
    return out;
  }
  // Efraimidis-Spirakis: the num_samples largest keys u^(1/w) are a weighted sample.
  std::vector<std::pair<double, int64_t>> keys;
  for (size_t i = 0; i < weights_.size(); ++i) {
    const double u = rng.uniform();
    if (weights_[i] > 0) keys.emplace_back(std::log(std::max(u, 1e-300)) / weights_[i], static_cast<int64_t>(i));
  }
  std::partial_sort(keys.begin(), keys.begin() + num_samples_, keys.end(), std::greater<>());
  for (int64_t i = 0; i < num_samples_; ++i) out.push_back(keys[i].second);
  return out;
}

std::vector<double> class_balanced_weights(const std::vector<int64_t>& labels) {
  std::vector<int64_t> counts;
  for (int64_t l : labels) {
    PNEUMA_CHECK(l >= 0, "class_balanced_weights: label ", l, " < 0");
    if (l >= static_cast<int64_t>(counts.size())) counts.resize(static_cast<size_t>(l + 1), 0);
    ++counts[l];
  }
  std::vector<double> out;
  out.reserve(labels.size());
  for (int64_t l : labels) out.push_back(1.0 / static_cast<double>(counts[l]));
  return out;
}

std::vector<double> class_weights(const std::vector<int64_t>& labels, int64_t num_classes) {
  int64_t k = num_classes;
  for (int64_t l : labels) {
    PNEUMA_CHECK(l >= 0, "class_weights: label ", l, " < 0");
    k = std::max(k, l + 1);
  }
  std::vector<int64_t> counts(static_cast<size_t>(k), 0);
  for (int64_t l : labels) ++counts[l];
  std::vector<double> out(static_cast<size_t>(k), 0.0);
  for (int64_t c = 0; c < k; ++c)
    if (counts[c] > 0) out[c] = static_cast<double>(labels.size()) / (static_cast<double>(k) * counts[c]);
  return out;
}

BalancedSampler::BalancedSampler(const std::vector<int64_t>& labels, const std::vector<int64_t>& domains,
                                 int64_t batch_size, uint64_t seed, int64_t batches)
    : batch_size_(batch_size), seed_(seed) {
  PNEUMA_CHECK(labels.size() == domains.size(), "BalancedSampler: ", labels.size(), " labels but ", domains.size(),
               " domains");
  PNEUMA_CHECK(!labels.empty(), "BalancedSampler: no samples");
  int64_t classes = 0, domain_count = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    PNEUMA_CHECK(labels[i] >= 0 && domains[i] >= 0, "BalancedSampler: negative label or domain at index ", i);
    classes = std::max(classes, labels[i] + 1);
    domain_count = std::max(domain_count, domains[i] + 1);
  }
  members_.resize(static_cast<size_t>(classes * domain_count));
  for (size_t i = 0; i < labels.size(); ++i)
    members_[labels[i] * domain_count + domains[i]].push_back(static_cast<int64_t>(i));
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t d = 0; d < domain_count; ++d)
      PNEUMA_CHECK(!members_[c * domain_count + d].empty(), "BalancedSampler: no sample of class ", c, " in domain ", d,
                   ", so batches cannot be balanced by class and domain");
  const int64_t g = groups();
  PNEUMA_CHECK(batch_size > 0 && batch_size % g == 0, "BalancedSampler: batch size ", batch_size,
               " is not a positive multiple of the ", g, " (class x domain) groups (", classes, " classes x ",
               domain_count, " domains)");
  per_group_ = batch_size / g;
  size_t largest = 0;
  for (const auto& m : members_) largest = std::max(largest, m.size());
  batches_ = batches > 0 ? batches : (static_cast<int64_t>(largest) + per_group_ - 1) / per_group_;
}

std::vector<int64_t> BalancedSampler::indices(int64_t epoch) const {
  const uint64_t epoch_seed = derive_seed(derive_seed(seed_, kBalancedKey), static_cast<uint64_t>(epoch));
  const int64_t g = groups(), need = batches_ * per_group_;
  // Each group's stream for the epoch: successive permutations of its members.
  std::vector<std::vector<int64_t>> streams(static_cast<size_t>(g));
  for (int64_t k = 0; k < g; ++k) {
    const auto& members = members_[k];
    const int64_t size = static_cast<int64_t>(members.size());
    auto& s = streams[k];
    s.reserve(static_cast<size_t>(need));
    for (uint64_t cycle = 0; static_cast<int64_t>(s.size()) < need; ++cycle) {
      const std::vector<int64_t> p = permutation(size, derive_seed(derive_seed(epoch_seed, k), cycle));
      for (int64_t j = 0; j < size && static_cast<int64_t>(s.size()) < need; ++j) s.push_back(members[p[j]]);
    }
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(epoch_length()));
  std::vector<int64_t> batch;
  for (int64_t b = 0; b < batches_; ++b) {
    batch.clear();
    for (int64_t k = 0; k < g; ++k)
      batch.insert(batch.end(), streams[k].begin() + b * per_group_, streams[k].begin() + (b + 1) * per_group_);
    shuffle(batch, derive_seed(epoch_seed, static_cast<uint64_t>(g + b)));
    out.insert(out.end(), batch.begin(), batch.end());
  }
  return out;
}

}  // namespace pneuma::data
