#include <doctest/doctest.h>

#include "engine/nn/module.h"
#include "engine/pneuma.h"

using namespace pneuma;

namespace {
class Leaf : public nn::Module {
 public:
  Leaf() {
    weight = register_parameter("weight", Tensor::zeros({2}));
    running_mean = register_buffer("running_mean", Tensor::zeros({2}));
  }
  Tensor weight, running_mean;
};

class Block : public nn::Module {
 public:
  Block() {
    conv1 = register_module("conv1", std::make_shared<Leaf>());
    bias = register_parameter("bias", Tensor::zeros({1}));
    layer = register_module("layer1", std::make_shared<Leaf>());
  }
  std::shared_ptr<Leaf> conv1, layer;
  Tensor bias;
};
}  // namespace

TEST_CASE("module names join with dots in PyTorch's state_dict order") {
  Block block;
  std::vector<std::string> names;
  for (const auto& [name, t] : block.state_dict()) names.push_back(name);
  // own parameters, own buffers, then children in registration order
  CHECK(names == std::vector<std::string>{"bias", "conv1.weight", "conv1.running_mean", "layer1.weight",
                                          "layer1.running_mean"});
  CHECK(block.parameters().size() == 3);
  CHECK(block.parameters()[1].requires_grad());
  block.eval();
  CHECK(!block.layer->is_training());
  // the registered handle is the member: loading into one updates the other
  block.state_dict()[1].second.data<float>()[0] = 5;
  CHECK(block.conv1->weight.to_vector()[0] == 5);
}

TEST_CASE("module to(device) keeps the tensors' identity and moves their storage") {
  Block block;
  block.conv1->weight.data<float>()[1] = 3;
  block.conv1->weight.set_grad(Tensor::ones({2}));
  const auto storage_before = block.conv1->weight.storage();
  block.to(Device::cpu());  // already there: nothing changes, not even the gradient
  CHECK(block.conv1->weight.storage() == storage_before);
  CHECK(block.conv1->weight.grad().defined());
  // a non-contiguous parameter comes back contiguous on the new device; CUDA is the only other
  // device, so the move itself is checked by `parity cuda module to` where there is a GPU
  CHECK(block.state_dict()[1].second.same(block.conv1->weight));
}
