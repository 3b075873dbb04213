#pragma once
// Datasets hand out one transformed example per (index, seed); the loader chooses the
// seed from (run seed, epoch, position), so a sample's augmentation does not depend on
// which worker thread produced it.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/data/manifest.h"
#include "engine/data/transforms.h"

namespace pneuma::data {

struct Example {
  std::vector<Tensor> views;  // float32 [C, H, W] each; two for SimCLR
  int64_t label = 0;
  int64_t domain = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index, uint64_t seed) const = 0;
};

// Images of a manifest through one pipeline per view. Files are decoded with
// decode_channels (1: gray, the CXR default; 0: as stored) and converted to the
// pipeline's output channels at the end. View v of a sample uses seed derive_seed(seed, v).
class ImageDataset : public Dataset {
 public:
  ImageDataset(Manifest manifest, std::vector<Pipeline> views, int decode_channels = 1);
  ImageDataset(Manifest manifest, Pipeline pipeline, int decode_channels = 1);
  int64_t size() const override { return manifest_.size(); }
  Example get(int64_t index, uint64_t seed) const override;
  const Manifest& manifest() const { return manifest_; }
  const std::vector<std::string>& domain_names() const { return domain_names_; }
  const std::vector<int64_t>& domain_ids() const { return domains_; }

 private:
  Manifest manifest_;
  std::vector<Pipeline> views_;
  int decode_channels_;
  std::vector<std::string> domain_names_;
  std::vector<int64_t> domains_;
};

}  // namespace pneuma::data
