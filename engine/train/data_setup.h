#pragma once
// The training tools' data: opening a folder or CSV manifest with every bad file
// reported up front, the train/validation split, and class weights from a flag.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/data/manifest.h"
#include "engine/data/split.h"

namespace pneuma::train {

// A folder in the Kermany layout (root/train/{NORMAL,PNEUMONIA} when root/train has them,
// else root/{NORMAL,PNEUMONIA}) or a CSV manifest, opened by open_image_set: every image
// is decoded once; without skip_bad one Error lists all bad files, with skip_bad they are
// dropped and counted in *skipped. A missing path, a folder without NORMAL/PNEUMONIA, an
// empty set, or a class in [0, max(2, num_classes())) with no image is an Error naming
// the path (and the class).
data::Manifest open_training_data(const std::string& path, bool skip_bad, int threads, int64_t* skipped = nullptr);

// Errors when any class in [0, num_classes) has no record ("<what>: class 1 has no images").
void require_all_classes(const data::Manifest& manifest, int64_t num_classes, const std::string& what);

struct SplitOptions {
  std::string val_data;       // a separate validation set (folder or CSV); "" = split `train`
  int64_t fold = -1;          // with folds > 0: validation = fold `fold` of a patient-level
  int64_t folds = 0;          //   stratified k-fold (data::assign_folds with `seed`); a CSV's
                              //   own fold column is used when it has one
  double val_fraction = 0.2;  // otherwise: data::split_validation(fraction, seed)
  uint64_t seed = 0;
  bool skip_bad = false;  // for val_data
  int threads = 1;        // for val_data
};
// Train / validation sets from an opened training manifest.
data::Split split_training_data(const data::Manifest& manifest, const SplitOptions& options);

// --class-weights: "none" (no weights), "auto" (sklearn "balanced": n / (C count_c), from
// the training labels via class_weights_from_counts) or explicit "w0,w1,...".
struct ClassWeightSpec {
  enum class Kind { None, Auto, Explicit };
  Kind kind = Kind::None;
  std::vector<double> values;  // Explicit

  static ClassWeightSpec parse(const std::string& text);  // Error naming the text when bad
  // float32 [num_classes], or undefined for None. Explicit weights must number num_classes.
  Tensor resolve(const std::vector<int64_t>& labels, int64_t num_classes) const;
  std::string str() const;
};

}  // namespace pneuma::train
