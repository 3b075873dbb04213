#pragma once
// The autograd tape. Every differentiable op that records creates one Node holding
// exactly what its backward needs; edges point at the nodes of its inputs.
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd/grad_mode.h"
#include "engine/core/tensor.h"

namespace pneuma::autograd {

class Node {
 public:
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // Given d(loss)/d(output), returns d(loss)/d(input_i) for each input, in order; an
  // undefined Tensor where an input needs no gradient. Runs under NoGradGuard.
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  // Frees saved tensors once backward has used them.
  virtual void release_saved() {}

  // One entry per op input: the input's node (nullptr when it needs no gradient),
  // and the input's shape, used to check gradients before they flow on.
  std::vector<std::shared_ptr<Node>> next;
  std::vector<Shape> input_shapes;
  bool released = false;
};

// Sink of a leaf tensor: adds incoming gradients into leaf.grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::weak_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  const char* name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(const Tensor& grad_output) override;

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// True when grad mode is on and any input requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Connects node to its inputs and makes it output's grad_fn. Call only when
// needs_grad(...) is true. Returns output for convenience.
Tensor record(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs, Tensor output);

// Runs backward from root with the given gradient (shape of root).
void backward(const Tensor& root, const Tensor& grad_output, bool retain_graph);

// Saved copies of tensors must not carry grad_fn (that would make a cycle
// output -> node -> output); save() detaches.
inline Tensor save(const Tensor& t) { return t.defined() ? t.detach() : t; }

}  // namespace pneuma::autograd
