#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/data/image.h"
#include "engine/train/data_setup.h"
#include "engine/train/early_stopping.h"
#include "engine/train/finite.h"
#include "engine/train/metrics_log.h"
#include "engine/train/progress.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using testing::TempDir;

TEST_CASE("early stopping: best tracking - patience - min_delta - NaN - state") {
  train::EarlyStopping stop(2, /*maximize=*/true, /*min_delta=*/0.01);
  CHECK(stop.best_epoch() == -1);
  CHECK(stop.update(0.5));
  CHECK_FALSE(stop.update(0.505));  // within min_delta: not better
  CHECK_FALSE(stop.should_stop());
  CHECK(stop.update(0.6));
  CHECK(stop.best_epoch() == 2);
  CHECK_FALSE(stop.update(std::numeric_limits<double>::quiet_NaN()));
  CHECK_FALSE(stop.should_stop());
  CHECK_FALSE(stop.update(0.55));
  CHECK(stop.should_stop());
  CHECK(stop.best() == 0.6);

  train::EarlyStopping restored(2, true, 0.01);
  restored.load_state(nlohmann::json::parse(stop.state().dump()));
  CHECK(restored.should_stop());
  CHECK(restored.best() == 0.6);
  CHECK(restored.best_epoch() == 2);

  train::EarlyStopping minimize(1, /*maximize=*/false);
  CHECK(minimize.update(1.0));
  CHECK(minimize.update(0.9));
  CHECK_FALSE(minimize.update(0.95));
  CHECK(minimize.should_stop());

  train::EarlyStopping never(0);
  never.update(1.0);
  for (int i = 0; i < 50; ++i) never.update(0.0);
  CHECK_FALSE(never.should_stop());
  CHECK_THROWS_AS(train::EarlyStopping(-1), Error);

  // A fresh state (no best yet) round-trips too.
  train::EarlyStopping empty(3);
  train::EarlyStopping empty2(3);
  empty2.load_state(nlohmann::json::parse(empty.state().dump()));
  CHECK(empty2.update(0.1));
}

TEST_CASE("require_finite_loss names the value - the step and what was kept") {
  CHECK_NOTHROW(train::require_finite_loss(Tensor::scalar(0.25), 1, "x"));
  CHECK_THROWS_WITH_AS(train::require_finite_loss(Tensor::scalar(std::nan("")), 123, "the checkpoint of epoch 2"),
                       "loss is nan at step 123; kept the checkpoint of epoch 2", Error);
  CHECK_THROWS_WITH_AS(train::require_finite_loss(-std::numeric_limits<double>::infinity(), 7, ""),
                       "loss is -inf at step 7", Error);
  CHECK_THROWS_WITH_AS(train::require_finite_loss(Tensor::zeros({2}), 1, ""), doctest::Contains("not one number"),
                       Error);
}

TEST_CASE("metrics log: one flushed JSON object per line - append keeps earlier lines") {
  TempDir dir("metrics-log");
  const std::string path = dir / "m.jsonl";
  {
    train::MetricsLog log(path, /*echo_stdout=*/false);
    log.write({{"epoch", 1}, {"loss", 0.5}});
    // Flushed at once: readable before the log is closed.
    std::ifstream in(path);
    std::string line;
    REQUIRE(std::getline(in, line));
    CHECK(nlohmann::json::parse(line).at("epoch") == 1);
  }
  {
    train::MetricsLog log(path, false, /*append=*/true);
    log.write({{"epoch", 2}});
  }
  std::ifstream in(path);
  int lines = 0;
  for (std::string line; std::getline(in, line);) CHECK(nlohmann::json::parse(line).at("epoch") == ++lines);
  CHECK(lines == 2);
  train::MetricsLog truncating(path, false);
  CHECK(std::filesystem::file_size(path) == 0);
  CHECK_THROWS_AS(train::MetricsLog(dir / "no/such/folder/m.jsonl", false), Error);
}

TEST_CASE("progress bar off a terminal prints at most a line per tenth") {
  // stderr is a pipe or file under the test runner; count lines through a redirected stderr.
  TempDir dir("progress");
  const std::string path = dir / "err.txt";
  std::fflush(stderr);
  const int saved = dup(STDERR_FILENO);
  FILE* file = std::fopen(path.c_str(), "w");
  REQUIRE(file != nullptr);
  dup2(fileno(file), STDERR_FILENO);
  {
    train::ProgressBar bar("epoch 1/1", 1000);
    for (int i = 1; i <= 1000; ++i) bar.update(i, "loss 0.1");
    bar.finish("done");
  }
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::fclose(file);
  std::ifstream in(path);
  int lines = 0;
  std::string last;
  for (std::string line; std::getline(in, line); ++lines) last = line;
  CHECK(lines >= 2);
  CHECK(lines <= 11);
  CHECK(last.find("1000/1000 done") != std::string::npos);
}

