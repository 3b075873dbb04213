#pragma once
// What the tools read from a classifier checkpoint's safetensors metadata (written by the
// training tools): model, num_classes, img_size, mean and std (comma-separated numbers,
// one or three) and threshold. Command-line values win over the metadata; the metadata
// wins over the defaults (ImageNet mean/std, 224 pixels, threshold 0.5).
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/data/image.h"
#include "engine/io/safetensors.h"

namespace pneuma::tools {

// Comma-separated numbers of metadata key `key`; `counts` lists the accepted lengths.
inline std::vector<double> metadata_numbers(const io::Metadata& meta, const std::string& key,
                                            const std::vector<size_t>& counts = {1, 3}) {
  const std::string& text = meta.at(key);
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      PNEUMA_CHECK(used == item.size(), "");
    } catch (const std::exception&) {
      PNEUMA_FAIL("checkpoint metadata ", key, "='", text, "' is not a comma-separated list of numbers");
    }
  }
  bool accepted = false;
  std::string expected;
  for (size_t c : counts) {
    accepted = accepted || out.size() == c;
    expected += (expected.empty() ? "" : " or ") + std::to_string(c);
  }
  PNEUMA_CHECK(accepted, "checkpoint metadata ", key, "='", text, "' needs ", expected, " value(s)");
  return out;
}

inline int64_t metadata_positive_int(const io::Metadata& meta, const std::string& key) {
  try {
    size_t used = 0;
    const int64_t v = std::stoll(meta.at(key), &used);
    if (used == meta.at(key).size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  PNEUMA_FAIL("checkpoint metadata ", key, "='", meta.at(key), "' is not a positive integer");
}

// The metadata's decision threshold, if it has one.
inline std::optional<double> metadata_threshold(const io::Metadata& meta) {
  if (!meta.count("threshold")) return std::nullopt;
  return metadata_numbers(meta, "threshold", {1}).at(0);
}

// How to build and feed a classifier checkpoint.
struct ClassifierSpec {
  std::string model;
  int64_t num_classes = 0;
  int64_t img_size = 224;
  data::Normalization normalization = data::Normalization::imagenet();
  std::optional<double> threshold;  // metadata "threshold"
};

// model / num_classes / img_size: the command line's value when given (non-empty, > 0,
// set), else the metadata's; a model or class count found nowhere is an error naming the
// flag to pass.
inline ClassifierSpec classifier_spec(const io::Metadata& meta, const std::string& weights,
                                      const std::string& model, int64_t num_classes,
                                      std::optional<int64_t> img_size) {
  ClassifierSpec spec;
  spec.model = model;
  if (spec.model.empty()) {
    PNEUMA_CHECK(meta.count("model"), "--model is required: ", weights, " names no model in its metadata");
    spec.model = meta.at("model");
  }
  spec.num_classes = num_classes;
  if (spec.num_classes <= 0) {
    PNEUMA_CHECK(meta.count("num_classes"), "--num-classes is required: ", weights,
                 " has no num_classes in its metadata");
    spec.num_classes = metadata_positive_int(meta, "num_classes");
  }
  if (img_size) {
    spec.img_size = *img_size;
  } else if (meta.count("img_size")) {
    spec.img_size = metadata_positive_int(meta, "img_size");
  }
  if (meta.count("mean")) spec.normalization.mean = metadata_numbers(meta, "mean");
  if (meta.count("std")) spec.normalization.std = metadata_numbers(meta, "std");
  spec.threshold = metadata_threshold(meta);
  return spec;
}

}  // namespace pneuma::tools
