#include "models/classifier.h"

#include "engine/ops/pool/pool.h"

namespace pneuma::models {

Tensor ImageClassifier::pool(const Tensor& feature_map) const {
  return adaptive_avg_pool2d(feature_map, {1, 1}).flatten(1);
}

}  // namespace pneuma::models
