// Classification losses (BCE with logits, sigmoid focal, cross-entropy, softmax focal), cosine
// embedding and soft Dice: argument checks, autograd nodes and dispatch (CPU loops in loss_cpu.h,
// fused kernels for CUDA tensors in loss_cuda.h).
#include "engine/ops/loss/loss.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/autocast.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/loss/loss_checks.h"
#include "engine/ops/loss/loss_cpu.h"
#include "engine/ops/loss/loss_cuda.h"
#include "engine/ops/reduce/reduce.h"
#include "engine/ops/softmax/softmax.h"

namespace pneuma {

Reduction reduction_from_string(std::string_view name, const char* op) {
  if (name == "none") return Reduction::None;
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  PNEUMA_FAIL(op, ": reduction must be 'none', 'mean' or 'sum', got '", name, "'");
}

const char* reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return "none";
    case Reduction::Mean: return "mean";
    case Reduction::Sum: return "sum";
  }
  return "?";
}

namespace ops {

kern::losses::LossReduction to_kernel(Reduction r) {
  switch (r) {
    case Reduction::None: return kern::losses::LossReduction::None;
    case Reduction::Mean: return kern::losses::LossReduction::Mean;
    case Reduction::Sum: return kern::losses::LossReduction::Sum;
  }
  return kern::losses::LossReduction::Mean;
}

void check_loss_input(const char* op, const Tensor& t, const char* what) {
  check_defined(op, t, what);
  PNEUMA_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", what,
               " must be a float32 or float64 tensor, got ", t.str(),
               t.dtype() == DType::BFloat16 ? " (losses take bfloat16 inputs under autocast, in float32)" : "");
}

void check_labels(const char* op, const Tensor& labels, int64_t batch, const Tensor& batch_tensor, const char* what) {
  check_defined(op, labels, what);
  PNEUMA_CHECK(labels.dtype() == DType::Int64, op, ": ", what, " must be an int64 tensor, got ", labels.str());
  PNEUMA_CHECK(labels.dim() == 1, op, ": ", what, " must be 1-d, got ", labels.str());
  PNEUMA_CHECK(labels.size(0) == batch, op, ": ", labels.size(0), " ", what, " for a batch of ", batch, " (",
               batch_tensor.str(), ")");
  check_same_device(op, batch_tensor, labels);
}

void check_label_range(const char* op, const Tensor& labels, int64_t num_classes, const char* what) {
  const std::vector<int64_t> v = labels.contiguous().to_indices();
  for (size_t i = 0; i < v.size(); ++i)
    PNEUMA_CHECK(v[i] >= 0 && v[i] < num_classes, op, ": ", what, " ", v[i], " at index ", i, " is out of range for ",
                 num_classes, " classes");
}

void check_temperature(const char* op, double temperature, const char* what) {
  PNEUMA_CHECK(std::isfinite(temperature) && temperature > 0, op, ": ", what, " must be positive and finite, got ",
               temperature);
}

void check_loss_devices(const char* op, const Tensor& reference, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    if (t->defined()) check_same_device(op, reference, *t);
}

void reject_grad(const char* op, const Tensor& t, const char* what) {
  PNEUMA_CHECK(!t.defined() || !autograd::needs_grad({&t}), op, ": the derivative for '", what,
               "' is not implemented (", t.str(), " requires grad)");
}

}  // namespace ops

namespace {

using cpu::BinaryLossConfig;
using cpu::BinaryLossKind;
using cpu::ClassLossConfig;

Shape reduced_loss_shape(Reduction r, const Shape& unreduced) { return r == Reduction::None ? unreduced : Shape{}; }

// ---- BCE with logits / sigmoid focal

class BinaryLossBackward final : public autograd::Node {
 public:
  BinaryLossBackward(BinaryLossConfig config, Tensor unit_dx, Tensor unit_dt)
      : config_(config), unit_dx_(std::move(unit_dx)), unit_dt_(std::move(unit_dt)) {}
  const char* name() const override {
    return config_.kind == BinaryLossKind::SigmoidFocal ? "sigmoid_focal_loss" : "binary_cross_entropy_with_logits";
  }
  std::vector<Tensor> apply(const Tensor& g) override {
    ops::require_cpu(name(), {&g});
    Tensor dx, dt;
    if (next[0] && unit_dx_.defined()) {
      dx = Tensor::empty(unit_dx_.shape(), unit_dx_.dtype());
      cpu::binary_loss_backward_saved(config_.reduction, unit_dx_, g, dx);
    }
    if (next[1] && unit_dt_.defined()) {
      dt = Tensor::empty(unit_dt_.shape(), unit_dt_.dtype());
      cpu::binary_loss_backward_saved(config_.reduction, unit_dt_, g, dt);
    }
    return {dx, dt};
  }
  void release_saved() override { unit_dx_ = unit_dt_ = Tensor(); }

