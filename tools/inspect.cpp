// pneuma-inspect: lists a model's parameters and buffers with their shapes, one
// "name<TAB>shape" line each (shape as comma-separated integers, empty for scalars), in
// state_dict order, then "total <number of parameter elements>". With --weights, the
// checkpoint is checked against the model by name and shape: differences go to stderr
// (one line each) and the exit code is 1.
#include <cstdio>
#include <iostream>
#include <string>

#include "engine/io/checkpoint.h"
#include "models/registry.h"
#include "tools/common/cli.h"

using namespace pneuma;

namespace {
std::string shape_csv(const Shape& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"List a model's parameters and buffers (torchvision state_dict names) and check checkpoints",
               "pneuma-inspect"};
  std::string model_name, weights;
  int64_t num_classes = 1000;
  app.add_option("--model", model_name, "model name (resnet18, resnet50, resnet101, densenet161, simplecnn, unet, "
                                        "threebranch, ...)")
      ->required();
  app.add_option("--num-classes", num_classes, "number of output classes (mask channels for unet)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--weights", weights, "safetensors checkpoint to check against the model");
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;

  try {
    const auto model = models::create_model(model_name, num_classes);
    std::string listing;
    int64_t total = 0;
    for (const auto& [name, t] : model->named_parameters()) total += t.numel();
    for (const auto& [name, t] : model->state_dict()) listing += name + "\t" + shape_csv(t.shape()) + "\n";
    std::cout << listing << "total " << total << std::endl;
    if (weights.empty()) return 0;
    const io::SafetensorsHeader header = io::read_safetensors_header(weights);
    const io::LoadReport report = io::compare_state_dict(*model, header);
    if (report.clean()) {
      std::fprintf(stderr, "pneuma-inspect: %s matches %s with %lld classes (%zu tensors)\n", weights.c_str(),
                   model_name.c_str(), static_cast<long long>(num_classes), header.tensors.size());
      return 0;
    }
    for (const std::string& k : report.missing_keys) std::fprintf(stderr, "missing\t%s\n", k.c_str());
    for (const std::string& k : report.unexpected_keys) std::fprintf(stderr, "unexpected\t%s\n", k.c_str());
    for (const io::ShapeMismatch& m : report.mismatched)
      std::fprintf(stderr, "mismatch\t%s\tmodel %s\tcheckpoint %s\n", m.name.c_str(), shape_csv(m.model).c_str(),
                   shape_csv(m.checkpoint).c_str());
    std::fprintf(stderr, "pneuma-inspect: %s does not match %s with %lld classes: %zu missing, %zu unexpected, %zu "
                 "shape mismatches\n", weights.c_str(), model_name.c_str(), static_cast<long long>(num_classes),
                 report.missing_keys.size(), report.unexpected_keys.size(), report.mismatched.size());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pneuma-inspect: %s\n", e.what());
    return 1;
  }
}
