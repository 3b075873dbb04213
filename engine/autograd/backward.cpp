#include <unordered_map>
#include <vector>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/elementwise/elementwise.h"

namespace pneuma::autograd {

namespace {
thread_local bool g_grad_enabled = true;

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined()) return nullptr;
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.requires_grad) return nullptr;
  if (!impl.grad_accumulator) impl.grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return impl.grad_accumulator;
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs, Tensor output) {
  node->next.clear();
  node->input_shapes.clear();
  for (const Tensor& t : inputs) {
    node->next.push_back(gradient_edge(t));
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
  }
  PNEUMA_CHECK(output.impl().grad_fn == nullptr && !output.impl().requires_grad,
               node->name(), ": output already has autograd history");
  output.impl().grad_fn = node;
  return output;
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad_output) {
  std::shared_ptr<TensorImpl> leaf = leaf_.lock();
  if (!leaf) return {};
  Tensor current(leaf->grad);
  if (current.defined()) {
    // Out of place, so gradients that alias each other (add returns one tensor for
    // both inputs) never corrupt a .grad through a later accumulation.
    leaf->grad = add(current, grad_output).impl_ptr();
    return {};
  }
  // .grad takes the leaf's layout where the leaf is dense (torch's gradient layout contract), so
  // an optimizer walks a parameter and its gradient as two flat arrays. A gradient nothing else
  // references is kept as it is; anything that may be shared (a view, or storage another tensor
  // holds) is copied.
  const Tensor leaf_tensor(leaf);
  const bool leaf_dense = leaf_tensor.is_non_overlapping_and_dense();
  const bool in_leaf_layout = leaf_dense ? same_element_offsets(leaf_tensor.shape(), grad_output.strides(),
                                                                leaf_tensor.strides()) &&
                                               grad_output.is_non_overlapping_and_dense()
                                         : grad_output.is_contiguous();
  const bool sole_owner = grad_output.impl_ptr().use_count() == 1 && grad_output.storage().use_count() == 1 &&
                          grad_output.offset() == 0;
  Tensor kept = grad_output;
  if (!leaf_dense) kept = sole_owner && in_leaf_layout ? grad_output : grad_output.clone();
  else if (!in_leaf_layout) kept = grad_output.laid_out_like(leaf_tensor);
  else if (!sole_owner) kept = grad_output.clone(MemoryFormat::Preserve);
  leaf->grad = kept.impl_ptr();
  return {};
}

void backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  PNEUMA_CHECK(root.requires_grad(), "backward: tensor ", root.str(),
               " does not require grad and has no grad_fn");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    PNEUMA_CHECK(root.numel() == 1, "backward: grad can be implicitly created only for a tensor "
                 "with one element, got ", root.str(), "; pass grad_output");
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  PNEUMA_CHECK(seed.shape() == root.shape(), "backward: grad_output shape ", shape_str(seed.shape()),
               " does not match tensor shape ", shape_str(root.shape()));
  NoGradGuard no_grad;
  std::shared_ptr<Node> start = gradient_edge(root);

  // Count, for every reachable node, how many edges lead into it, so a node runs only
  // once all gradient contributions have arrived (topological order).
  std::unordered_map<Node*, int> dependencies;
  std::vector<Node*> stack{start.get()};
  dependencies[start.get()] = 0;
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const auto& next : node->next) {
      if (!next) continue;
      auto [it, inserted] = dependencies.try_emplace(next.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(next.get());
    }
  }

  std::unordered_map<Node*, Tensor> pending{{start.get(), seed}};
  std::vector<std::shared_ptr<Node>> ready{start};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensor grad = std::move(pending[node.get()]);
    pending.erase(node.get());
    std::vector<Tensor> input_grads;
    if (grad.defined()) {
      PNEUMA_CHECK(!node->released, "backward: trying to backward through ", node->name(),
                   " a second time, but its saved tensors were already freed; call "
                   "backward(grad, /*retain_graph=*/true) the first time");
      profiler::Scope profile_scope(nullptr, node->name(), profiler::Phase::Backward);
      input_grads = node->apply(grad);
      if (!retain_graph && dynamic_cast<AccumulateGrad*>(node.get()) == nullptr) {
        node->release_saved();
        node->released = true;
      }
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      const std::shared_ptr<Node>& next = node->next[i];
      if (!next) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        const Tensor& g = input_grads[i];
        PNEUMA_CHECK(g.shape() == node->input_shapes[i], "backward of ", node->name(),
                     ": gradient for input ", i, " has shape ", shape_str(g.shape()),
                     ", expected ", shape_str(node->input_shapes[i]));
        Tensor& slot = pending[next.get()];
        slot = slot.defined() ? add(slot, g) : g;
      }
      if (--dependencies[next.get()] == 0) {
        if (pending.count(next.get())) {
          ready.push_back(next);
        } else {
          // No gradient reached this node (all contributions undefined); still visit it
          // so the nodes behind it get their counts decremented.
          pending[next.get()] = Tensor();
          ready.push_back(next);
        }
      }
    }
  }
}

}  // namespace pneuma::autograd