 private:
  BinaryLossConfig config_;
  // The per-element gradients for a unit upstream gradient, computed by the forward.
  Tensor unit_dx_, unit_dt_;
};

// On CUDA tensors the backward recomputes each element's terms from the inputs in one fused kernel
// instead of keeping two input-sized buffers from the forward.
class BinaryLossCudaBackward final : public autograd::Node {
 public:
  BinaryLossCudaBackward(BinaryLossConfig config, Tensor x, Tensor t, Tensor weight, Tensor pos_weight)
      : config_(config), x_(std::move(x)), t_(std::move(t)), weight_(std::move(weight)),
        pos_weight_(std::move(pos_weight)) {}
  const char* name() const override {
    return config_.kind == BinaryLossKind::SigmoidFocal ? "sigmoid_focal_loss" : "binary_cross_entropy_with_logits";
  }
  std::vector<Tensor> apply(const Tensor& g) override {
    ops::check_same_device(name(), x_, g);
    const Tensor dx = next[0] ? Tensor::empty(x_.shape(), x_.dtype(), x_.device()) : Tensor();
    const Tensor dt = next[1] ? Tensor::empty(x_.shape(), x_.dtype(), x_.device()) : Tensor();
    cuda::binary_loss_backward(config_, x_, t_, weight_, pos_weight_, g, dx, dt);
    return {dx, dt};
  }
  void release_saved() override { x_ = t_ = weight_ = pos_weight_ = Tensor(); }

 private:
  BinaryLossConfig config_;
  Tensor x_, t_, weight_, pos_weight_;
};

// weight / pos_weight expanded to the input's shape, as dense arrays for the loops.
Tensor dense_broadcast(const char* op, const Tensor& w, const Tensor& input, const char* what) {
  if (!w.defined()) return w;
  ops::check_loss_input(op, w, what);
  PNEUMA_CHECK(w.dtype() == input.dtype(), op, ": ", what, " ", w.str(), " must have the input's dtype (",
               input.str(), ")");
  const Shape b = broadcast_shapes(w.shape(), input.shape(), op);
  PNEUMA_CHECK(b == input.shape(), op, ": ", what, " ", w.str(), " does not broadcast to the input ", input.str());
  return w.detach().expand(input.shape()).contiguous();
}

Tensor binary_loss(const char* op, BinaryLossConfig config, const Tensor& input, const Tensor& target,
                   const Tensor& weight, const Tensor& pos_weight) {
  ops::check_loss_input(op, input, "input");
  ops::check_loss_input(op, target, "target");
  PNEUMA_CHECK(target.shape() == input.shape(), op, ": target ", target.str(), " must have the input's shape (",
               input.str(), ")");
  ops::check_same_dtype(op, input, target);
  ops::check_loss_devices(op, input, {&target, &weight, &pos_weight});
  ops::reject_grad(op, weight, "weight");
  ops::reject_grad(op, pos_weight, "pos_weight");
  const Tensor w = dense_broadcast(op, weight, input, "weight");
  const Tensor pw = dense_broadcast(op, pos_weight, input, "pos_weight");
  const Tensor x = input.detach().contiguous(), t = target.detach().contiguous();
  Tensor out = Tensor::empty(config.reduction == kern::losses::LossReduction::None ? input.shape() : Shape{},
                             input.dtype(), input.device());
  const bool grad = autograd::needs_grad({&input, &target});
  if (input.device().is_cuda()) {
    cuda::binary_loss_forward(config, x, t, w, pw, out);
    if (grad) autograd::record(std::make_shared<BinaryLossCudaBackward>(config, x, t, w, pw), {input, target}, out);
    return out;
  }
  const Tensor unit_dx = grad && input.requires_grad() ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
  const Tensor unit_dt = grad && target.requires_grad() ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
  cpu::binary_loss_forward(config, x, t, w, pw, out, unit_dx, unit_dt);
  if (grad) autograd::record(std::make_shared<BinaryLossBackward>(config, unit_dx, unit_dt), {input, target}, out);
  return out;
}

// ---- cross-entropy with class indices / softmax focal

class ClassLossBackward final : public autograd::Node {
 public:
  ClassLossBackward(ClassLossConfig config, Tensor x, Tensor target, Tensor weight, Tensor lse, Tensor totals,
                    Tensor probabilities)
      : config_(config), x_(std::move(x)), target_(std::move(target)), weight_(std::move(weight)),
        lse_(std::move(lse)), totals_(std::move(totals)), probabilities_(std::move(probabilities)) {}
  const char* name() const override {
    return config_.kind == cpu::ClassLossKind::SoftmaxFocal ? "softmax_focal_loss" : "cross_entropy";
  }
  std::vector<Tensor> apply(const Tensor& g) override {
    ops::check_same_device(name(), x_, g);
    Tensor dx = Tensor::empty(x_.shape(), x_.dtype(), x_.device());
    if (x_.device().is_cuda()) cuda::class_loss_backward(config_, x_, target_, weight_, lse_, totals_, g, dx);
    else cpu::class_loss_backward(config_, x_, target_, weight_, lse_, totals_, g, dx, probabilities_);
    return {dx};
  }
  void release_saved() override { x_ = target_ = weight_ = lse_ = totals_ = probabilities_ = Tensor(); }

