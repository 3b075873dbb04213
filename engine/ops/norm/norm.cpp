#include "engine/ops/norm/norm.h"

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/checks.h"
#include "engine/ops/norm/norm_cpu.h"
#include "engine/ops/norm/norm_cuda.h"

namespace pneuma {

namespace {

// The [N, C, S] geometry every batch norm kernel works on.
struct Geometry {
  int64_t N, C, S;
};

Geometry geometry_of(const Tensor& x) {
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.size(d);
  return {x.size(0), x.size(1), S};
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

// Saves the input and the statistics it was normalized with (batch statistics in
// training, a snapshot of the running ones otherwise: those may change before backward),
// and the weight for the input's gradient. A bias-only gradient needs none of them.
class BatchNormBackward final : public autograd::Node {
 public:
  BatchNormBackward(Tensor x, Tensor weight, Tensor mean, Tensor var, Geometry geometry, double eps, bool training)
      : x_(std::move(x)), weight_(std::move(weight)), mean_(std::move(mean)), var_(std::move(var)),
        geometry_(geometry), eps_(eps), training_(training) {}
  const char* name() const override { return "batch_norm"; }

  std::vector<Tensor> apply(const Tensor& grad) override {
    const Tensor g = grad.contiguous();
    const auto [N, C, S] = geometry_;
    const bool need_x = next[0] != nullptr;
    const bool need_w = next.size() > 1 && next[1] != nullptr;
    const bool need_b = next.size() > 2 && next[2] != nullptr;
    Tensor dx = need_x ? Tensor::empty(input_shapes[0], g.dtype(), g.device()) : Tensor();
    Tensor dw = need_w ? Tensor::empty({C}, g.dtype(), g.device()) : Tensor();
    Tensor db = need_b ? Tensor::empty({C}, g.dtype(), g.device()) : Tensor();
    const auto backward = g.device().is_cuda() ? &cuda::batch_norm_backward : &cpu::batch_norm_backward;
    backward(x_, g, N, C, S, mean_, var_, weight_, eps_, training_, dx, dw, db);
    return {dx, dw, db};
  }
  void release_saved() override {
    x_ = Tensor();
    weight_ = Tensor();
    mean_ = Tensor();
    var_ = Tensor();
  }

 private:
  Tensor x_, weight_, mean_, var_;
  Geometry geometry_;
  double eps_;
  bool training_;
};

void check_channel_tensor(const Tensor& input, const Tensor& t, const char* what) {
  if (!t.defined()) return;
  ops::check_same_device("batch_norm", input, t);
  PNEUMA_CHECK(t.dtype() == input.dtype(), "batch_norm: ", what, " ", t.str(), " does not match the dtype of input ",
               input.str());
  PNEUMA_CHECK(t.dim() == 1 && t.size(0) == input.size(1), "batch_norm: ", what, " ", t.str(),
               " should be 1-d with ", input.size(1), " elements: input ", input.str(), " has ", input.size(1),
               " channels");
}

}  // namespace

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  profiler::Scope profile_scope("batch_norm", op);
  ops::check_defined(op, input);
  ops::check_floating(op, input);
  PNEUMA_CHECK(input.dim() >= 2, op, ": expected an input with channels in dim 1 ([N, C], [N, C, L], [N, C, H, W]), got ",
               input.str());
  check_channel_tensor(input, running_mean, "running_mean");
  check_channel_tensor(input, running_var, "running_var");
  check_channel_tensor(input, weight, "weight");
  check_channel_tensor(input, bias, "bias");
  PNEUMA_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
  const Geometry geo = geometry_of(input);
  if (training) {
    PNEUMA_CHECK(geo.N * geo.S > 1, op, ": expected more than 1 value per channel when training, got input ",
                 input.str());
  } else {
    PNEUMA_CHECK(running_mean.defined() && running_var.defined(), op,
                 ": running_mean and running_var must be defined in evaluation mode (training=false)");
  }

  const bool record = autograd::needs_grad({&input, &weight, &bias});
  const Tensor x = input.detach().contiguous();
  const Tensor w = contiguous_or_undefined(weight);
  const Tensor b = contiguous_or_undefined(bias);
  Tensor y = Tensor::empty(input.shape(), input.dtype(), input.device());
  Tensor mean, var;
  const bool on_cuda = x.device().is_cuda();
  const auto apply = on_cuda ? &cuda::batch_norm_apply : &cpu::batch_norm_apply;
  // Float32 runs through the reference loops too: oneDNN's batch norm for plain NCHW
  // data (norm_onednn.h) measured no faster in training and several times slower in
  // evaluation on the CPUs here, so it is not dispatched to.
  if (training) {
    mean = Tensor::empty({geo.C}, x.dtype(), x.device());
    var = Tensor::empty({geo.C}, x.dtype(), x.device());
    (on_cuda ? &cuda::batch_norm_stats : &cpu::batch_norm_stats)(x, geo.N, geo.C, geo.S, mean, var);
    apply(x, geo.N, geo.C, geo.S, mean, var, w, b, eps, y);
    (on_cuda ? &cuda::batch_norm_update_running : &cpu::batch_norm_update_running)(running_mean, running_var, mean,
                                                                                    var, momentum, geo.N * geo.S);
  } else {
    // A graph keeps a copy: the running statistics are buffers that may be updated
    // before backward runs.
    mean = running_mean.detach().contiguous();
    var = running_var.detach().contiguous();
    if (record) {
      if (mean.storage() == running_mean.storage()) mean = mean.clone();
      if (var.storage() == running_var.storage()) var = var.clone();
    }
    apply(x, geo.N, geo.C, geo.S, mean, var, w, b, eps, y);
  }

  if (record) {
    const bool input_grad = input.requires_grad(), weight_grad = weight.defined() && weight.requires_grad();
    const bool keep = input_grad || weight_grad;
    auto node = std::make_shared<BatchNormBackward>(keep ? autograd::save(x) : Tensor(),
                                                    input_grad ? autograd::save(w) : Tensor(),
                                                    keep ? mean : Tensor(), keep ? var : Tensor(), geo, eps, training);
    autograd::record(node, {input, weight, bias}, y);
  }
  return y;
}

}  // namespace pneuma
