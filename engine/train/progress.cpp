#include "engine/train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace pneuma::train {

namespace {
constexpr int kBarWidth = 30;
}

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 0)), terminal_(isatty(STDERR_FILENO) != 0) {}

ProgressBar::~ProgressBar() {
  // Unfinished (an exception mid-epoch): end the redrawn line so the error starts afresh.
  if (!finished_ && terminal_ && done_ > 0) std::fputc('\n', stderr);
}

void ProgressBar::update(int64_t done, const std::string& status) {
  done_ = std::clamp<int64_t>(done, 0, total_);
  if (terminal_) {
    draw(done_, status, false);
    return;
  }
  // Logs: one line when a new tenth of the work is done (the last tenth is finish()'s).
  const int64_t decile = total_ > 0 ? done_ * 10 / total_ : 10;
  if (decile > last_decile_ && decile < 10) {
    last_decile_ = decile;
    if (done_ > 0) draw(done_, status, true);
  }
}

void ProgressBar::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  done_ = total_;
  draw(done_, status, true);
}

void ProgressBar::draw(int64_t done, const std::string& status, bool final_line) {
  const int filled = total_ > 0 ? static_cast<int>(kBarWidth * done / total_) : kBarWidth;
  const std::string bar =
      std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kBarWidth - filled), '.');
  // On a terminal: redraw the same line (clear to its end), newline only when done.
  std::fprintf(stderr, "%s%s [%s] %lld/%lld%s%s%s", terminal_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), status.empty() ? "" : " ", status.c_str(),
               terminal_ ? "\033[K" : "");
  if (!terminal_ || (final_line && finished_)) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace pneuma::train