 private:
  ClassLossConfig config_;
  // probabilities: the forward's softmax (x's layout), so the backward needs no exponentials; on
  // CUDA undefined (the kernel recomputes it from lse).
  Tensor x_, target_, weight_, lse_, totals_, probabilities_;
};

// Input [C] / [N, C] / [N, C, d...] and its class-index target [] / [N] / [N, d...].
ClassLossConfig class_layout(const char* op, const Tensor& input, const Tensor& target) {
  PNEUMA_CHECK(input.dim() >= 1, op, ": input must have a class dim, got ", input.str());
  const int64_t class_dim = input.dim() == 1 ? 0 : 1;
  Shape expected = input.shape();
  expected.erase(expected.begin() + class_dim);
  PNEUMA_CHECK(target.shape() == expected, op, ": expected target of shape ", shape_str(expected), " for input ",
               input.str(), ", got ", target.str());
  ClassLossConfig c;
  c.classes = input.size(class_dim);
  c.outer = class_dim == 1 ? input.size(0) : 1;
  c.inner = 1;
  for (int64_t d = class_dim + 1; d < input.dim(); ++d) c.inner *= input.size(d);
  PNEUMA_CHECK(c.classes > 0, op, ": input ", input.str(), " has no classes");
  return c;
}

Tensor class_loss(const char* op, ClassLossConfig config, Reduction reduction, const Tensor& input,
                  const Tensor& target, const Tensor& weight, const char* weight_name) {
  config.reduction = ops::to_kernel(reduction);
  if (weight.defined()) {
    ops::check_loss_input(op, weight, weight_name);
    ops::check_same_dtype(op, input, weight);
    PNEUMA_CHECK(weight.dim() == 1 && weight.size(0) == config.classes, op, ": ", weight_name,
                 " must be 1-d with one entry per class (", config.classes, "), got ", weight.str());
    ops::reject_grad(op, weight, weight_name);
  }
  const Tensor y = target.contiguous();
  const std::vector<int64_t> labels = y.to_indices();
  const bool focal = config.kind == cpu::ClassLossKind::SoftmaxFocal;
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t v = labels[i];
    PNEUMA_CHECK((v >= 0 && v < config.classes) || (!focal && v == config.ignore_index), op, ": target ", v,
                 " at index ", i, " is out of range for ", config.classes, " classes",
                 focal ? std::string() : detail::concat(" (ignore_index ", config.ignore_index, ")"));
  }
  const Tensor x = input.detach().contiguous();
  const Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Device device = input.device();
  Tensor out = Tensor::empty(reduced_loss_shape(reduction, target.shape()), input.dtype(), device);
  Tensor lse = Tensor::empty({config.rows()}, input.dtype(), device);
  Tensor totals = Tensor::empty({4}, input.dtype(), device);
  const bool grad = autograd::needs_grad({&input});
  Tensor probabilities;
  if (device.is_cuda()) {
    cuda::class_loss_forward(config, x, y, w, out, lse, totals);
  } else {
    if (grad) probabilities = Tensor::empty(x.shape(), x.dtype());
    cpu::class_loss_forward(config, x, y, w, out, lse, totals, probabilities);
  }
  if (grad)
    autograd::record(std::make_shared<ClassLossBackward>(config, autograd::save(x), autograd::save(y),
                                                         autograd::save(w), lse, totals, probabilities),
                     {input}, out);
  return out;
}

