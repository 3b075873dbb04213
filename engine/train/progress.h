#pragma once
// A progress bar on stderr: "label [#####.....] 12/40 status". On a terminal it redraws
// in place with '\r'; otherwise (CI logs, files) it prints a line at most every 10% of
// the total, so logs stay short.
#include <cstdint>
#include <string>

namespace pneuma::train {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  ~ProgressBar();  // ends a half-drawn terminal line if finish() was not called
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");

 private:
  void draw(int64_t done, const std::string& status, bool final_line);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool terminal_;
  int64_t last_decile_ = -1;
  bool finished_ = false;
};

}  // namespace pneuma::train
