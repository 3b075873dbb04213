#include "engine/train/data_setup.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "engine/core/error.h"
#include "engine/ops/loss/loss.h"
#include "engine/train/checkpointing.h"
#include "engine/train/image_set.h"

namespace pneuma::train {

namespace fs = std::filesystem;

data::Manifest open_training_data(const std::string& path, bool skip_bad, int threads, int64_t* skipped) {
  // A labelled set: open_image_set would take any other folder as unlabeled images.
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const auto kermany = [&](const fs::path& root) {
      return fs::is_directory(root / "NORMAL", ec) || fs::is_directory(root / "PNEUMONIA", ec);
    };
    PNEUMA_CHECK(kermany(path) || kermany(fs::path(path) / "train"), path,
                 ": a training folder holds NORMAL/ and PNEUMONIA/ (or train/NORMAL/ and train/PNEUMONIA/)");
  }
  data::Manifest manifest = open_image_set(path, skip_bad, threads, skipped);
  require_all_classes(manifest, std::max<int64_t>(2, manifest.num_classes()), path);
  return manifest;
}

void require_all_classes(const data::Manifest& manifest, int64_t num_classes, const std::string& what) {
  const std::vector<int64_t> counts = manifest.class_counts();
  for (int64_t c = 0; c < num_classes; ++c)
    PNEUMA_CHECK(c < static_cast<int64_t>(counts.size()) && counts[c] > 0, what, ": class ", c, " has no images");
  PNEUMA_CHECK(static_cast<int64_t>(counts.size()) <= num_classes, what, ": label ", counts.size() - 1,
               " is out of range for ", num_classes, " classes");
}

data::Split split_training_data(const data::Manifest& manifest, const SplitOptions& options) {
  data::Split split;
  std::string how;
  if (!options.val_data.empty()) {
    PNEUMA_CHECK(options.folds == 0, "give either a validation set or --fold/--folds, not both");
    split.train = manifest;
    split.val = open_training_data(options.val_data, options.skip_bad, options.threads);
    how = options.val_data;
  } else if (options.folds > 0) {
    PNEUMA_CHECK(options.folds >= 2, "--folds ", options.folds, " < 2");
    PNEUMA_CHECK(options.fold >= 0 && options.fold < options.folds, "--fold ", options.fold, " is not in [0, ",
                 options.folds, ")");
    data::Manifest with_folds = manifest;
    if (!with_folds.has_fold) data::assign_folds(with_folds, options.folds, options.seed);
    split = data::split_fold(with_folds, options.fold);
    how = "fold " + std::to_string(options.fold) + " of " + std::to_string(options.folds);
  } else {
    PNEUMA_CHECK(options.val_fraction > 0 && options.val_fraction < 1, "--val-fraction ", options.val_fraction,
                 " is not in (0, 1)");
    split = data::split_validation(manifest, options.val_fraction, options.seed);
    how = "validation fraction " + format_number(options.val_fraction);
  }
  PNEUMA_CHECK(split.train.size() > 0, manifest.source, ": no training images left after the split (", how, ")");
  PNEUMA_CHECK(split.val.size() > 0, manifest.source, ": no validation images (", how, ")");
  return split;
}

ClassWeightSpec ClassWeightSpec::parse(const std::string& text) {
  ClassWeightSpec spec;
  if (text == "none" || text.empty()) return spec;
  if (text == "auto") {
    spec.kind = Kind::Auto;
    return spec;
  }
  spec.kind = Kind::Explicit;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    double value = 0;
    size_t used = 0;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    PNEUMA_CHECK(used == item.size() && used > 0 && value >= 0 && std::isfinite(value), "--class-weights '", text,
                 "': expected auto, none or comma-separated weights >= 0");
    spec.values.push_back(value);
  }
  PNEUMA_CHECK(!spec.values.empty(), "--class-weights '", text, "': no weights");
  return spec;
}

Tensor ClassWeightSpec::resolve(const std::vector<int64_t>& labels, int64_t num_classes) const {
  switch (kind) {
    case Kind::None:
      return Tensor();
    case Kind::Auto: {
      std::vector<int64_t> counts(static_cast<size_t>(num_classes), 0);
      for (int64_t label : labels) {
        PNEUMA_CHECK(label >= 0 && label < num_classes, "class weights: label ", label, " is not in [0, ", num_classes,
                     ")");
        ++counts[static_cast<size_t>(label)];
      }
      return class_weights_from_counts(counts);
    }
    case Kind::Explicit:
      PNEUMA_CHECK(static_cast<int64_t>(values.size()) == num_classes, "--class-weights: ", values.size(),
                   " weights given for ", num_classes, " classes");
      return Tensor::from_vector(values, {num_classes});
  }
  return Tensor();
}

std::string ClassWeightSpec::str() const {
  if (kind == Kind::None) return "none";
  if (kind == Kind::Auto) return "auto";
  return format_numbers(values);
}

}  // namespace pneuma::train