// Class-probability targets: composed from ops, so the gradient reaches the target too.
Tensor cross_entropy_probabilities(const Tensor& input, const Tensor& target, const Tensor& weight,
                                   Reduction reduction, double label_smoothing) {
  const char* op = "cross_entropy";
  const int64_t class_dim = input.dim() == 1 ? 0 : 1;
  const int64_t classes = input.size(class_dim);
  ops::check_same_dtype(op, input, target);
  Tensor t = target;
  if (label_smoothing > 0) t = target * (1 - label_smoothing) + label_smoothing / static_cast<double>(classes);
  Tensor prod = log_softmax(input, class_dim) * t;
  if (weight.defined()) {
    ops::check_loss_input(op, weight, "weight");
    ops::check_same_dtype(op, input, weight);
    PNEUMA_CHECK(weight.dim() == 1 && weight.size(0) == classes, op, ": weight must be 1-d with one entry per class (",
                 classes, "), got ", weight.str());
    Shape view(input.dim(), 1);
    view[class_dim] = classes;
    prod = prod * weight.reshape(view);
  }
  const Tensor loss = neg(sum(prod, {class_dim}));
  switch (reduction) {
    case Reduction::None: return loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: return sum(loss) / static_cast<double>(input.numel() / classes);
  }
  return loss;
}

// ---- cosine embedding

class CosineEmbeddingBackward final : public autograd::Node {
 public:
  CosineEmbeddingBackward(kern::losses::LossReduction r, double margin, Tensor a, Tensor b, Tensor t)
      : reduction_(r), margin_(margin), a_(std::move(a)), b_(std::move(b)), t_(std::move(t)) {}
  const char* name() const override { return "cosine_embedding_loss"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    ops::check_same_device(name(), a_, g);
    Tensor da = next[0] ? Tensor::empty(a_.shape(), a_.dtype(), a_.device()) : Tensor();
    Tensor db = next[1] ? Tensor::empty(b_.shape(), b_.dtype(), b_.device()) : Tensor();
    if (a_.device().is_cuda()) cuda::cosine_embedding_backward(reduction_, margin_, a_, b_, t_, g.reshape({g.numel()}), da, db);
    else cpu::cosine_embedding_backward(reduction_, margin_, a_, b_, t_, g.reshape({g.numel()}), da, db);
    return {da.defined() ? da.reshape(input_shapes[0]) : da, db.defined() ? db.reshape(input_shapes[1]) : db};
  }
  void release_saved() override { a_ = b_ = t_ = Tensor(); }

 private:
  kern::losses::LossReduction reduction_;
  double margin_;
  Tensor a_, b_, t_;
};

// ---- soft Dice on CUDA tensors: the fused kernels (kernels/losses/dice.cuh)

