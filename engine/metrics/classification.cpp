#include "engine/metrics/classification.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/core/error.h"
#include "engine/data/rng.h"

namespace pneuma::metrics {

namespace {

// Sizes agree, the input is not empty, scores are finite and labels are 0/1 (sklearn
// rejects NaN and infinite scores as well).
void check_binary_input(const char* op, std::span<const double> scores, std::span<const int64_t> labels) {
  PNEUMA_CHECK(scores.size() == labels.size(), op, ": ", scores.size(), " scores but ", labels.size(), " labels");
  PNEUMA_CHECK(!scores.empty(), op, ": no samples");
  for (size_t i = 0; i < scores.size(); ++i) {
    PNEUMA_CHECK(std::isfinite(scores[i]), op, ": score ", scores[i], " of sample ", i, " is not finite");
    PNEUMA_CHECK(labels[i] == 0 || labels[i] == 1, op, ": label ", labels[i], " of sample ", i,
                 " is not 0 or 1");
  }
}

// AUROC and the ROC curve are undefined with one class only; sklearn raises for the AUROC.
void check_both_classes(const char* op, std::span<const int64_t> labels) {
  const auto positives = std::count(labels.begin(), labels.end(), int64_t{1});
  PNEUMA_CHECK(positives > 0 && positives < static_cast<std::ptrdiff_t>(labels.size()), op,
               ": needs both classes, but all ", labels.size(), " labels are ", positives > 0 ? 1 : 0);
}

// Sample indices sorted by score from the highest down as sklearn does it: a stable
// ascending sort, reversed. Inside a group of tied scores the order only decides which
// member's value becomes the threshold, which matters only for 0.0 against -0.0.
std::vector<size_t> descending_order(std::span<const double> scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  std::reverse(order.begin(), order.end());
  return order;
}

// Groups of tied scores from the lowest score up: the ranks where each group starts in
// ascending order, for the resampling-weighted Mann-Whitney count below.
struct TiedGroups {
  std::vector<size_t> ascending;  // sample indices by ascending score
  std::vector<size_t> starts;     // group g spans ascending[starts[g], starts[g+1])
};

TiedGroups tied_groups(std::span<const double> scores) {
  TiedGroups groups;
  groups.ascending = descending_order(scores);
  std::reverse(groups.ascending.begin(), groups.ascending.end());
  for (size_t i = 0; i < groups.ascending.size(); ++i)
    if (i == 0 || scores[groups.ascending[i]] != scores[groups.ascending[i - 1]]) groups.starts.push_back(i);
  groups.starts.push_back(groups.ascending.size());
  return groups;
}

// Mann-Whitney U / (P N) with every sample counted weight[i] times (1 for the plain AUROC,
// its draw count for a bootstrap resample): each positive beats the negatives below its
// score and ties with those at it (1/2 each), which equals the trapezoidal area under the
// ROC curve that sklearn computes. NaN when a class has no weight.
double weighted_auc(const TiedGroups& groups, std::span<const int64_t> labels, std::span<const double> weight) {
  double negatives_below = 0, twice_u = 0, positives = 0;
  for (size_t g = 0; g + 1 < groups.starts.size(); ++g) {
    double p = 0, n = 0;
    for (size_t r = groups.starts[g]; r < groups.starts[g + 1]; ++r) {
      const size_t i = groups.ascending[r];
      (labels[i] == 1 ? p : n) += weight[i];
    }
    twice_u += p * (2 * negatives_below + n);
    negatives_below += n;
    positives += p;
  }
  if (positives == 0 || negatives_below == 0) return std::nan("");
  return twice_u / (2 * positives * negatives_below);
}

// 0 for a zero denominator, as sklearn's default zero_division.
double ratio(double numerator, double denominator) { return denominator == 0 ? 0.0 : numerator / denominator; }

// sklearn's F-score from precision and recall (0 when both are 0).
double f1_from(double precision, double recall) {
  return precision + recall == 0 ? 0.0 : 2 * precision * recall / (precision + recall);
}

nlohmann::json number_or_null(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(); }

nlohmann::json numbers_or_null(const std::vector<double>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (double v : values) out.push_back(number_or_null(v));
  return out;
}

}  // namespace

double roc_auc(std::span<const double> scores, std::span<const int64_t> labels) {
  check_binary_input("roc_auc", scores, labels);
  check_both_classes("roc_auc", labels);
  const std::vector<double> ones(scores.size(), 1.0);
  return weighted_auc(tied_groups(scores), labels, ones);
}

RocCurve roc_curve(std::span<const double> scores, std::span<const int64_t> labels) {
  check_binary_input("roc_curve", scores, labels);
  check_both_classes("roc_curve", labels);
  // sklearn's _binary_clf_curve: cumulative true/false positives at the last sample of
  // every group of tied scores, from the highest score down.
  const std::vector<size_t> order = descending_order(scores);
  std::vector<double> fps, tps, thresholds;
  double tp = 0, fp = 0;
  for (size_t r = 0; r < order.size(); ++r) {
    (labels[order[r]] == 1 ? tp : fp) += 1;
    if (r + 1 == order.size() || scores[order[r + 1]] != scores[order[r]]) {
      tps.push_back(tp);
      fps.push_back(fp);
      thresholds.push_back(scores[order[r]]);
    }
  }
  // drop_intermediate: keep the ends and every point where either count bends (nonzero
  // second difference); collinear points in between lie on the plotted curve anyway.
  RocCurve curve;
  curve.fpr.push_back(0);
  curve.tpr.push_back(0);
  curve.thresholds.push_back(thresholds[0] + 1);  // sklearn 1.2 (Debian 12); >= 1.3 writes +inf
  const size_t n = tps.size();
  for (size_t i = 0; i < n; ++i) {
    const bool keep = n <= 2 || i == 0 || i + 1 == n || fps[i + 1] - 2 * fps[i] + fps[i - 1] != 0 ||
                      tps[i + 1] - 2 * tps[i] + tps[i - 1] != 0;
    if (!keep) continue;
    curve.fpr.push_back(fps[i] / fp);
    curve.tpr.push_back(tps[i] / tp);
    curve.thresholds.push_back(thresholds[i]);
  }
  return curve;
}

std::vector<double> bootstrap_roc_auc_samples(std::span<const double> scores, std::span<const int64_t> labels,
                                              int64_t resamples, uint64_t seed) {
  check_binary_input("bootstrap_roc_auc", scores, labels);
  check_both_classes("bootstrap_roc_auc", labels);
  PNEUMA_CHECK(resamples > 0, "bootstrap_roc_auc: resamples must be positive, got ", resamples);
  // A resample is N draws with replacement, kept as draw counts per sample: its AUROC is
  // then one O(N) pass over the score order sorted once, instead of a sort per resample.
  const TiedGroups groups = tied_groups(scores);
  const int64_t n = static_cast<int64_t>(scores.size());
  // With both classes present a draw holds both with probability >= 1 - 2 (1 - 1/N)^N >
  // 1 - 2/e, so this bound is only reached by a broken generator, never by bad luck.
  const int64_t max_draws = 100 * resamples + 1000;
  data::Rng rng(seed);
  std::vector<double> counts(scores.size());
  std::vector<double> aucs;
  aucs.reserve(static_cast<size_t>(resamples));
  for (int64_t draw = 0; static_cast<int64_t>(aucs.size()) < resamples; ++draw) {
    PNEUMA_CHECK(draw < max_draws, "bootstrap_roc_auc: ", draw, " resamples drawn, too few with both classes");
    std::fill(counts.begin(), counts.end(), 0.0);
    for (int64_t k = 0; k < n; ++k) counts[static_cast<size_t>(rng.integer(0, n - 1))] += 1;
    const double auc = weighted_auc(groups, labels, counts);
    if (!std::isnan(auc)) aucs.push_back(auc);  // one class only: redrawn
  }
  return aucs;
}

double quantile(std::span<const double> values, double q) {
  PNEUMA_CHECK(!values.empty(), "quantile: no values");
  PNEUMA_CHECK(q >= 0 && q <= 1, "quantile: q must be in [0, 1], got ", q);
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  // numpy's "linear" method (Hyndman & Fan 7) and its _lerp, which interpolates from the
  // upper neighbour when the weight is >= 1/2, for the same rounding as np.quantile.
  const double virtual_index = static_cast<double>(sorted.size() - 1) * q;
  const double below = std::floor(virtual_index);
  const size_t lo = std::min(static_cast<size_t>(below), sorted.size() - 1);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double gamma = virtual_index - below;
  const double a = sorted[lo], b = sorted[hi], diff = b - a;
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

Interval bootstrap_roc_auc(std::span<const double> scores, std::span<const int64_t> labels, int64_t resamples,
                           double level, uint64_t seed) {
  PNEUMA_CHECK(level > 0 && level < 1, "bootstrap_roc_auc: level must be in (0, 1), got ", level);
  const std::vector<double> aucs = bootstrap_roc_auc_samples(scores, labels, resamples, seed);
  return {quantile(aucs, (1 - level) / 2), quantile(aucs, (1 + level) / 2)};
}

BinaryMetrics binary_metrics(std::span<const double> scores, std::span<const int64_t> labels, double threshold) {
  check_binary_input("binary_metrics", scores, labels);
  PNEUMA_CHECK(!std::isnan(threshold), "binary_metrics: the threshold is NaN");
  BinaryMetrics m;
  m.threshold = threshold;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool predicted = scores[i] >= threshold;
    if (labels[i] == 1) {
      ++(predicted ? m.tp : m.fn);
    } else {
      ++(predicted ? m.fp : m.tn);
    }
  }
  const auto d = [](int64_t v) { return static_cast<double>(v); };
  m.accuracy = d(m.tp + m.tn) / d(static_cast<int64_t>(scores.size()));
  m.precision = ratio(d(m.tp), d(m.tp + m.fp));
  m.recall = ratio(d(m.tp), d(m.tp + m.fn));
  m.specificity = ratio(d(m.tn), d(m.tn + m.fp));
  m.f1 = f1_from(m.precision, m.recall);
  return m;
}

double youden_threshold(std::span<const double> scores, std::span<const int64_t> labels) {
  const RocCurve curve = roc_curve(scores, labels);
  size_t best = 0;
  for (size_t i = 1; i < curve.thresholds.size(); ++i)
    if (curve.tpr[i] - curve.fpr[i] > curve.tpr[best] - curve.fpr[best]) best = i;
  return curve.thresholds[best];
}

double threshold_for_sensitivity(std::span<const double> scores, std::span<const int64_t> labels, double target) {
  PNEUMA_CHECK(target >= 0 && target <= 1, "threshold_for_sensitivity: target sensitivity must be in [0, 1], got ",
               target);
  const RocCurve curve = roc_curve(scores, labels);
  // tpr grows as the thresholds fall, and the last point has tpr 1, so one always qualifies.
  for (size_t i = 0; i < curve.thresholds.size(); ++i)
    if (curve.tpr[i] >= target) return curve.thresholds[i];
  return curve.thresholds.back();
}

MulticlassMetrics multiclass_metrics(const std::vector<std::vector<double>>& probabilities,
                                     std::span<const int64_t> labels) {
  const size_t n = labels.size();
  PNEUMA_CHECK(probabilities.size() == n, "multiclass_metrics: ", probabilities.size(), " rows of probabilities but ",
               n, " labels");
  PNEUMA_CHECK(n > 0, "multiclass_metrics: no samples");
  const size_t classes = probabilities[0].size();
  PNEUMA_CHECK(classes >= 2, "multiclass_metrics: needs at least 2 classes (columns), got ", classes);
  std::vector<int64_t> support(classes, 0);
  for (size_t i = 0; i < n; ++i) {
    PNEUMA_CHECK(probabilities[i].size() == classes, "multiclass_metrics: row ", i, " has ", probabilities[i].size(),
                 " columns, row 0 has ", classes);
    PNEUMA_CHECK(labels[i] >= 0 && labels[i] < static_cast<int64_t>(classes), "multiclass_metrics: label ",
                 labels[i], " of sample ", i, " is not a class index in [0, ", classes, ")");
    ++support[static_cast<size_t>(labels[i])];
  }
  for (size_t c = 0; c < classes; ++c)
    PNEUMA_CHECK(support[c] > 0, "multiclass_metrics: class ", c, " has no sample, so its one-vs-rest AUROC is "
                 "undefined (", classes, " columns of probabilities need every class present)");

  MulticlassMetrics m;
  m.confusion.assign(classes, std::vector<int64_t>(classes, 0));
  int64_t correct = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto& row = probabilities[i];
    const size_t predicted = static_cast<size_t>(std::max_element(row.begin(), row.end()) - row.begin());
    ++m.confusion[static_cast<size_t>(labels[i])][predicted];
    correct += static_cast<int64_t>(predicted) == labels[i];
  }
  m.accuracy = static_cast<double>(correct) / static_cast<double>(n);

