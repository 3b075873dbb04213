#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "engine/core/error.h"
#include "engine/data/manifest.h"
#include "engine/data/sampler.h"
#include "engine/data/split.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using namespace pneuma::data;

TEST_SUITE("data") {
  TEST_CASE("sampler: shuffled and weighted samplers") {
    const ShuffledSampler s(100, 5);
    const std::vector<int64_t> e0 = s.indices(0), e1 = s.indices(1);
    std::vector<int64_t> sorted = e0;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 100; ++i) CHECK(sorted[i] == i);
    CHECK(e0 != e1);
    CHECK(e0 == ShuffledSampler(100, 5).indices(0));
    CHECK(e0 != ShuffledSampler(100, 6).indices(0));
    CHECK(SequentialSampler(4).indices(3) == std::vector<int64_t>{0, 1, 2, 3});

    // class-weighted: 90 of class 0, 10 of class 1 drawn about equally often
    std::vector<int64_t> labels(100, 0);
    for (int i = 90; i < 100; ++i) labels[i] = 1;
    const WeightedSampler w(class_balanced_weights(labels), 20000, 3);
    int64_t ones = 0;
    for (int64_t i : w.indices(0)) ones += labels[i];
    CHECK(ones == doctest::Approx(10000).epsilon(0.03));
    const WeightedSampler nr(class_balanced_weights(labels), 20, 3, /*replacement=*/false);
    std::vector<int64_t> drawn = nr.indices(2);
    std::sort(drawn.begin(), drawn.end());
    CHECK(std::unique(drawn.begin(), drawn.end()) == drawn.end());
    const std::vector<double> cw = class_weights(labels);
    CHECK(cw[0] == doctest::Approx(100.0 / (2 * 90)));
    CHECK(cw[1] == doctest::Approx(100.0 / (2 * 10)));
    CHECK_THROWS_WITH_AS(WeightedSampler({0.0, 0.0}, 3, 1), "WeightedSampler: all weights are zero", Error);
  }

  TEST_CASE("sampler: balanced batches are exactly 8:8:8:8 by class and domain at batch 32") {
    // Unequal groups: (class, domain) sizes 704, 90, 35, 9.
    std::vector<int64_t> labels, domains;
    const int sizes[2][2] = {{704, 90}, {35, 9}};
    for (int c = 0; c < 2; ++c)
      for (int d = 0; d < 2; ++d)
        for (int i = 0; i < sizes[c][d]; ++i) {
          labels.push_back(c);
          domains.push_back(d);
        }
    const BalancedSampler s(labels, domains, 32, 11);
    CHECK(s.groups() == 4);
    CHECK(s.per_group() == 8);
    CHECK(s.batches() == 704 / 8);
    CHECK(s.epoch_length() == s.batches() * 32);
    for (int64_t epoch : {0, 1}) {
      const std::vector<int64_t> idx = s.indices(epoch);
      REQUIRE(static_cast<int64_t>(idx.size()) == s.epoch_length());
      std::map<int64_t, int64_t> seen;
      for (int64_t b = 0; b < s.batches(); ++b) {
        int64_t count[2][2] = {{0, 0}, {0, 0}};
        for (int64_t k = 0; k < 32; ++k) {
          const int64_t i = idx[b * 32 + k];
          ++count[labels[i]][domains[i]];
          ++seen[i];
        }
        for (int c = 0; c < 2; ++c)
          for (int d = 0; d < 2; ++d) CHECK_MESSAGE(count[c][d] == 8, "batch ", b, " class ", c, " domain ", d);
      }
      // The largest group is seen once; smaller ones are cycled evenly (counts differ by at most 1).
      for (int c = 0; c < 2; ++c)
        for (int d = 0; d < 2; ++d) {
          int64_t lo = INT64_MAX, hi = 0;
          for (size_t i = 0; i < labels.size(); ++i)
            if (labels[i] == c && domains[i] == d) {
              lo = std::min(lo, seen[static_cast<int64_t>(i)]);
              hi = std::max(hi, seen[static_cast<int64_t>(i)]);
            }
          CHECK(hi - lo <= 1);
          CHECK(lo >= 1);
          if (sizes[c][d] == 704) CHECK(hi == 1);
        }
    }
    CHECK(s.indices(0) != s.indices(1));
    CHECK(s.indices(1) == BalancedSampler(labels, domains, 32, 11).indices(1));
    CHECK(BalancedSampler(labels, domains, 32, 11, 5).epoch_length() == 160);
    CHECK_THROWS_WITH_AS(BalancedSampler(labels, domains, 30, 1), doctest::Contains("batch size 30 is not a positive multiple of the 4"), Error);
    std::vector<int64_t> no_adult_normal = domains;
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] == 0) no_adult_normal[i] = 0;
    CHECK_THROWS_WITH_AS(BalancedSampler(labels, no_adult_normal, 32, 1), doctest::Contains("no sample of class 0 in domain 1"), Error);
  }

  TEST_CASE("split: stratified patient-level 4-fold on the Kermany train.csv") {
    PNEUMA_REQUIRE_KERMANY();
    const Manifest m = read_manifest(pneuma::testing::kermany_csv());
    const std::vector<int64_t> folds = stratified_patient_kfold(m, 4, 0);
    CHECK(folds == stratified_patient_kfold(m, 4, 0));
    CHECK(folds != stratified_patient_kfold(m, 4, 1));
    std::map<std::string, std::set<int64_t>> patient_folds;
    int64_t per_fold[4] = {0, 0, 0, 0}, pneumonia[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < m.size(); ++i) {
      REQUIRE(folds[i] >= 0);
      REQUIRE(folds[i] < 4);
      patient_folds[m.records[i].patient].insert(folds[i]);
      ++per_fold[folds[i]];
      pneumonia[folds[i]] += m.records[i].label;
    }
    int64_t leaks = 0;
    for (const auto& [patient, f] : patient_folds) leaks += f.size() > 1;
    CHECK(leaks == 0);
    const double overall = 3875.0 / 5216.0;
    for (int f = 0; f < 4; ++f) {
      const double ratio = static_cast<double>(pneumonia[f]) / per_fold[f];
      MESSAGE("fold ", f, ": ", per_fold[f], " images, pneumonia ratio ", ratio);
      CHECK(std::abs(ratio - overall) < 0.01);
      CHECK(std::abs(per_fold[f] - 5216 / 4) < 30);
    }
  }

  TEST_CASE("split: validation fraction by patient and the fold column and fold splits") {
    PNEUMA_REQUIRE_KERMANY();
    Manifest m = read_manifest(pneuma::testing::kermany_csv());
    const std::vector<bool> val = patient_validation_split(m, 0.2, 3);
    std::map<std::string, std::set<bool>> sides;
    int64_t n_val = 0, val_pneumonia = 0;
    for (int64_t i = 0; i < m.size(); ++i) {
      sides[m.records[i].patient].insert(val[i]);
      n_val += val[i];
      val_pneumonia += val[i] ? m.records[i].label : 0;
    }
    int64_t leaks = 0;
    for (const auto& [p, s] : sides) leaks += s.size() > 1;
    CHECK(leaks == 0);
    CHECK(n_val == doctest::Approx(0.2 * 5216).epsilon(0.01));
    CHECK(static_cast<double>(val_pneumonia) / n_val == doctest::Approx(3875.0 / 5216).epsilon(0.01));
    const Split sv = split_validation(m, 0.2, 3);
    CHECK(sv.train.size() + sv.val.size() == m.size());

    pneuma::testing::TempDir dir("folds");
    assign_folds(m, 4, 7);
    write_manifest(m, dir / "folds.csv");
    const Manifest back = read_manifest(dir / "folds.csv");
    REQUIRE(back.has_fold);
    const std::vector<int64_t> expected = stratified_patient_kfold(m, 4, 7);
    for (int64_t i = 0; i < back.size(); ++i) CHECK(back.records[i].fold == expected[i]);
    const Split s = split_fold(back, 2);
    CHECK(s.train.size() + s.val.size() == m.size());
    for (const Record& r : s.val.records) CHECK(r.fold == 2);
    CHECK_THROWS_WITH_AS(split_fold(read_manifest(pneuma::testing::kermany_csv()), 0), doctest::Contains("has no fold; assign folds first"), Error);
    CHECK_THROWS_WITH_AS(stratified_patient_kfold(m, 1), "stratified_patient_kfold: k must be >= 2, got 1", Error);
  }
}