class DiceCudaBackward final : public autograd::Node {
 public:
  DiceCudaBackward(kern::losses::LossReduction r, double smooth, Tensor x, Tensor t, Tensor sums)
      : reduction_(r), smooth_(smooth), x_(std::move(x)), t_(std::move(t)), sums_(std::move(sums)) {}
  const char* name() const override { return "dice_loss"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    ops::check_same_device(name(), x_, g);
    const Tensor dx = next[0] ? Tensor::empty(x_.shape(), x_.dtype(), x_.device()) : Tensor();
    const Tensor dt = next[1] ? Tensor::empty(x_.shape(), x_.dtype(), x_.device()) : Tensor();
    cuda::dice_backward(reduction_, smooth_, x_, t_, sums_, g, dx, dt);
    return {dx, dt};
  }
  void release_saved() override { x_ = t_ = sums_ = Tensor(); }

 private:
  kern::losses::LossReduction reduction_;
  double smooth_;
  Tensor x_, t_, sums_;  // sums: per sample sum(p t), sum(p), sum(t)
};

Tensor dice_loss_cuda(const Tensor& input, const Tensor& target, double smooth, Reduction reduction) {
  const Tensor x = input.detach().contiguous(), t = target.detach().contiguous();
  const auto r = ops::to_kernel(reduction);
  const int64_t samples = input.size(0);
  Tensor out = Tensor::empty(reduction == Reduction::None ? Shape{samples} : Shape{}, input.dtype(), input.device());
  Tensor sums = Tensor::empty({samples, kern::losses::kDiceSums}, input.dtype(), input.device());
  cuda::dice_forward(r, smooth, x, t, out, sums);
  if (autograd::needs_grad({&input, &target}))
    autograd::record(std::make_shared<DiceCudaBackward>(r, smooth, x, t, sums), {input, target}, out);
  return out;
}

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& input_in, const Tensor& target_in, const Tensor& weight_in,
                                        Reduction reduction, const Tensor& pos_weight_in) {
  const Tensor input = autocast::to_float32(input_in);
  const Tensor target = autocast::to_float32(target_in);
  const Tensor weight = autocast::to_float32(weight_in);
  const Tensor pos_weight = autocast::to_float32(pos_weight_in);
  profiler::Scope profile_scope("loss", "binary_cross_entropy_with_logits");
  BinaryLossConfig c;
  c.kind = BinaryLossKind::BceWithLogits;
  c.reduction = ops::to_kernel(reduction);
  return binary_loss("binary_cross_entropy_with_logits", c, input, target, weight, pos_weight);
}

Tensor sigmoid_focal_loss(const Tensor& inputs_in, const Tensor& targets_in, double alpha, double gamma,
                          Reduction reduction) {
  const Tensor inputs = autocast::to_float32(inputs_in);
  const Tensor targets = autocast::to_float32(targets_in);
  const char* op = "sigmoid_focal_loss";
  profiler::Scope profile_scope("loss", op);
  PNEUMA_CHECK(std::isfinite(alpha) && alpha <= 1, op, ": alpha must be in [0, 1] (or negative to disable it), got ",
               alpha);
  PNEUMA_CHECK(std::isfinite(gamma) && gamma >= 0, op, ": gamma must be non-negative and finite, got ", gamma);
  BinaryLossConfig c;
  c.kind = BinaryLossKind::SigmoidFocal;
  c.reduction = ops::to_kernel(reduction);
  c.alpha = alpha;
  c.gamma = gamma;
  return binary_loss(op, c, inputs, targets, Tensor(), Tensor());
}

Tensor cross_entropy(const Tensor& input_in, const Tensor& target_in, const Tensor& weight_in, int64_t ignore_index,
                     Reduction reduction, double label_smoothing) {
  const Tensor input = autocast::to_float32(input_in);
  const Tensor target = autocast::to_float32(target_in);
  const Tensor weight = autocast::to_float32(weight_in);
  profiler::Scope profile_scope("loss", "cross_entropy");
  const char* op = "cross_entropy";
  ops::check_loss_input(op, input, "input");
  ops::check_defined(op, target, "target");
  ops::check_loss_devices(op, input, {&target, &weight});
  PNEUMA_CHECK(label_smoothing >= 0 && label_smoothing <= 1, op, ": label_smoothing must be between 0.0 and 1.0, got ",
               label_smoothing);
  PNEUMA_CHECK(input.dim() >= 1, op, ": input must have a class dim, got ", input.str());
  if (is_floating(target.dtype())) {
    PNEUMA_CHECK(target.shape() == input.shape(), op, ": class-probability target ", target.str(),
                 " must have the input's shape (", input.str(), ")");
    return cross_entropy_probabilities(input, target, weight, reduction, label_smoothing);
  }
  PNEUMA_CHECK(target.dtype() == DType::Int64, op, ": target must hold int64 class indices or float class "
               "probabilities, got ", target.str());
  ClassLossConfig c = class_layout(op, input, target);
  c.kind = cpu::ClassLossKind::CrossEntropy;
  c.ignore_index = ignore_index;
  c.label_smoothing = label_smoothing;
  return class_loss(op, c, reduction, input, target, weight, "weight");
}

