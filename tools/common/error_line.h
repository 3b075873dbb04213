#pragma once
// The tools' failure report: "pneuma-<tool>: <message>" as ONE line on stderr, even for
// messages the library spreads over several lines (a manifest's list of bad rows, one per
// line, becomes "...: first; second; ..."), so scripts and tests can rely on one line.
#include <cstdio>
#include <string>

namespace pneuma::tools {

inline std::string one_line(const std::string& message) {
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    const char ch = message[i];
    if (ch != '\n' && ch != '\r') {
      out += ch;
      continue;
    }
    while (i + 1 < message.size() && (message[i + 1] == '\n' || message[i + 1] == '\r' || message[i + 1] == ' ')) ++i;
    // A list introduced by "...:" continues with a space; other line breaks become "; ".
    if (!out.empty() && out.back() == ':') {
      out += ' ';
    } else if (!out.empty() && i + 1 < message.size()) {
      out += "; ";
    }
  }
  return out;
}

inline void print_error(const char* tool, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", tool, one_line(message).c_str());
}

}  // namespace pneuma::tools
