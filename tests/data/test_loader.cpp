#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/data/loader.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using namespace pneuma::data;

namespace {

// Every batch of one epoch, flattened: images, labels and indices.
struct EpochDump {
  std::vector<std::vector<double>> images, second_views;
  std::vector<std::vector<int64_t>> labels, indices;
};

EpochDump run_epoch(DataLoader& loader, int64_t epoch) {
  EpochDump d;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) {
    d.images.push_back(b->images().to_vector());
    if (b->views.size() > 1) d.second_views.push_back(b->views[1].to_vector());
    d.labels.push_back(b->labels.to_indices());
    d.indices.push_back(b->indices);
  }
  return d;
}

Manifest kermany_subset(int64_t n) {
  const Manifest m = read_manifest(pneuma::testing::kermany_csv());
  std::vector<int64_t> pick;
  for (int64_t i = 0; i < n; ++i) pick.push_back(i * (m.size() / n));
  return m.subset(pick);
}

// A dataset of constant images whose value is the index; throws for one index; counts
// concurrent calls, to see that several workers really run.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t size, int64_t bad = -1) : size_(size), bad_(bad) {}
  int64_t size() const override { return size_; }
  Example get(int64_t index, uint64_t seed) const override {
    const int now = ++active_;
    int seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    --active_;
    PNEUMA_CHECK(index != bad_, "image 'sample-", index, ".png': truncated PNG (no IEND chunk at the end of the file)");
    Example ex;
    ex.views.push_back(Tensor::full({1, 2, 2}, static_cast<double>(index) + static_cast<double>(seed % 7) * 1e-3));
    ex.label = index % 2;
    return ex;
  }
  int peak() const { return peak_.load(); }

 private:
  int64_t size_, bad_;
  mutable std::atomic<int> active_{0}, peak_{0};
};

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("loader: the same batches with 0 or 1 or 3 workers (augmented Kermany JPEGs)") {
    PNEUMA_REQUIRE_KERMANY();
    auto dataset = std::make_shared<ImageDataset>(kermany_subset(40), Pipeline::cxr_train(48));
    auto sampler = std::make_shared<ShuffledSampler>(dataset->size(), 5);
    std::vector<EpochDump> runs;
    for (int workers : {0, 1, 3}) {
      LoaderOptions o;
      o.batch_size = 16;
      o.workers = workers;
      o.seed = 9;
      DataLoader loader(dataset, sampler, o);
      CHECK(loader.batches_per_epoch() == 3);
      runs.push_back(run_epoch(loader, 1));
    }
    REQUIRE(runs[0].images.size() == 3);
    CHECK(runs[0].indices[2].size() == 8);  // 40 = 16 + 16 + 8
    for (size_t r = 1; r < runs.size(); ++r) {
      CHECK(runs[r].indices == runs[0].indices);
      CHECK(runs[r].labels == runs[0].labels);
      CHECK(runs[r].images == runs[0].images);
    }
    // another epoch reshuffles and re-augments
    DataLoader loader(dataset, sampler, LoaderOptions{16, 2, 0, false, 9});
    const EpochDump other = run_epoch(loader, 2);
    CHECK(other.indices != runs[0].indices);
    // batches are [B, 3, 48, 48], ImageNet-normalized
    loader.start_epoch(0);
    const auto b = loader.next();
    REQUIRE(b.has_value());
    CHECK(b->images().shape() == Shape{16, 3, 48, 48});
    CHECK(b->labels.dtype() == DType::Int64);
    CHECK(b->labels.shape() == Shape{16});
  }

  TEST_CASE("loader: two views (SimCLR) and drop_last") {
    PNEUMA_REQUIRE_KERMANY();
    auto dataset = std::make_shared<ImageDataset>(kermany_subset(10),
                                                  std::vector<Pipeline>{Pipeline::simclr(32), Pipeline::simclr(32)});
    DataLoader loader(dataset, std::make_shared<SequentialSampler>(10), LoaderOptions{4, 2, 0, true, 1});
    CHECK(loader.batches_per_epoch() == 2);
    const EpochDump d = run_epoch(loader, 0);
    REQUIRE(d.images.size() == 2);
    REQUIRE(d.second_views.size() == 2);
    CHECK(d.images[0] != d.second_views[0]);  // two different augmentations of the same images
    CHECK(d.images[0].size() == 4 * 3 * 32 * 32);
  }

  TEST_CASE("loader: workers run in parallel and a worker's error reaches the caller in order and shutdown is clean") {
    auto sampler = std::make_shared<SequentialSampler>(64);
    {
      auto dataset = std::make_shared<CountingDataset>(64);
      DataLoader loader(dataset, sampler, LoaderOptions{4, 3, 6, false, 0});
      const EpochDump d = run_epoch(loader, 0);
      CHECK(d.images.size() == 16);
      for (size_t b = 0; b < d.indices.size(); ++b) CHECK(d.indices[b][0] == static_cast<int64_t>(4 * b));
      CHECK(dataset->peak() >= 2);
    }
    {
      auto dataset = std::make_shared<CountingDataset>(64, /*bad=*/37);
      DataLoader loader(dataset, sampler, LoaderOptions{4, 3, 0, false, 0});
      loader.start_epoch(0);
      int64_t delivered = 0;
      std::string error;
      try {
        while (loader.next()) ++delivered;
      } catch (const Error& e) {
        error = e.what();
      }
      CHECK(delivered == 9);  // batches 0..8 arrive; batch 9 holds sample 37
      CHECK(error == "image 'sample-37.png': truncated PNG (no IEND chunk at the end of the file)");
      CHECK_THROWS_WITH_AS(loader.next(), "DataLoader::next: call start_epoch first", Error);
      loader.start_epoch(1);  // usable again
      CHECK(loader.next().has_value());
    }
    {
      // destroyed mid-epoch with workers blocked on a full queue
      auto dataset = std::make_shared<CountingDataset>(64);
      DataLoader loader(dataset, sampler, LoaderOptions{2, 3, 2, false, 0});
      loader.start_epoch(0);
      CHECK(loader.next().has_value());
    }
  }

  TEST_CASE("loader: a corrupt file in the manifest names the file") {
    PNEUMA_REQUIRE_KERMANY();
    pneuma::testing::TempDir dir("loader");
    Manifest m = kermany_subset(6);
    pneuma::testing::write_bytes(dir / "bad.jpeg", {0xFF, 0xD8, 0xFF, 0xE0, 0x00});
    m.records[4].file = dir / "bad.jpeg";
    auto dataset = std::make_shared<ImageDataset>(m, Pipeline::eval(32));
    DataLoader loader(dataset, std::make_shared<SequentialSampler>(6), LoaderOptions{2, 2, 0, false, 0});
    loader.start_epoch(0);
    CHECK(loader.next().has_value());
    CHECK(loader.next().has_value());
    const std::string expected = "image '" + (dir / "bad.jpeg") + "': truncated JPEG";
    CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains(expected.c_str()), Error);
  }
}
