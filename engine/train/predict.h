#pragma once
// Model inference over a data loader (validation, evaluation, feature-free prediction) and
// the predictions CSV that pneuma-eval --predictions reads back.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/data/loader.h"
#include "engine/data/manifest.h"
#include "engine/nn/module.h"

namespace pneuma::train {

struct Predictions {
  std::vector<int64_t> labels;                     // per sample
  std::vector<int64_t> indices;                    // dataset indices
  std::vector<std::vector<double>> probabilities;  // [N][K]: K = 1 (sigmoid of the single logit) for binary
                                                   // models, else softmax over the K logits
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t num_outputs() const { return probabilities.empty() ? 0 : static_cast<int64_t>(probabilities[0].size()); }
  // The score of the positive class for the binary metrics: K == 1: column 0; K == 2:
  // column 1; any other K throws.
  std::vector<double> positive_scores() const;
};

// Runs the model in eval mode under NoGradGuard over every batch of the loader's epoch
// `epoch` (models::forward_any, so classifiers and the three-branch model's common path
// both work), then restores every submodule's previous training flag (a training run
// may keep frozen BatchNorms in eval; see models::set_training). `on_batch`, when set, is
// called after each batch with (batches done, batches in the epoch), for a progress bar.
Predictions predict(nn::Module& model, data::DataLoader& loader, int64_t epoch = 0,
                    const std::function<void(int64_t done, int64_t total)>& on_batch = {});

// The predictions as CSV: path,label,score (K == 1) or path,label,score_0,...,score_{K-1},
// scores with 17 significant digits (they read back exactly). `path` is the manifest
// record of each dataset index, written relative to the CSV's folder like
// data::write_manifest (the file is a manifest: read_manifest reads it and resolves the
// images). Written to a temporary file and renamed.
void write_predictions_csv(const Predictions& predictions, const data::Manifest& manifest, const std::string& path);

// Reads such a file back (pneuma-eval --predictions): any CSV with path and label columns
// and either one `score` column or score_0..score_{K-1}. Bad rows and unparsable or
// non-finite scores throw one Error naming the file and line. `indices` are the row numbers
// (0-based); `manifest`, when given, receives the rows as a manifest.
Predictions read_predictions_csv(const std::string& path, data::Manifest* manifest = nullptr);

}  // namespace pneuma::train
