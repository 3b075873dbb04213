#pragma once
// Heads on pooled feature vectors, as torch.nn.Sequential (keys "0.weight", "1.running_mean", ...).
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/extra_layers.h"
#include "engine/nn/sequential.h"

namespace pneuma::models {

// Projection MLP for contrastive losses: widths {in, hidden..., out}, e.g. 2048-2048-128
// (SupCon/SimCLR) or 2048-4096-4096-256. Each hidden layer is Linear [+ BatchNorm1d] +
// ReLU (the Linear has no bias when a BN follows it); the last layer is a plain Linear.
struct ProjectionHeadOptions {
  std::vector<int64_t> widths{2048, 2048, 128};
  bool batch_norm = true;
};

class ProjectionHead : public nn::Sequential {
 public:
  explicit ProjectionHead(ProjectionHeadOptions options = {});
  int64_t in_features() const { return widths_.front(); }
  int64_t out_features() const { return widths_.back(); }

 private:
  std::vector<int64_t> widths_;
};

// MLP classifier for penultimate feature vectors (seed 004: 2048-d ResNet-50 features to
// normal / viral / bacterial): per hidden width Linear, activation ("sigmoid", as the
// seed, or "relu"), Dropout when dropout > 0; then Linear to num_classes (logits).
struct MlpClassifierOptions {
  int64_t in_features = 2048;
  std::vector<int64_t> hidden{512, 128};
  int64_t num_classes = 3;
  double dropout = 0.2;
  std::string activation = "sigmoid";
};

class MlpClassifier : public nn::Sequential {
 public:
  explicit MlpClassifier(MlpClassifierOptions options = {});
};

}  // namespace pneuma::models
