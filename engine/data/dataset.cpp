#include "engine/data/dataset.h"

#include "engine/core/error.h"

namespace pneuma::data {

ImageDataset::ImageDataset(Manifest manifest, std::vector<Pipeline> views, int decode_channels)
    : manifest_(std::move(manifest)), views_(std::move(views)), decode_channels_(decode_channels) {
  PNEUMA_CHECK(!views_.empty(), "ImageDataset: at least one pipeline (view) is needed");
  PNEUMA_CHECK(decode_channels >= 0 && decode_channels <= 4, "ImageDataset: decode_channels must be 0-4, got ",
               decode_channels);
  domain_names_ = manifest_.domain_names();
  domains_ = manifest_.domain_ids();
}

ImageDataset::ImageDataset(Manifest manifest, Pipeline pipeline, int decode_channels)
    : ImageDataset(std::move(manifest), std::vector<Pipeline>{std::move(pipeline)}, decode_channels) {}

Example ImageDataset::get(int64_t index, uint64_t seed) const {
  PNEUMA_CHECK(index >= 0 && index < size(), "ImageDataset: index ", index, " out of range for ", size(), " records");
  const Record& r = manifest_.records[index];
  const Image image = read_image(r.file, decode_channels_);
  Example ex;
  ex.label = r.label;
  ex.domain = domains_[index];
  for (size_t v = 0; v < views_.size(); ++v) ex.views.push_back(views_[v](image, derive_seed(seed, v)));
  return ex;
}

}  // namespace pneuma::data