  std::vector<double> column(n);
  std::vector<int64_t> is_class(n);
  for (size_t c = 0; c < classes; ++c) {
    for (size_t i = 0; i < n; ++i) {
      column[i] = probabilities[i][c];
      is_class[i] = labels[i] == static_cast<int64_t>(c);
    }
    m.per_class_auc.push_back(roc_auc(column, is_class));
    int64_t predicted_as_c = 0;
    for (size_t t = 0; t < classes; ++t) predicted_as_c += m.confusion[t][c];
    const double hits = static_cast<double>(m.confusion[c][c]);
    m.precision.push_back(ratio(hits, static_cast<double>(predicted_as_c)));
    m.recall.push_back(ratio(hits, static_cast<double>(support[c])));
    m.f1.push_back(f1_from(m.precision.back(), m.recall.back()));
  }
  m.macro_auc = std::accumulate(m.per_class_auc.begin(), m.per_class_auc.end(), 0.0) / static_cast<double>(classes);
  m.macro_f1 = std::accumulate(m.f1.begin(), m.f1.end(), 0.0) / static_cast<double>(classes);
  return m;
}

MeanStd mean_std(std::span<const double> values) {
  PNEUMA_CHECK(!values.empty(), "mean_std: no values");
  const double n = static_cast<double>(values.size());
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / n)};
}