TEST_CASE("class weights from --class-weights") {
  using train::ClassWeightSpec;
  CHECK_FALSE(ClassWeightSpec::parse("none").resolve({0, 1}, 2).defined());
  // sklearn compute_class_weight("balanced"): n / (classes * count) = 4 / (2 * 3), 4 / (2 * 1).
  const auto automatic = ClassWeightSpec::parse("auto").resolve({0, 0, 0, 1}, 2).to_vector();
  CHECK(automatic[0] == doctest::Approx(4.0 / 6.0));
  CHECK(automatic[1] == doctest::Approx(2.0));
  const auto explicit_weights = ClassWeightSpec::parse("1,2.5").resolve({0, 1}, 2).to_vector();
  CHECK(explicit_weights == std::vector<double>{1.0, 2.5});
  CHECK(ClassWeightSpec::parse("1,2.5").str() == "1,2.5");
  CHECK_THROWS_WITH_AS(ClassWeightSpec::parse("1,x"), doctest::Contains("'1,x'"), Error);
  CHECK_THROWS_AS(ClassWeightSpec::parse("1,-2"), Error);
  CHECK_THROWS_WITH_AS(ClassWeightSpec::parse("1,2,3").resolve({0, 1}, 2), doctest::Contains("3 weights"), Error);
  CHECK_THROWS_AS(ClassWeightSpec::parse("auto").resolve({0, 0}, 2), Error);  // class 1 empty
}

namespace {
// A Kermany-layout folder of tiny gray PNGs: `normal` NORMAL and `pneumonia` PNEUMONIA images.
void make_folder(const std::string& root, int normal, int pneumonia) {
  for (const auto& [folder, count] : {std::pair<const char*, int>{"NORMAL", normal}, {"PNEUMONIA", pneumonia}}) {
    std::filesystem::create_directories(std::filesystem::path(root) / folder);
    for (int i = 0; i < count; ++i) {
      data::Image image(1, 8, 8, 0.1f * static_cast<float>(i % 10));
      data::write_png(image, root + "/" + folder + "/person" + std::to_string(i) + "_x_" + std::to_string(i) + ".png");
    }
  }
}
}  // namespace

TEST_SUITE("data") {
  TEST_CASE("open_training_data: folders with or without train/ - CSVs - bad files - empty classes") {
    TempDir dir("open-training");
    make_folder(dir / "kermany/train", 4, 6);
    int64_t skipped = -1;
    const data::Manifest from_root = train::open_training_data(dir / "kermany", false, 1, &skipped);
    CHECK(from_root.size() == 10);
    CHECK(skipped == 0);
    CHECK(train::open_training_data(dir / "kermany/train", false, 2).size() == 10);

    testing::write_text(dir / "list.csv",
                        "path,label\nkermany/train/NORMAL/person0_x_0.png,0\n"
                        "kermany/train/PNEUMONIA/person1_x_1.png,1\nbroken.png,1\n");
    testing::write_text(dir / "broken.png", "not a png");
    CHECK_THROWS_WITH_AS(train::open_training_data(dir / "list.csv", false, 1), doctest::Contains("broken.png"), Error);
    const data::Manifest skipping = train::open_training_data(dir / "list.csv", true, 1, &skipped);
    CHECK(skipping.size() == 2);
    CHECK(skipped == 1);

    make_folder(dir / "only_normal", 3, 0);
    CHECK_THROWS_WITH_AS(train::open_training_data(dir / "only_normal", false, 1),
                         doctest::Contains("class 1 has no images"), Error);
    CHECK_THROWS_WITH_AS(train::open_training_data(dir / "missing", false, 1),
                         doctest::Contains("no such file or folder"), Error);
  }

  TEST_CASE("split_training_data: folds - fraction - separate validation set") {
    TempDir dir("split-training");
    make_folder(dir / "set", 8, 12);
    const data::Manifest m = train::open_training_data(dir / "set", false, 1);
    train::SplitOptions o;
    o.folds = 4;
    o.fold = 1;
    const data::Split by_fold = train::split_training_data(m, o);
    CHECK(by_fold.train.size() + by_fold.val.size() == 20);
    CHECK(by_fold.val.size() == 5);
    o.fold = 4;
    CHECK_THROWS_WITH_AS(train::split_training_data(m, o), doctest::Contains("--fold 4"), Error);
    train::SplitOptions fraction;
    fraction.val_fraction = 0.25;
    const data::Split by_fraction = train::split_training_data(m, fraction);
    CHECK(by_fraction.val.size() == 5);
    train::SplitOptions separate;
    separate.val_data = dir / "set";
    CHECK(train::split_training_data(m, separate).val.size() == 20);
    CHECK_THROWS_AS(train::require_all_classes(m, 3, "set"), Error);
  }
}
