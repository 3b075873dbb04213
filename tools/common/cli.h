#pragma once
// Shared command-line conventions of the pneuma-* tools: --help exits 0; bad
// arguments print one line on stderr and exit 1 (CLI11's own codes are not used).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

namespace pneuma::tools {

// Returns the exit code when the program should stop now (help, or bad arguments).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), e.what());
    return 1;
  }
  return std::nullopt;
}

}  // namespace pneuma::tools
