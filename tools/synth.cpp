// pneuma-synth: writes synthetic CXR-like images in the Kermany layout, a lung mask PNG
// per image and a CSV manifest (path,label,domain,subtype,patient,mask), and prints one
// JSON line with counts and the rate.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/resource.h>
#include <unistd.h>

#include "engine/data/synth/synth.h"
#include "tools/common/cli.h"

using namespace pneuma;
using namespace pneuma::data;

namespace {
// User + system CPU time of the process: the rate per core on a shared machine.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Synthetic two-domain chest X-ray images with lung masks (Kermany layout + CSV manifest)",
               "pneuma-synth"};
  synth::GenerateOptions o;
  std::string domains = "pediatric,adult";
  int64_t n = 0;
  app.add_option("--out", o.out, "output folder")->required();
  app.add_option("--n", n, "number of images")->required()->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "seed (same seed, same images)")->required();
  app.add_option("--size", o.size, "image side in pixels")->check(CLI::Range(16, 4096));
  app.add_option("--domains", domains, "comma-separated: pediatric, adult (patients alternate between them)");
  app.add_option("--normal-fraction", o.normal_fraction, "fraction of normal patients")->check(CLI::Range(0.0, 1.0));
  app.add_option("--viral-fraction", o.viral_fraction, "fraction of viral among pneumonia patients")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--split", o.split, "split folder and manifest name");
  app.add_option("--threads", o.threads, "worker threads")->check(CLI::Range(1, 256));
  app.add_option("--quality", o.quality, "JPEG quality")->check(CLI::Range(1, 100));
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;

  try {
    o.n = n;
    o.domains.clear();
    std::stringstream list(domains);
    for (std::string item; std::getline(list, item, ',');)
      if (!item.empty()) o.domains.push_back(synth::parse_domain(item));
    PNEUMA_CHECK(!o.domains.empty(), "synth: --domains names no domain");
    o.progress = isatty(STDERR_FILENO) != 0;
    const synth::GenerateSummary s = synth::generate(o);
    nlohmann::json line = {{"images", s.images},
                           {"patients", s.patients},
                           {"normal", s.per_finding[0]},
                           {"bacterial", s.per_finding[1]},
                           {"viral", s.per_finding[2]},
                           {"size", o.size},
                           {"threads", o.threads},
                           {"manifest", s.manifest},
                           {"seconds", s.seconds},
                           {"images_per_s", s.seconds > 0 ? s.images / s.seconds : 0.0},
                           {"cpu_seconds", cpu_seconds()}};
    std::cout << line.dump() << std::endl;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pneuma-synth: %s\n", e.what());
    return 1;
  }
  return 0;
}
