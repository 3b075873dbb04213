#pragma once
// Classification metrics on host vectors, equal to scikit-learn's (the tests compare them
// with sklearn through /usr/bin/python3). Scores are probabilities, or any score that
// grows with the positive class; labels are 0/1 for the binary metrics and class indices
// 0..C-1 for the multi-class ones.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

namespace pneuma::metrics {

// sklearn.metrics.roc_auc_score: the probability that a random positive scores above a
// random negative, ties counting 1/2. Throws when only one class is present.
double roc_auc(std::span<const double> scores, std::span<const int64_t> labels);

// sklearn.metrics.roc_curve(drop_intermediate=True) as Debian 12's scikit-learn 1.2 computes
// it: one point per distinct score from the highest down, collinear intermediate points
// dropped, and a first point (0, 0) whose threshold is max(score) + 1 (sklearn >= 1.3
// writes +inf there instead; 1.2 is the version the tests compare with). Throws when only
// one class is present (sklearn warns and returns NaN rates).
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
};
RocCurve roc_curve(std::span<const double> scores, std::span<const int64_t> labels);

// Percentile bootstrap of roc_auc over samples drawn with replacement: `resamples`
// resamples that hold both classes (a draw with one class only is redrawn, so every
// interval rests on exactly `resamples` AUROCs), interval = the (1-level)/2 and
// (1+level)/2 quantiles with numpy's default linear interpolation. Deterministic per seed.
struct Interval {
  double low = 0, high = 0;
};
Interval bootstrap_roc_auc(std::span<const double> scores, std::span<const int64_t> labels,
                           int64_t resamples = 1000, double level = 0.95, uint64_t seed = 0);
// The AUROC of each bootstrap resample, in draw order (what bootstrap_roc_auc takes the
// quantiles of).
std::vector<double> bootstrap_roc_auc_samples(std::span<const double> scores, std::span<const int64_t> labels,
                                              int64_t resamples = 1000, uint64_t seed = 0);
// np.quantile(values, q) with numpy's default "linear" method; q in [0, 1].
double quantile(std::span<const double> values, double q);

// Confusion counts and rates at one threshold: positive when score >= threshold. A ratio
// with a zero denominator is 0, as sklearn's default zero_division ("warn" -> 0).
struct BinaryMetrics {
  double threshold = 0.5;
  double accuracy = 0, precision = 0, recall = 0 /* sensitivity */, specificity = 0, f1 = 0;
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};
BinaryMetrics binary_metrics(std::span<const double> scores, std::span<const int64_t> labels, double threshold);

// The roc_curve threshold that maximizes tpr - fpr (Youden's J); among equal J the first,
// i.e. the highest threshold (np.argmax). When no point beats J = 0 (inverted scores) that
// is the curve's first threshold, max(score) + 1: every sample negative.
double youden_threshold(std::span<const double> scores, std::span<const int64_t> labels);
// The highest roc_curve threshold whose tpr >= target (target in [0, 1]; target 0 gives
// the first threshold, max(score) + 1).
double threshold_for_sensitivity(std::span<const double> scores, std::span<const int64_t> labels, double target);

// Multi-class metrics from probabilities [N][C]; prediction = argmax (first on ties, as
// numpy). per_class_auc is one-vs-rest; macro_auc their unweighted mean, equal to sklearn's
// roc_auc_score(multi_class="ovr", average="macro") (which requires every class present;
// so does this). confusion[i][j] counts true class i predicted as j (sklearn's
// confusion_matrix); precision/recall/f1 per class with zero_division 0, macro_f1 their mean.
struct MulticlassMetrics {
  std::vector<double> per_class_auc;
  double macro_auc = 0;
  double accuracy = 0;
  std::vector<std::vector<int64_t>> confusion;
  std::vector<double> precision, recall, f1;
  double macro_f1 = 0;
};
MulticlassMetrics multiclass_metrics(const std::vector<std::vector<double>>& probabilities,
                                     std::span<const int64_t> labels);

// Mean and population standard deviation (ddof = 0, as numpy's np.std) for "mean +- std
// over folds". Throws on an empty input.
struct MeanStd {
  double mean = 0, std = 0;
};
MeanStd mean_std(std::span<const double> values);

// JSON with snake_case keys. BinaryMetrics: threshold, accuracy, precision, recall,
// sensitivity (= recall), specificity, f1, tp, fp, tn, fn and confusion_matrix
// [[tn, fp], [fn, tp]] (sklearn's layout). MulticlassMetrics: per_class_auroc, macro_auroc,
// accuracy, confusion_matrix (row = true class, column = predicted), precision, recall, f1,
// macro_f1. Non-finite numbers become null, as JSON has no infinity or NaN.
nlohmann::json to_json(const BinaryMetrics& metrics);
nlohmann::json to_json(const RocCurve& curve);  // {"fpr": [...], "tpr": [...], "thresholds": [...]}
nlohmann::json to_json(const Interval& interval);  // [low, high]
nlohmann::json to_json(const MulticlassMetrics& metrics);
nlohmann::json to_json(const MeanStd& value);  // {"mean": m, "std": s}

}  // namespace pneuma::metrics
