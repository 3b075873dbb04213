#pragma once
// Samplers: the dataset indices of one epoch, a pure function of (seed, epoch), so an
// epoch can be replayed and any worker count yields the same order.
#include <cstdint>
#include <string>
#include <vector>

namespace pneuma::data {

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual int64_t epoch_length() const = 0;
  virtual std::vector<int64_t> indices(int64_t epoch) const = 0;
};

class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(int64_t size);
  int64_t epoch_length() const override { return size_; }
  std::vector<int64_t> indices(int64_t epoch) const override;

 private:
  int64_t size_;
};

// A fresh permutation of [0, size) every epoch.
class ShuffledSampler : public Sampler {
 public:
  ShuffledSampler(int64_t size, uint64_t seed);
  int64_t epoch_length() const override { return size_; }
  std::vector<int64_t> indices(int64_t epoch) const override;

 private:
  int64_t size_;
  uint64_t seed_;
};

// torch WeightedRandomSampler: `num_samples` draws, index i with probability
// weights[i] / sum(weights); with or without replacement.
class WeightedSampler : public Sampler {
 public:
  WeightedSampler(std::vector<double> weights, int64_t num_samples, uint64_t seed, bool replacement = true);
  int64_t epoch_length() const override { return num_samples_; }
  std::vector<int64_t> indices(int64_t epoch) const override;

 private:
  std::vector<double> weights_, cumulative_;
  int64_t num_samples_;
  uint64_t seed_;
  bool replacement_;
};

// Per-sample weights 1 / count(label): every class drawn equally often in expectation
// (the class-weighted sampler is WeightedSampler over these).
std::vector<double> class_balanced_weights(const std::vector<int64_t>& labels);
// Per-class loss weights n / (classes * count(c)) (sklearn's "balanced").
std::vector<double> class_weights(const std::vector<int64_t>& labels, int64_t num_classes = 0);

// The three-branch paper's sampler: every batch holds batch_size / (classes x domains)
// samples of each (class, domain) group, e.g. batch 32 = 16 pediatric + 16 adult, each
// 8 normal + 8 pneumonia. Each group is drawn without replacement from a fresh
// permutation, and smaller groups are cycled (oversampled) as often as needed. An
// epoch is `batches` batches; the default is enough batches for the largest group to be
// seen once. Samples are shuffled within each batch.
class BalancedSampler : public Sampler {
 public:
  BalancedSampler(const std::vector<int64_t>& labels, const std::vector<int64_t>& domains, int64_t batch_size,
                  uint64_t seed, int64_t batches = 0);
  int64_t epoch_length() const override { return batches_ * batch_size_; }
  std::vector<int64_t> indices(int64_t epoch) const override;
  int64_t batches() const { return batches_; }
  int64_t groups() const { return static_cast<int64_t>(members_.size()); }
  int64_t per_group() const { return per_group_; }

 private:
  std::vector<std::vector<int64_t>> members_;  // by group = label * domains + domain
  int64_t batch_size_, per_group_, batches_;
  uint64_t seed_;
};

}  // namespace pneuma::data