Tensor softmax_focal_loss(const Tensor& input_in, const Tensor& target, const Tensor& alpha_in, double gamma,
                          Reduction reduction) {
  const Tensor input = autocast::to_float32(input_in);
  const Tensor alpha = autocast::to_float32(alpha_in);
  const char* op = "softmax_focal_loss";
  profiler::Scope profile_scope("loss", op);
  ops::check_loss_input(op, input, "input");
  ops::check_defined(op, target, "target");
  ops::check_loss_devices(op, input, {&target, &alpha});
  PNEUMA_CHECK(target.dtype() == DType::Int64, op, ": target must hold int64 class indices, got ", target.str());
  PNEUMA_CHECK(std::isfinite(gamma) && gamma >= 0, op, ": gamma must be non-negative and finite, got ", gamma);
  ClassLossConfig c = class_layout(op, input, target);
  c.kind = cpu::ClassLossKind::SoftmaxFocal;
  c.gamma = gamma;
  return class_loss(op, c, reduction, input, target, alpha, "alpha");
}

Tensor class_weights_from_counts(const std::vector<int64_t>& counts, DType dtype) {
  const char* op = "class_weights_from_counts";
  PNEUMA_CHECK(!counts.empty(), op, ": no classes");
  PNEUMA_CHECK(is_floating(dtype), op, ": dtype must be float32 or float64, got ", dtype_name(dtype));
  int64_t total = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    PNEUMA_CHECK(counts[c] > 0, op, ": class ", c, " has ", counts[c], " samples; its inverse-frequency weight "
                 "would be infinite");
    total += counts[c];
  }
  std::vector<double> w(counts.size());
  for (size_t c = 0; c < counts.size(); ++c)
    w[c] = static_cast<double>(total) / (static_cast<double>(counts.size()) * static_cast<double>(counts[c]));
  return Tensor::from_vector(w, {static_cast<int64_t>(w.size())}, dtype);
}

Tensor class_weights_from_labels(const Tensor& labels, int64_t num_classes, DType dtype) {
  const char* op = "class_weights_from_labels";
  PNEUMA_CHECK(num_classes > 0, op, ": num_classes must be positive, got ", num_classes);
  ops::check_labels(op, labels, labels.defined() ? labels.numel() : 0, labels, "labels");
  ops::check_label_range(op, labels, num_classes, "label");
  std::vector<int64_t> counts(static_cast<size_t>(num_classes), 0);
  for (int64_t v : labels.contiguous().to_indices()) ++counts[static_cast<size_t>(v)];
  return class_weights_from_counts(counts, dtype).to(labels.device());
}

