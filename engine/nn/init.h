#pragma once
// In-place re-initialisation of parameters, as torch.nn.init (values drawn from the
// default generator, engine/core/generator.h). These write into the existing tensor, so
// the module's registered handle sees the new values; no graph is recorded.
#include <string>

#include "engine/core/tensor.h"

namespace pneuma::nn::init {

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (torch's
// _calculate_fan_in_and_fan_out, so a ConvTranspose2d weight's "fan_in" is out/groups).
int64_t fan_in(const Tensor& weight);
int64_t fan_out(const Tensor& weight);

void constant_(const Tensor& t, double value);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);
void normal_(const Tensor& t, double mean = 0.0, double std = 1.0);
void uniform_(const Tensor& t, double low = 0.0, double high = 1.0);
// mode "fan_in" or "fan_out"; gain sqrt(2) for ReLU: std = sqrt(2 / fan).
void kaiming_normal_(const Tensor& t, const std::string& mode = "fan_in");
// Copies src (same shape; dtypes convert) into t.
void copy_(const Tensor& t, const Tensor& src);

}  // namespace pneuma::nn::init
