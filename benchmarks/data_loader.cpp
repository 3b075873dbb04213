// Data loading throughput: decode + augment + batch of the 224x224 Kermany JPEGs with
// the loader's worker threads, the consumer doing nothing else. The PyTorch twin is
// benchmarks/data_loader.py (DataLoader + PIL/torchvision, same transforms, same
// worker count); `data_loader.py --pneuma build/bin/pneuma-data_loader` runs both
// alternately and prints the medians.
//
// Transforms (Pipeline::cxr_train): decode as gray, RandomResizedCrop(224, scale
// 0.7-1, ratio 0.9-1.1), RandomRotation(10, bilinear), RandomAffine(translate 5%),
// ColorJitter(brightness 0.2, contrast 0.2), gray -> 3 channels, ToTensor, ImageNet
// Normalize; batches of 32 as float32 [32, 3, 224, 224] plus int64 labels.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include "engine/data/loader.h"
#include "tools/common/cli.h"

using namespace pneuma;
using namespace pneuma::data;

namespace {
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Data loader throughput on the Kermany JPEGs (decode + augment + batch)", "pneuma-data_loader"};
  std::string manifest = "../shared/data/kermany224/train.csv";
  int workers = 2;
  int64_t batch = 32, batches = 40, warmup = 2, size = 224;
  uint64_t seed = 0;
  app.add_option("--manifest", manifest, "CSV manifest of the images");
  app.add_option("--workers", workers, "loader worker threads")->check(CLI::Range(1, 64));
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--batches", batches, "timed batches")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed batches first")->check(CLI::NonNegativeNumber);
  app.add_option("--size", size, "output side")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "sampler and augmentation seed");
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;

  try {
    const Manifest m = read_manifest(manifest);
    PNEUMA_CHECK(m.size() >= batch * (batches + warmup), "data_loader: ", m.size(), " images are fewer than ",
                 batch * (batches + warmup), " needed");
    auto dataset = std::make_shared<ImageDataset>(m, Pipeline::cxr_train(size));
    auto sampler = std::make_shared<ShuffledSampler>(m.size(), seed);
    LoaderOptions o;
    o.batch_size = batch;
    o.workers = workers;
    o.seed = seed;
    DataLoader loader(dataset, sampler, o);
    loader.start_epoch(0);
    for (int64_t b = 0; b < warmup; ++b) PNEUMA_CHECK(loader.next().has_value(), "data_loader: epoch ended early");
    const double cpu0 = cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    double checksum = 0;
    for (int64_t b = 0; b < batches; ++b) {
      const auto batch_data = loader.next();
      PNEUMA_CHECK(batch_data.has_value(), "data_loader: epoch ended early");
      checksum += batch_data->images().data<float>()[0];
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu = cpu_seconds() - cpu0;
    nlohmann::json line = {{"impl", "pneuma"},
                           {"images_per_second", static_cast<double>(batches * batch) / seconds},
                           {"seconds", seconds},
                           {"cpu_seconds", cpu},
                           {"batches", batches},
                           {"batch", batch},
                           {"workers", workers},
                           {"size", size},
                           {"checksum", checksum}};
    std::cout << line.dump() << std::endl;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pneuma-data_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
