#pragma once
// ImageClassifier: the common shape of the classification models (ResNet, DenseNet,
// simple CNN), split where the training tools need to cut them: the last convolutional
// feature map (Grad-CAM), the pooled feature vector (penultimate features, projection
// heads, the three-branch backbones) and the classifier on top.
#include <string>

#include "engine/nn/module.h"

namespace pneuma::models {

class ImageClassifier : public nn::Module {
 public:
  // [N, C, H, W] -> the last conv feature map [N, feature_dim(), h, w].
  virtual Tensor feature_map(const Tensor& x) const = 0;
  // Global average pool + flatten: [N, feature_dim()].
  virtual Tensor pool(const Tensor& feature_map) const;
  // Logits [N, num_classes()]; the features themselves when the model has no classifier
  // (num_classes 0, a backbone).
  virtual Tensor classify(const Tensor& features) const = 0;

  Tensor features(const Tensor& x) const { return pool(feature_map(x)); }
  Tensor forward(const Tensor& x) const { return classify(features(x)); }

  virtual int64_t feature_dim() const = 0;
  int64_t num_classes() const { return num_classes_; }
  // state_dict prefix of the classifier ("fc", "classifier"), e.g. to load a backbone
  // trained with another class count without its classifier.
  virtual std::string classifier_prefix() const = 0;

 protected:
  int64_t num_classes_ = 0;
};

}  // namespace pneuma::models
