#pragma once
// Patient-level splits: every record of a patient lands on one side, and each side
// keeps the class ratio (and the domain mix) of the whole manifest. A patient's stratum
// is (majority label, domain); within a stratum, patients are shuffled by the seed,
// ordered largest first, and each goes to the fold that holds the fewest images of
// that stratum so far, so per-fold counts differ by at most one patient's images.
#include <cstdint>
#include <vector>

#include "engine/data/manifest.h"

namespace pneuma::data {

// Fold in [0, k) for every record.
std::vector<int64_t> stratified_patient_kfold(const Manifest& manifest, int64_t k = 4, uint64_t seed = 0);
// Writes the folds into the records (fold column) and sets has_fold.
void assign_folds(Manifest& manifest, int64_t k = 4, uint64_t seed = 0);

// true for validation records: about `fraction` of each stratum's images, whole patients.
std::vector<bool> patient_validation_split(const Manifest& manifest, double fraction, uint64_t seed = 0);

struct Split {
  Manifest train, val;
};
// val = records whose fold column equals `fold`, train = the others (all must have a fold).
Split split_fold(const Manifest& manifest, int64_t fold);
Split split_validation(const Manifest& manifest, double fraction, uint64_t seed = 0);

}  // namespace pneuma::data