nlohmann::json to_json(const BinaryMetrics& m) {
  return {{"threshold", number_or_null(m.threshold)},
          {"accuracy", m.accuracy},
          {"precision", m.precision},
          {"recall", m.recall},
          {"sensitivity", m.recall},
          {"specificity", m.specificity},
          {"f1", m.f1},
          {"tp", m.tp},
          {"fp", m.fp},
          {"tn", m.tn},
          {"fn", m.fn},
          {"confusion_matrix", {{m.tn, m.fp}, {m.fn, m.tp}}}};
}

nlohmann::json to_json(const RocCurve& curve) {
  return {{"fpr", numbers_or_null(curve.fpr)},
          {"tpr", numbers_or_null(curve.tpr)},
          {"thresholds", numbers_or_null(curve.thresholds)}};
}

nlohmann::json to_json(const Interval& interval) {
  return nlohmann::json::array({number_or_null(interval.low), number_or_null(interval.high)});
}

nlohmann::json to_json(const MulticlassMetrics& m) {
  return {{"per_class_auroc", numbers_or_null(m.per_class_auc)},
          {"macro_auroc", number_or_null(m.macro_auc)},
          {"accuracy", m.accuracy},
          {"confusion_matrix", m.confusion},
          {"precision", m.precision},
          {"recall", m.recall},
          {"f1", m.f1},
          {"macro_f1", m.macro_f1}};
}

nlohmann::json to_json(const MeanStd& value) {
  return {{"mean", number_or_null(value.mean)}, {"std", number_or_null(value.std)}};
}

}  // namespace pneuma::metrics
