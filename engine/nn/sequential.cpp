#include "engine/nn/sequential.h"

namespace pneuma::nn {

Tensor Sequential::forward(const Tensor& x) const {
  Tensor y = x;
  for (const Step& step : steps_) y = step.forward(y);
  return y;
}

}  // namespace pneuma::nn
