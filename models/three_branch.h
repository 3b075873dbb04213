#pragma once
// The three-branch framework of seed 000 (Zunaed et al.): pediatric, adult and common
// paths, each a backbone (ResNet-50 in the paper; any registry classifier name) whose
// pooled features h feed a projection head (embedding z for the contrastive losses) and
// a classifier (logits). The common path sees both domains and serves inference.
// Keys: {pediatric,adult,common}.{backbone.<torchvision keys without fc>,
// projection.<i>.*, classifier.weight/bias}.
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/extra_layers.h"
#include "models/classifier.h"
#include "models/heads.h"

namespace pneuma::models {

struct ThreeBranchOptions {
  std::string backbone = "resnet50";
  int64_t num_classes = 1;
  // Widths after the backbone's feature dim; empty means {feature_dim, 128}, i.e.
  // 2048-2048-128 for ResNet-50 (the SupCon head the paper adopts).
  std::vector<int64_t> projection;
  bool projection_batch_norm = false;
};

enum class Branch { Pediatric = 0, Adult = 1, Common = 2 };
const char* branch_name(Branch b);

struct BranchOutput {
  Tensor features;   // h: pooled backbone features [N, feature_dim]
  Tensor embedding;  // z: projection head output [N, projection out]
  Tensor logits;     // classifier(h): [N, num_classes]
};

class BranchPath : public nn::Module {
 public:
  explicit BranchPath(const ThreeBranchOptions& options);
  BranchOutput forward(const Tensor& x) const;

  std::shared_ptr<ImageClassifier> backbone;
  std::shared_ptr<ProjectionHead> projection;
  std::shared_ptr<nn::Linear> classifier;
};

class ThreeBranch : public nn::Module {
 public:
  explicit ThreeBranch(ThreeBranchOptions options = {});
  BranchOutput forward(Branch branch, const Tensor& x) const;
  // Inference: the common path's logits.
  Tensor forward(const Tensor& x) const { return common->forward(x).logits; }
  const std::shared_ptr<BranchPath>& path(Branch b) const { return paths_[static_cast<size_t>(b)]; }
  const ThreeBranchOptions& options() const { return options_; }

  std::shared_ptr<BranchPath> pediatric, adult, common;

 private:
  ThreeBranchOptions options_;
  std::array<std::shared_ptr<BranchPath>, 3> paths_;
};

}  // namespace pneuma::models
