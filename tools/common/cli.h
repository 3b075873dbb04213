#pragma once
// Shared command-line conventions of the pneuma-* tools: --help exits 0; bad
// arguments print one line on stderr and exit 1 (CLI11's own codes are not used).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include "tools/common/error_line.h"

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

// A tool's main after its flags are declared: the command line parsed (parse_command_line),
// then body() gives the exit code; an exception from it is the one line
// "<tool>: <message>" on stderr (print_error) and exit code 1.
template <class Body>
int run_tool(CLI::App& app, int argc, char** argv, Body&& body) {
  if (std::optional<int> code = parse_command_line(app, argc, argv)) return *code;
  try {
    return body();
  } catch (const std::exception& e) {
    print_error(app.get_name().c_str(), e.what());
    return 1;
  }
}

}  // namespace pneuma::tools
