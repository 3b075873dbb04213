#pragma once
// pneuma::Error: every user-facing failure (bad shapes, dtypes, devices, files) is
// reported with this type so tools can print one line and exit 1.
#include <sstream>
#include <stdexcept>
#include <string>

namespace pneuma {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace pneuma

// PNEUMA_CHECK(cond, "op: ", details...) throws pneuma::Error with the joined message.
#define PNEUMA_CHECK(cond, ...)                                      \
  do {                                                               \
    if (!(cond)) throw ::pneuma::Error(::pneuma::detail::concat(__VA_ARGS__)); \
  } while (0)

#define PNEUMA_FAIL(...) throw ::pneuma::Error(::pneuma::detail::concat(__VA_ARGS__))
