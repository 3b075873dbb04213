// engine/metrics/classification against scikit-learn 1.2 / numpy (Debian's, through
// tests/metrics/sklearn_metrics.py) on random data with and without ties, all-equal
// scores, perfect and inverted separation and tiny sets; the bootstrap's own properties.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/data/rng.h"
#include "engine/metrics/classification.h"
#include "tests/metrics/sklearn.h"

using namespace pneuma;
using nlohmann::json;

namespace {

struct BinaryCase {
  std::string name;
  std::vector<double> scores;
  std::vector<int64_t> labels;
};

// Labels Bernoulli(positive_rate); scores = separation * label + noise, rounded to
// `decimals` (fewer decimals, more ties; < 0: not rounded).
BinaryCase random_case(const std::string& name, int64_t n, double positive_rate, double separation, int decimals,
                       uint64_t seed) {
  data::Rng rng(seed);
  BinaryCase c{name, {}, {}};
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = rng.bernoulli(positive_rate) ? 1 : 0;
    double score = separation * static_cast<double>(label) + rng.normal();
    if (decimals >= 0) score = std::round(score * std::pow(10.0, decimals)) / std::pow(10.0, decimals);
    c.scores.push_back(score);
    c.labels.push_back(label);
  }
  // Both classes, whatever the draw.
  c.labels[0] = 0;
  c.labels[1] = 1;
  return c;
}

std::vector<BinaryCase> binary_cases() {
  std::vector<BinaryCase> cases = {
      random_case("continuous, no ties", 300, 0.4, 1.0, -1, 1),
      random_case("ties (1 decimal)", 200, 0.5, 0.8, 1, 2),
      random_case("heavy ties (integers)", 80, 0.3, 0.7, 0, 3),
      random_case("one positive in 40", 40, 0.0, 1.0, 2, 4),
      random_case("large", 3000, 0.25, 0.6, 3, 5),
      {"all scores equal", std::vector<double>(20, 0.3), {0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0}},
      {"perfect separation", {0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.9, 0.95}, {0, 0, 0, 0, 1, 1, 1, 1}},
      {"inverted separation", {0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.9, 0.95}, {1, 1, 1, 1, 0, 0, 0, 0}},
      {"two samples", {0.2, 0.7}, {0, 1}},
      {"two samples tied", {0.5, 0.5}, {1, 0}},
      {"three samples", {0.9, 0.4, 0.4}, {0, 1, 0}},
      {"logits (negative scores)", {-3.5, -0.2, 2.25, 0.0, -0.0, 7.0, -1.0}, {0, 1, 1, 0, 1, 1, 0}},
  };
  return cases;
}

// Thresholds to evaluate binary_metrics at: 0.5, every distinct score of small sets (the
// >= boundary), and values outside the scores (all or none predicted positive).
std::vector<double> probe_thresholds(const BinaryCase& c) {
  std::vector<double> t = {0.5};
  const auto [lo, hi] = std::minmax_element(c.scores.begin(), c.scores.end());
  t.push_back(*lo - 1);
  t.push_back(*hi + 1);
  if (c.scores.size() <= 40) {
    t.insert(t.end(), c.scores.begin(), c.scores.end());
  } else {
    for (size_t i = 0; i < c.scores.size(); i += c.scores.size() / 7) t.push_back(c.scores[i]);
  }
  return t;
}

const std::vector<double> kTargets = {0.0, 0.3, 0.5, 0.9, 0.95, 1.0};

void check_vector(const std::vector<double>& actual, const json& expected, double tolerance, const char* what) {
  INFO(what);
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO(what, "[", i, "]");
    CHECK(std::abs(actual[i] - expected[i].get<double>()) <= tolerance);
  }
}

struct MulticlassCase {
  std::string name;
  std::vector<std::vector<double>> probabilities;
  std::vector<int64_t> labels;
};

