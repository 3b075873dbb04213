#pragma once
// Helpers of the data-pipeline tests: fixture paths, the shared Kermany data, scratch
// folders.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "tests/support/cuda.h"  // skip_test

namespace pneuma::testing {

inline std::string kermany_dir() {
  return (std::filesystem::path(PNEUMA_SOURCE_DIR) / "../shared/data/kermany224").lexically_normal().string();
}
inline std::string kermany_csv() { return kermany_dir() + "/train.csv"; }
inline std::string fixture(const std::string& name) {
  return std::string(PNEUMA_SOURCE_DIR) + "/tests/data/fixtures/" + name;
}
inline std::string binary(const std::string& tool) { return std::string(PNEUMA_BINARY_DIR) + "/bin/" + tool; }

// A fresh folder under the system temp dir, removed with its contents at scope exit.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("pneuma-data-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs a shell command; returns its exit status and stdout.
inline int run_command(const std::string& command, std::string* output = nullptr) {
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  std::string text;
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) text += buffer;
  const int status = pclose(pipe);
  if (output != nullptr) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace pneuma::testing

// First statement of a test that reads ../shared/data/kermany224 (absent outside this
// workplace): skipped, never passed, without it.
#define PNEUMA_REQUIRE_KERMANY()                                                           \
  do {                                                                                     \
    if (!std::filesystem::exists(::pneuma::testing::kermany_csv())) {                      \
      ::pneuma::testing::skip_test("no ../shared/data/kermany224/train.csv next to the repository"); \
      return;                                                                              \
    }                                                                                      \
  } while (0)
