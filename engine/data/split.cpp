#include "engine/data/split.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/core/error.h"
#include "engine/data/rng.h"

namespace pneuma::data {

namespace {

struct Patient {
  std::vector<int64_t> records;
  int64_t stratum = 0;
};

// Patients grouped by stratum, each stratum's patients in seeded order (then largest
// first when asked).
std::vector<std::vector<Patient>> strata_of(const Manifest& m, uint64_t seed, bool largest_first) {
  const std::vector<std::string> ids = m.patient_ids();
  const std::vector<int64_t> domains = m.domain_ids();
  const int64_t classes = std::max<int64_t>(1, m.num_classes());
  std::map<std::string, Patient> by_id;  // ordered: the result does not depend on hashing
  for (int64_t i = 0; i < m.size(); ++i) by_id[ids[i]].records.push_back(i);
  int64_t strata_count = 0;
  for (auto& [id, p] : by_id) {
    std::vector<int64_t> votes(static_cast<size_t>(classes), 0);
    std::vector<int64_t> domain_votes(static_cast<size_t>(*std::max_element(domains.begin(), domains.end()) + 1), 0);
    for (int64_t i : p.records) {
      ++votes[m.records[i].label];
      ++domain_votes[domains[i]];
    }
    const int64_t label = std::max_element(votes.begin(), votes.end()) - votes.begin();
    const int64_t domain = std::max_element(domain_votes.begin(), domain_votes.end()) - domain_votes.begin();
    p.stratum = domain * classes + label;
    strata_count = std::max(strata_count, p.stratum + 1);
  }
  std::vector<std::vector<Patient>> strata(static_cast<size_t>(strata_count));
  for (auto& [id, p] : by_id) strata[p.stratum].push_back(std::move(p));
  for (size_t s = 0; s < strata.size(); ++s) {
    shuffle(strata[s], derive_seed(seed, s));
    if (largest_first)
      std::stable_sort(strata[s].begin(), strata[s].end(),
                     [](const Patient& a, const Patient& b) { return a.records.size() > b.records.size(); });
  }
  return strata;
}

}  // namespace

std::vector<int64_t> stratified_patient_kfold(const Manifest& m, int64_t k, uint64_t seed) {
  PNEUMA_CHECK(k >= 2, "stratified_patient_kfold: k must be >= 2, got ", k);
  PNEUMA_CHECK(m.size() > 0, "stratified_patient_kfold: empty manifest");
  std::vector<int64_t> folds(static_cast<size_t>(m.size()), -1);
  std::vector<int64_t> total(static_cast<size_t>(k), 0);
  int64_t patients = 0;
  for (const auto& stratum : strata_of(m, seed, true)) {
    std::vector<int64_t> count(static_cast<size_t>(k), 0);
    for (const Patient& p : stratum) {
      ++patients;
      int64_t best = 0;
      for (int64_t f = 1; f < k; ++f)
        if (count[f] < count[best] || (count[f] == count[best] && total[f] < total[best])) best = f;
      const int64_t n = static_cast<int64_t>(p.records.size());
      count[best] += n;
      total[best] += n;
      for (int64_t i : p.records) folds[i] = best;
    }
  }
  PNEUMA_CHECK(patients >= k, "stratified_patient_kfold: ", patients, " patient(s) cannot fill ", k, " folds");
  return folds;
}

void assign_folds(Manifest& m, int64_t k, uint64_t seed) {
  const std::vector<int64_t> folds = stratified_patient_kfold(m, k, seed);
  for (int64_t i = 0; i < m.size(); ++i) m.records[i].fold = folds[i];
  m.has_fold = true;
}

std::vector<bool> patient_validation_split(const Manifest& m, double fraction, uint64_t seed) {
  PNEUMA_CHECK(fraction > 0 && fraction < 1, "patient_validation_split: fraction must be in (0, 1), got ", fraction);
  PNEUMA_CHECK(m.size() > 0, "patient_validation_split: empty manifest");
  std::vector<bool> val(static_cast<size_t>(m.size()), false);
  for (const auto& stratum : strata_of(m, seed, false)) {
    int64_t size = 0;
    for (const Patient& p : stratum) size += static_cast<int64_t>(p.records.size());
    const double target = fraction * static_cast<double>(size);
    // Patients in random order; one that would overshoot more than it helps is passed
    // over, so later (smaller) ones can still close the gap.
    double taken = 0;
    for (const Patient& p : stratum) {
      const double n = static_cast<double>(p.records.size());
      if (std::abs(taken + n - target) >= std::abs(taken - target)) continue;
      taken += n;
      for (int64_t i : p.records) val[i] = true;
    }
  }
  return val;
}

Split split_fold(const Manifest& m, int64_t fold) {
  std::vector<int64_t> train, val;
  for (int64_t i = 0; i < m.size(); ++i) {
    PNEUMA_CHECK(m.records[i].fold >= 0, "split_fold: record '", m.records[i].path, "' (line ", m.records[i].line,
                 ") has no fold; assign folds first");
    (m.records[i].fold == fold ? val : train).push_back(i);
  }
  PNEUMA_CHECK(!val.empty(), "split_fold: no record has fold ", fold);
  return {m.subset(train), m.subset(val)};
}

Split split_validation(const Manifest& m, double fraction, uint64_t seed) {
  const std::vector<bool> is_val = patient_validation_split(m, fraction, seed);
  std::vector<int64_t> train, val;
  for (int64_t i = 0; i < m.size(); ++i) (is_val[i] ? val : train).push_back(i);
  return {m.subset(train), m.subset(val)};
}

}  // namespace pneuma::data