// Softmax of integer logits (rows with equal logits give bitwise equal probabilities, so
// columns have ties and some rows tie in the argmax); the true class gets +shift.
MulticlassCase random_multiclass(const std::string& name, int64_t n, int64_t classes, double shift, uint64_t seed) {
  data::Rng rng(seed);
  MulticlassCase c{name, {}, {}};
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = i < classes ? i : rng.integer(0, classes - 1);  // every class present
    std::vector<double> logits;
    for (int64_t j = 0; j < classes; ++j)
      logits.push_back(std::round(rng.normal() * 1.5) + (j == label ? shift : 0.0));
    const double top = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (double& v : logits) sum += v = std::exp(v - top);
    for (double& v : logits) v /= sum;
    c.probabilities.push_back(logits);
    c.labels.push_back(label);
  }
  return c;
}

}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("binary metrics equal scikit-learn: AUROC and ROC curve and thresholds and confusion-based metrics") {
    const std::vector<BinaryCase> cases = binary_cases();
    json requests = json::array();
    for (const BinaryCase& c : cases)
      requests.push_back({{"kind", "binary"},
                          {"scores", c.scores},
                          {"labels", c.labels},
                          {"thresholds", probe_thresholds(c)},
                          {"targets", kTargets}});
    const json results = testing::sklearn_results(requests);
    for (size_t k = 0; k < cases.size(); ++k) {
      const BinaryCase& c = cases[k];
      const json& expected = results[k];
      INFO("case: ", c.name);
      CHECK(metrics::roc_auc(c.scores, c.labels) == doctest::Approx(expected["auroc"].get<double>()).epsilon(1e-12));

      const metrics::RocCurve curve = metrics::roc_curve(c.scores, c.labels);
      check_vector(curve.fpr, expected["fpr"], 1e-15, "fpr");
      check_vector(curve.tpr, expected["tpr"], 1e-15, "tpr");
      check_vector(curve.thresholds, expected["thresholds"], 0, "thresholds");

      CHECK(metrics::youden_threshold(c.scores, c.labels) == expected["youden"].get<double>());
      for (size_t t = 0; t < kTargets.size(); ++t) {
        INFO("target sensitivity ", kTargets[t]);
        CHECK(metrics::threshold_for_sensitivity(c.scores, c.labels, kTargets[t]) ==
              expected["for_sensitivity"][t].get<double>());
      }
      for (const json& at : expected["at"]) {
        const double threshold = at["threshold"];
        INFO("threshold ", threshold);
        const metrics::BinaryMetrics m = metrics::binary_metrics(c.scores, c.labels, threshold);
        CHECK(m.threshold == threshold);
        CHECK(m.tp == at["tp"].get<int64_t>());
        CHECK(m.fp == at["fp"].get<int64_t>());
        CHECK(m.tn == at["tn"].get<int64_t>());
        CHECK(m.fn == at["fn"].get<int64_t>());
        CHECK(m.accuracy == doctest::Approx(at["accuracy"].get<double>()).epsilon(1e-14));
        CHECK(m.precision == doctest::Approx(at["precision"].get<double>()).epsilon(1e-14));
        CHECK(m.recall == doctest::Approx(at["recall"].get<double>()).epsilon(1e-14));
        CHECK(m.specificity == doctest::Approx(at["specificity"].get<double>()).epsilon(1e-14));
        CHECK(m.f1 == doctest::Approx(at["f1"].get<double>()).epsilon(1e-14));
      }
    }
  }

  TEST_CASE("multi-class metrics equal scikit-learn: one-vs-rest and macro AUROC and confusion and per-class F1") {
    std::vector<MulticlassCase> cases = {
        random_multiclass("3 classes", 150, 3, 1.0, 11),
        random_multiclass("4 classes, weak signal", 300, 4, 0.3, 12),
        random_multiclass("3 classes, tiny", 6, 3, 2.0, 13),
        random_multiclass("5 classes, strong signal", 100, 5, 3.0, 14),
    };
    // A class never predicted (its precision is 0/0 -> 0) and argmax ties (first wins).
    cases.push_back({"never-predicted class and argmax ties",
                     {{0.5, 0.5, 0.0}, {0.6, 0.4, 0.0}, {0.4, 0.6, 0.0}, {0.5, 0.5, 0.0}, {0.7, 0.3, 0.0},
                      {0.45, 0.45, 0.1}},
                     {0, 1, 1, 2, 0, 2}});
    json requests = json::array();
    for (const MulticlassCase& c : cases)
      requests.push_back({{"kind", "multiclass"}, {"probabilities", c.probabilities}, {"labels", c.labels}});
    const json results = testing::sklearn_results(requests);
    for (size_t k = 0; k < cases.size(); ++k) {
      const MulticlassCase& c = cases[k];
      const json& expected = results[k];
      INFO("case: ", c.name);
      const metrics::MulticlassMetrics m = metrics::multiclass_metrics(c.probabilities, c.labels);
      CHECK(m.macro_auc == doctest::Approx(expected["macro_auroc"].get<double>()).epsilon(1e-12));
      check_vector(m.per_class_auc, expected["per_class_auroc"], 1e-12, "per-class AUROC");
      CHECK(m.accuracy == doctest::Approx(expected["accuracy"].get<double>()).epsilon(1e-14));
      CHECK(m.confusion == expected["confusion"].get<std::vector<std::vector<int64_t>>>());
      check_vector(m.precision, expected["precision"], 1e-14, "precision");
      check_vector(m.recall, expected["recall"], 1e-14, "recall");
      check_vector(m.f1, expected["f1"], 1e-14, "f1");
      CHECK(m.macro_f1 == doctest::Approx(expected["macro_f1"].get<double>()).epsilon(1e-14));
    }
  }

  TEST_CASE("quantile equals np.quantile and mean_std equals np.mean / np.std (ddof 0)") {
    data::Rng rng(21);
    std::vector<double> values;
    for (int i = 0; i < 1000; ++i) values.push_back(rng.normal());
    std::vector<double> ties = {0.5, 0.5, 0.5, 0.75, 0.75, 1.0, 0.25};
    const std::vector<double> qs = {0.0, 0.025, 0.1, 1.0 / 3.0, 0.5, 0.9, 0.975, 1.0};
    const std::vector<std::vector<double>> sets = {values, ties, {0.7}, {0.2, 0.9}, {0.81, 0.79, 0.83, 0.8}};
    json requests = json::array();
    for (const auto& s : sets) requests.push_back({{"kind", "quantile"}, {"values", s}, {"q", qs}});
    for (const auto& s : sets) requests.push_back({{"kind", "mean_std"}, {"values", s}});
    const json results = testing::sklearn_results(requests);
    for (size_t k = 0; k < sets.size(); ++k) {
      INFO("set ", k);
      for (size_t j = 0; j < qs.size(); ++j) {
        INFO("q ", qs[j]);
        CHECK(metrics::quantile(sets[k], qs[j]) ==
              doctest::Approx(results[k]["quantiles"][j].get<double>()).epsilon(1e-15));
      }
      const metrics::MeanStd ms = metrics::mean_std(sets[k]);
      const json& expected = results[sets.size() + k];
      CHECK(ms.mean == doctest::Approx(expected["mean"].get<double>()).epsilon(1e-14));
      CHECK(ms.std == doctest::Approx(expected["std"].get<double>()).epsilon(1e-12));
    }
  }
}

