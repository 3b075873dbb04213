#include "models/three_branch.h"

#include "models/registry.h"

namespace pneuma::models {

const char* branch_name(Branch b) {
  switch (b) {
    case Branch::Pediatric: return "pediatric";
    case Branch::Adult: return "adult";
    case Branch::Common: return "common";
  }
  return "?";
}

BranchPath::BranchPath(const ThreeBranchOptions& o) {
  PNEUMA_CHECK(o.num_classes > 0, "ThreeBranch: num_classes must be positive, got ", o.num_classes);
  backbone = register_module("backbone", create_classifier(o.backbone, 0));
  ProjectionHeadOptions p;
  p.widths = {backbone->feature_dim()};
  if (o.projection.empty()) {
    p.widths.insert(p.widths.end(), {backbone->feature_dim(), 128});
  } else {
    p.widths.insert(p.widths.end(), o.projection.begin(), o.projection.end());
  }
  p.batch_norm = o.projection_batch_norm;
  projection = register_module("projection", std::make_shared<ProjectionHead>(p));
  classifier = register_module("classifier", std::make_shared<nn::Linear>(backbone->feature_dim(), o.num_classes));
}

BranchOutput BranchPath::forward(const Tensor& x) const {
  BranchOutput out;
  out.features = backbone->features(x);
  out.embedding = projection->forward(out.features);
  out.logits = classifier->forward(out.features);
  return out;
}

ThreeBranch::ThreeBranch(ThreeBranchOptions o) : options_(o) {
  pediatric = register_module("pediatric", std::make_shared<BranchPath>(o));
  adult = register_module("adult", std::make_shared<BranchPath>(o));
  common = register_module("common", std::make_shared<BranchPath>(o));
  paths_ = {pediatric, adult, common};
}

BranchOutput ThreeBranch::forward(Branch branch, const Tensor& x) const { return path(branch)->forward(x); }

}  // namespace pneuma::models
