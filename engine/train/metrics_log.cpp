#include "engine/train/metrics_log.h"

#include <iostream>

#include "engine/core/error.h"

namespace pneuma::train {

MetricsLog::MetricsLog(const std::string& path, bool echo_stdout, bool append) : path_(path), echo_(echo_stdout) {
  if (path_.empty()) return;
  file_.open(path_, append ? std::ios::app : std::ios::trunc);
  PNEUMA_CHECK(file_.is_open(), "cannot write metrics to ", path_);
}

void MetricsLog::write(const nlohmann::json& record) {
  // Non-finite numbers would become null in JSON; that is what they are worth to a reader.
  const std::string line = record.dump();
  if (file_.is_open()) {
    file_ << line << '\n';
    file_.flush();
    PNEUMA_CHECK(file_.good(), "writing metrics to ", path_, " failed");
  }
  if (echo_) std::cout << line << std::endl;
}

}  // namespace pneuma::train
