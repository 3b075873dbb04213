#include "models/heads.h"

namespace pneuma::models {

ProjectionHead::ProjectionHead(ProjectionHeadOptions o) : widths_(o.widths) {
  PNEUMA_CHECK(o.widths.size() >= 2, "ProjectionHead: widths need at least {in, out}, got ", o.widths.size(),
               " value(s)");
  for (int64_t w : o.widths) PNEUMA_CHECK(w > 0, "ProjectionHead: widths must be positive, got ", w);
  for (size_t i = 0; i + 2 < o.widths.size(); ++i) {
    add(std::make_shared<nn::Linear>(o.widths[i], o.widths[i + 1], !o.batch_norm));
    if (o.batch_norm) add(std::make_shared<nn::BatchNorm1d>(o.widths[i + 1]));
    add(std::make_shared<nn::ReLU>());
  }
  add(std::make_shared<nn::Linear>(o.widths[o.widths.size() - 2], o.widths.back()));
}

MlpClassifier::MlpClassifier(MlpClassifierOptions o) {
  PNEUMA_CHECK(o.activation == "sigmoid" || o.activation == "relu", "MlpClassifier: activation must be sigmoid or "
               "relu, got '", o.activation, "'");
  PNEUMA_CHECK(o.in_features > 0 && o.num_classes > 0, "MlpClassifier: in_features ", o.in_features,
               " and num_classes ", o.num_classes, " must be positive");
  int64_t in = o.in_features;
  for (int64_t h : o.hidden) {
    PNEUMA_CHECK(h > 0, "MlpClassifier: hidden widths must be positive, got ", h);
    add(std::make_shared<nn::Linear>(in, h));
    if (o.activation == "sigmoid") {
      add(std::make_shared<nn::Sigmoid>());
    } else {
      add(std::make_shared<nn::ReLU>());
    }
    if (o.dropout > 0) add(std::make_shared<nn::Dropout>(o.dropout));
    in = h;
  }
  add(std::make_shared<nn::Linear>(in, o.num_classes));
}

}  // namespace pneuma::models
