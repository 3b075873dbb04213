#pragma once
// The switch between the CPU fast path (oneDNN/BLAS, float32) and the reference loops.
// On by default; PNEUMA_DISABLE_ONEDNN=1 in the environment turns it off for the whole
// process, set_fast_path_enabled() changes the process-wide setting, and FastPathGuard
// turns it off for the calling thread only, so a test comparing the two paths does not
// disturb other threads.
namespace pneuma::cpu {

bool fast_path_enabled();
void set_fast_path_enabled(bool enabled);

// Disables the fast path on this thread for its lifetime (nests).
class FastPathGuard {
 public:
  FastPathGuard();
  ~FastPathGuard();
  FastPathGuard(const FastPathGuard&) = delete;
  FastPathGuard& operator=(const FastPathGuard&) = delete;
};

}  // namespace pneuma::cpu
