#pragma once

namespace pneuma::autograd {

bool grad_enabled();
void set_grad_enabled(bool enabled);

}  // namespace pneuma::autograd

namespace pneuma {

// Disables graph recording in its scope (evaluation, optimizer steps, backward itself).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(autograd::grad_enabled()) { autograd::set_grad_enabled(false); }
  ~NoGradGuard() { autograd::set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace pneuma
