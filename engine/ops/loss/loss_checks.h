#pragma once
// Argument checks shared by the loss family's dispatch files (loss.cpp, contrastive.cpp,
// embedding.cpp). Messages name the loss and the offending tensor or value.
#include <initializer_list>

#include "engine/core/tensor.h"
#include "engine/ops/loss/loss.h"
#include "kernels/losses/loss_math.cuh"

namespace pneuma::ops {

kern::losses::LossReduction to_kernel(Reduction r);
// Defined, float32/float64 (on any device: the callers check that the devices agree).
void check_loss_input(const char* op, const Tensor& t, const char* what);
// int64, 1-d, `batch` entries (batch_tensor is named in the message when the count is wrong).
void check_labels(const char* op, const Tensor& labels, int64_t batch, const Tensor& batch_tensor, const char* what);
// Every label in [0, num_classes).
void check_label_range(const char* op, const Tensor& labels, int64_t num_classes, const char* what);
void check_temperature(const char* op, double temperature, const char* what);
// Every defined tensor is on reference's device: mixing devices is one error naming the loss and
// both tensors (with their devices), as torch refuses it.
void check_loss_devices(const char* op, const Tensor& reference, std::initializer_list<const Tensor*> tensors);
// Losses whose weights are constants (as in torch) refuse weights that require grad instead of
// silently dropping their gradient.
void reject_grad(const char* op, const Tensor& t, const char* what);

}  // namespace pneuma::ops
