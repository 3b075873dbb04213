#include <doctest/doctest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

// Runs the README's main job at a small size and reads its JSON lines.
TEST_SUITE("e2e") {
  TEST_CASE("quickstart: a small conv net on generated images - the loss falls") {
    const std::string command = std::string(PNEUMA_BINARY_DIR) +
                                "/bin/pneuma-quickstart --images 128 --size 24 --epochs 4 --batch 16 --seed 3";
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::vector<double> losses;
    char line[4096];
    while (std::fgets(line, sizeof line, pipe) != nullptr) losses.push_back(nlohmann::json::parse(line).at("loss"));
    const int status = pclose(pipe);
    CHECK(status == 0);
    REQUIRE(losses.size() == 4);
    MESSAGE("losses by epoch: ", losses[0], " ", losses[1], " ", losses[2], " ", losses[3]);
    CHECK(losses.back() < 0.7 * losses.front());
  }

  TEST_CASE("quickstart: bad arguments give one line and exit code 1") {
    const std::string command =
        std::string(PNEUMA_BINARY_DIR) + "/bin/pneuma-quickstart --epochs 0 2>/dev/null >/dev/null";
    const int status = std::system(command.c_str());
    CHECK(WEXITSTATUS(status) != 0);
  }
}