Tensor cosine_embedding_loss(const Tensor& input1_in, const Tensor& input2_in, const Tensor& target, double margin,
                             Reduction reduction) {
  const Tensor input1 = autocast::to_float32(input1_in);
  const Tensor input2 = autocast::to_float32(input2_in);
  const char* op = "cosine_embedding_loss";
  profiler::Scope profile_scope("loss", op);
  ops::check_loss_input(op, input1, "input1");
  ops::check_loss_input(op, input2, "input2");
  ops::check_same_dtype(op, input1, input2);
  ops::check_defined(op, target, "target");
  ops::check_loss_devices(op, input1, {&input2, &target});
  PNEUMA_CHECK(target.dim() == 0 || target.dim() == 1, op, ": 0-d or 1-d target expected, got ", target.str());
  if (target.dim() == 1) {
    PNEUMA_CHECK(input1.dim() == 2 && input2.dim() == 2, op, ": a 1-d target expects 2-d inputs, got ", input1.str(),
                 " and ", input2.str());
  } else {
    PNEUMA_CHECK(input1.dim() == 1 && input2.dim() == 1, op, ": a 0-d target expects 1-d inputs, got ", input1.str(),
                 " and ", input2.str());
  }
  PNEUMA_CHECK(input1.shape() == input2.shape(), op, ": input1 ", input1.str(), " and input2 ", input2.str(),
               " must have the same shape");
  const int64_t n = target.dim() == 1 ? input1.size(0) : 1;
  PNEUMA_CHECK(target.numel() == n, op, ": ", target.numel(), " targets for ", n, " input pairs (", input1.str(), ")");
  PNEUMA_CHECK(target.dtype() != DType::Bool, op, ": target must hold 1 / -1, got ", target.str());
  const int64_t d = input1.numel() / std::max<int64_t>(n, 1);
  const Tensor a = input1.detach().contiguous().reshape({n, d});
  const Tensor b = input2.detach().contiguous().reshape({n, d});
  const Tensor t = target.detach().to(input1.dtype()).contiguous().reshape({n});
  const auto r = ops::to_kernel(reduction);
  Tensor out = Tensor::empty(reduction == Reduction::None ? target.shape() : Shape{}, input1.dtype(), input1.device());
  const Tensor out_rows = out.reshape({reduction == Reduction::None ? n : 1});
  if (input1.device().is_cuda()) cuda::cosine_embedding_forward(r, margin, a, b, t, out_rows);
  else cpu::cosine_embedding_forward(r, margin, a, b, t, out_rows);
  if (autograd::needs_grad({&input1, &input2}))
    autograd::record(std::make_shared<CosineEmbeddingBackward>(r, margin, a, b, t), {input1, input2},
                     out);
  return out;
}

Tensor dice_loss(const Tensor& input_in, const Tensor& target_in, double smooth, Reduction reduction) {
  const Tensor input = autocast::to_float32(input_in);
  const Tensor target = autocast::to_float32(target_in);
  const char* op = "dice_loss";
  profiler::Scope profile_scope("loss", op);
  ops::check_loss_input(op, input, "input");
  ops::check_loss_input(op, target, "target");
  ops::check_same_dtype(op, input, target);
  ops::check_loss_devices(op, input, {&target});
  PNEUMA_CHECK(input.dim() >= 2, op, ": expected input [N, ...] with at least 2 dims, got ", input.str());
  PNEUMA_CHECK(target.shape() == input.shape(), op, ": target ", target.str(), " must have the input's shape (",
               input.str(), ")");
  PNEUMA_CHECK(std::isfinite(smooth) && smooth >= 0, op, ": smooth must be non-negative and finite, got ", smooth);
  if (input.device().is_cuda()) return dice_loss_cuda(input, target, smooth, reduction);
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < input.dim(); ++d) dims.push_back(d);
  const Tensor p = sigmoid(input);
  const Tensor intersection = sum(p * target, dims);
  const Tensor cardinality = sum(p, dims) + sum(target, dims);
  const Tensor loss = 1.0 - (intersection * 2.0 + smooth) / (cardinality + smooth);
  switch (reduction) {
    case Reduction::None: return loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: return mean(loss);
  }
  return loss;
}

Tensor dice_bce_loss(const Tensor& input, const Tensor& target, double smooth, double dice_weight,
                     double bce_weight) {
  profiler::Scope profile_scope("loss", "dice_bce_loss");
  PNEUMA_CHECK(std::isfinite(dice_weight) && std::isfinite(bce_weight), "dice_bce_loss: weights must be finite, got "
               "dice_weight ", dice_weight, " and bce_weight ", bce_weight);
  const Tensor dice = dice_loss(input, target, smooth, Reduction::Mean);
  const Tensor bce = binary_cross_entropy_with_logits(input, target);
  return bce * bce_weight + dice * dice_weight;
}

}  // namespace pneuma
