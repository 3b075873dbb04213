#pragma once
// Metrics as JSON lines: one object per line, flushed at once, so a killed run keeps
// every record written so far and `tail -f` shows progress.
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace pneuma::train {

class MetricsLog {
 public:
  // path "": no file (echo only). append: keep existing lines (a resumed run).
  explicit MetricsLog(const std::string& path, bool echo_stdout = true, bool append = false);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream file_;
  bool echo_;
};

}  // namespace pneuma::train
