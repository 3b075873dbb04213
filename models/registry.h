#pragma once
// Models by name, for the command-line tools.
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/module.h"
#include "models/classifier.h"

namespace pneuma::models {

// "simplecnn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
// "densenet121", "densenet161", "densenet169", "densenet201". num_classes 0 gives the
// backbone alone (forward returns pooled features).
std::shared_ptr<ImageClassifier> create_classifier(const std::string& name, int64_t num_classes);
std::vector<std::string> classifier_names();

// Any model: the classifiers above, "unet" / "unet-bilinear" (num_classes = mask
// channels; 1 input channel) and "threebranch" (ResNet-50) or "threebranch-<classifier>".
std::shared_ptr<nn::Module> create_model(const std::string& name, int64_t num_classes);
std::vector<std::string> model_names();

// Calls the model's forward (classifiers: logits; U-Net: mask logits; three-branch: the
// common path's logits), for tools that handle any registry model.
Tensor forward_any(const nn::Module& model, const Tensor& x);

}  // namespace pneuma::models