TEST_CASE("bootstrap AUROC interval: deterministic per seed and holds the estimate and narrows with more samples") {
  const BinaryCase small = random_case("small", 80, 0.5, 1.0, 2, 31);
  const BinaryCase large = random_case("large", 2000, 0.5, 1.0, 2, 32);
  const metrics::Interval a = metrics::bootstrap_roc_auc(small.scores, small.labels, 500, 0.95, 7);
  const metrics::Interval b = metrics::bootstrap_roc_auc(small.scores, small.labels, 500, 0.95, 7);
  const metrics::Interval other_seed = metrics::bootstrap_roc_auc(small.scores, small.labels, 500, 0.95, 8);
  CHECK(a.low == b.low);
  CHECK(a.high == b.high);
  CHECK((other_seed.low != a.low || other_seed.high != a.high));

  const double auc_small = metrics::roc_auc(small.scores, small.labels);
  CHECK(a.low < auc_small);
  CHECK(auc_small < a.high);
  const metrics::Interval wide = metrics::bootstrap_roc_auc(large.scores, large.labels, 500, 0.95, 7);
  const double auc_large = metrics::roc_auc(large.scores, large.labels);
  CHECK(wide.low < auc_large);
  CHECK(auc_large < wide.high);
  // The width shrinks about as 1/sqrt(N): 25x the samples, about 1/5 the width.
  CHECK((wide.high - wide.low) < 0.4 * (a.high - a.low));
  // A lower level gives a nested, narrower interval.
  const metrics::Interval half = metrics::bootstrap_roc_auc(small.scores, small.labels, 500, 0.5, 7);
  CHECK(half.low > a.low);
  CHECK(half.high < a.high);

  // The interval is the quantiles of the resampled AUROCs, which centre on the estimate.
  const std::vector<double> samples = metrics::bootstrap_roc_auc_samples(small.scores, small.labels, 500, 7);
  REQUIRE(samples.size() == 500);
  CHECK(metrics::quantile(samples, 0.025) == a.low);
  CHECK(metrics::quantile(samples, 0.975) == a.high);
  double mean = 0;
  for (double s : samples) mean += s / 500;
  CHECK(mean == doctest::Approx(auc_small).epsilon(0.03));

  // Two samples, one per class: half the draws hold one class only and are redrawn, and
  // every kept resample is the full set again (AUROC 1).
  const std::vector<double> pair = {0.2, 0.8};
  const std::vector<int64_t> pair_labels = {0, 1};
  const metrics::Interval degenerate = metrics::bootstrap_roc_auc(pair, pair_labels, 100);
  CHECK(degenerate.low == 1.0);
  CHECK(degenerate.high == 1.0);
}

