#include "engine/nn/init.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/core/generator.h"
#include "engine/cpu/copy.h"
#include "engine/ops/elementwise/elementwise.h"

namespace pneuma::nn::init {

namespace {
int64_t receptive_field(const Tensor& w) {
  PNEUMA_CHECK(w.dim() >= 2, "init: fan in/out need a tensor with at least 2 dims, got ", w.str());
  int64_t r = 1;
  for (int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return r;
}
}  // namespace

int64_t fan_in(const Tensor& w) { return w.size(1) * receptive_field(w); }
int64_t fan_out(const Tensor& w) { return w.size(0) * receptive_field(w); }

void copy_(const Tensor& t, const Tensor& src) {
  PNEUMA_CHECK(t.shape() == src.shape(), "init::copy_: shape ", shape_str(src.shape()), " into ", t.str());
  NoGradGuard no_grad;
  cpu::copy_strided(src, t);
}

void constant_(const Tensor& t, double value) { copy_(t, Tensor::full(t.shape(), value, DType::Float64)); }
void zeros_(const Tensor& t) { constant_(t, 0.0); }
void ones_(const Tensor& t) { constant_(t, 1.0); }

// Drawn in the parameter's own dtype: one pass of random numbers, one of arithmetic.
void normal_(const Tensor& t, double mean, double std) {
  NoGradGuard no_grad;
  copy_(t, add(mul(Tensor::randn(t.shape(), next_seed(), t.dtype()), std), mean));
}

void uniform_(const Tensor& t, double low, double high) {
  NoGradGuard no_grad;
  copy_(t, add(mul(Tensor::rand(t.shape(), next_seed(), t.dtype()), high - low), low));
}

void kaiming_normal_(const Tensor& t, const std::string& mode) {
  PNEUMA_CHECK(mode == "fan_in" || mode == "fan_out", "kaiming_normal_: mode must be fan_in or fan_out, got '",
               mode, "'");
  const int64_t fan = mode == "fan_in" ? fan_in(t) : fan_out(t);
  normal_(t, 0.0, std::sqrt(2.0 / static_cast<double>(fan)));
}

}  // namespace pneuma::nn::init