TEST_CASE("metrics reject bad input with one clear message") {
  const std::vector<double> scores = {0.1, 0.4, 0.8};
  const std::vector<int64_t> one_class = {1, 1, 1};
  CHECK_THROWS_WITH_AS(metrics::roc_auc(scores, one_class), doctest::Contains("needs both classes"), Error);
  CHECK_THROWS_WITH_AS(metrics::roc_curve(scores, one_class), doctest::Contains("needs both classes"), Error);
  CHECK_THROWS_WITH_AS(metrics::bootstrap_roc_auc(scores, one_class), doctest::Contains("needs both classes"), Error);
  CHECK_THROWS_WITH_AS(metrics::youden_threshold(scores, one_class), doctest::Contains("needs both classes"), Error);
  const std::vector<int64_t> two = {0, 1};
  CHECK_THROWS_WITH_AS(metrics::roc_auc(scores, two), doctest::Contains("3 scores but 2 labels"), Error);
  const std::vector<int64_t> label_two = {0, 1, 2};
  CHECK_THROWS_WITH_AS(metrics::binary_metrics(scores, label_two, 0.5),
                       doctest::Contains("label 2 of sample 2 is not 0 or 1"), Error);
  const std::vector<double> nan_score = {0.1, std::nan(""), 0.3};
  const std::vector<int64_t> labels = {0, 1, 0};
  CHECK_THROWS_WITH_AS(metrics::roc_auc(nan_score, labels), doctest::Contains("of sample 1 is not finite"), Error);
  CHECK_THROWS_WITH_AS(metrics::roc_auc(std::vector<double>{}, std::vector<int64_t>{}),
                       doctest::Contains("no samples"), Error);
  CHECK_THROWS_WITH_AS(metrics::threshold_for_sensitivity(scores, labels, 1.5), doctest::Contains("[0, 1]"), Error);
  CHECK_THROWS_WITH_AS(metrics::bootstrap_roc_auc(scores, labels, 100, 1.0), doctest::Contains("level"), Error);
  CHECK_THROWS_WITH_AS(metrics::multiclass_metrics({{0.2, 0.8}, {0.6, 0.4}}, std::vector<int64_t>{1, 1}),
                       doctest::Contains("class 0 has no sample"), Error);
  CHECK_THROWS_WITH_AS(metrics::multiclass_metrics({{0.2, 0.8}, {0.6, 0.4, 0.0}}, std::vector<int64_t>{0, 1}),
                       doctest::Contains("row 1 has 3 columns"), Error);
  CHECK_THROWS_WITH_AS(metrics::multiclass_metrics({{0.2, 0.8}, {0.6, 0.4}}, std::vector<int64_t>{0, 2}),
                       doctest::Contains("label 2 of sample 1"), Error);
  CHECK_THROWS_WITH_AS(metrics::mean_std(std::vector<double>{}), doctest::Contains("no values"), Error);
}

TEST_CASE("metrics JSON: snake_case keys and sklearn's confusion layout and null for non-finite") {
  const std::vector<double> scores = {0.1, 0.4, 0.35, 0.8};
  const std::vector<int64_t> labels = {0, 0, 1, 1};
  const json j = metrics::to_json(metrics::binary_metrics(scores, labels, 0.4));
  CHECK(j["confusion_matrix"] == json::parse("[[1, 1], [1, 1]]"));
  CHECK(j["tp"] == 1);
  CHECK(j["sensitivity"] == j["recall"]);
  CHECK(j["specificity"].get<double>() == 0.5);
  const json none = metrics::to_json(metrics::binary_metrics(scores, labels, 2.0));  // nothing predicted positive
  CHECK(none["confusion_matrix"] == json::parse("[[2, 0], [2, 0]]"));
  CHECK(none["precision"].get<double>() == 0.0);
  CHECK(none["f1"].get<double>() == 0.0);
  CHECK(metrics::to_json(metrics::Interval{0.25, 0.75}) == json::parse("[0.25, 0.75]"));
  CHECK(metrics::to_json(metrics::MeanStd{std::numeric_limits<double>::infinity(), 0.5}) ==
        json::parse(R"({"mean": null, "std": 0.5})"));
  const json curve = metrics::to_json(metrics::roc_curve(scores, labels));
  CHECK(curve["thresholds"][0].get<double>() == 1.8);  // max score + 1, as sklearn 1.2
  const json multi = metrics::to_json(metrics::multiclass_metrics({{0.7, 0.2, 0.1}, {0.1, 0.8, 0.1}, {0.3, 0.3, 0.4}},
                                                                  std::vector<int64_t>{0, 1, 2}));
  for (const char* key :
       {"per_class_auroc", "macro_auroc", "accuracy", "confusion_matrix", "precision", "recall", "f1", "macro_f1"})
    CHECK_MESSAGE(multi.contains(key), key);
  CHECK(multi["confusion_matrix"] == json::parse("[[1, 0, 0], [0, 1, 0], [0, 0, 1]]"));
}
