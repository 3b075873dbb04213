// pneuma-train-unet end to end: trains on pneuma-synth's masks, predicts masks that
// pneuma-crop takes, and predicts for a folder without masks.
#include <doctest/doctest.h>

#include <filesystem>

#include "engine/data/image.h"
#include "engine/data/manifest.h"
#include "engine/io/safetensors.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/train/segmentation.h"
#include "tests/e2e/tools_util.h"

using namespace pneuma;
using namespace pneuma::testing;
namespace fs = std::filesystem;

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-train-unet: Dice + BCE training with validation Dice and IoU and predicted masks for pneuma-crop") {
    const std::string set = synthetic_set(48, 32);
    TempDir dir("unet");
    std::string out;
    REQUIRE(run_command(tool_path("train-unet") + " --data " + set + "/train.csv --out " + (dir / "u") +
                        " --img-size 32 --epochs 12 --batch 8 --lr 1e-2 --base-width 4 --threads 1 --workers 1"
                        " --predict-masks " + (dir / "p") + " 2>/dev/null", &out) == 0);
    const std::vector<nlohmann::json> lines = read_json_lines(dir / "u/metrics.jsonl");
    REQUIRE(lines.size() == 12);
    double best_dice = 0;
    for (const nlohmann::json& line : lines) {
      const double dice = line.at("val_dice"), iou = line.at("val_iou");
      CHECK((dice >= 0 && dice <= 1));
      CHECK((iou >= 0 && iou <= dice + 1e-12));  // IoU <= Dice for every image
      best_dice = std::max(best_dice, dice);
    }
    // the lungs are learned: better than the first epoch and well above predicting "all lung"
    // (Dice about 0.5 at these lung fractions)
    CHECK(best_dice > lines.front().at("val_dice").get<double>());
    CHECK(best_dice > 0.8);
    const io::SafetensorsHeader best = io::read_safetensors_header(dir / "u/best.safetensors");
    CHECK(best.metadata.at("model") == "unet");
    CHECK(best.metadata.at("base_width") == "4");
    CHECK(best.metadata.at("img_size") == "32");
    CHECK(std::stod(best.metadata.at("val_dice")) == doctest::Approx(best_dice));

    // predicted masks: one binary PNG per image at its size, in a manifest for pneuma-crop
    const nlohmann::json predicted = last_json_line(out);
    CHECK(predicted.at("masks") == 48);
    const data::Manifest masks = data::read_manifest(dir / "p/train.csv");
    REQUIRE(masks.size() == 48);
    CHECK(masks.has_mask);
    CHECK(masks.has_subtype);
    const data::Manifest source = data::read_manifest(set + "/train.csv");
    double dice_sum = 0;
    for (int64_t i = 0; i < masks.size(); ++i) {
      const data::Record& r = masks.records[static_cast<size_t>(i)];
      CHECK(fs::equivalent(r.file, source.records[static_cast<size_t>(i)].file));
      CHECK(r.mask.rfind(dir / "p/masks/", 0) == 0);
      const data::Image mask = data::read_image(r.mask, 1);
      CHECK(mask.height == 32);
      for (float v : mask.values) CHECK((v == 0.0f || v == 1.0f));
      // against the true mask
      const data::Image truth = data::read_image(source.records[static_cast<size_t>(i)].mask, 1);
      const Tensor p = data::to_tensor(mask, 1).unsqueeze(0), t = data::to_tensor(truth, 1).unsqueeze(0);
      // mask_scores thresholds logits at 0: 2p - 1 maps a 0/1 mask to logits -1/+1
      dice_sum += train::mask_scores(sub(mul(p, 2.0), 1.0), t)[0].dice;
    }
    CHECK(dice_sum / 48 > 0.8);
    REQUIRE(run_command(tool_path("crop") + " --manifest " + (dir / "p/train.csv") + " --out " + (dir / "c") +
                        " --size 24 >/dev/null 2>&1") == 0);
    CHECK(data::read_manifest(dir / "c/train.csv").size() == 48);

    // predicting only, for a folder of images without masks
    REQUIRE(run_command(tool_path("train-unet") + " --weights " + (dir / "u/best.safetensors") + " --predict-masks " +
                        (dir / "q") + " --predict-data " + set + " --threads 1 2>/dev/null", &out) == 0);
    const data::Manifest folder = data::read_manifest(dir / "q/masks.csv");
    CHECK(folder.size() == 48);
    CHECK(fs::exists(folder.records[0].mask));
  }

  TEST_CASE("pneuma-train-unet --precision bf16 --channels-last learns the lungs too") {
    const std::string set = synthetic_set(48, 32);
    TempDir dir("unet-compute");
    std::string out;
    REQUIRE(run_command(tool_path("train-unet") + " --data " + set + "/train.csv --out " + (dir / "u") +
                            " --img-size 32 --epochs 12 --batch 8 --lr 1e-2 --base-width 4 --threads 1 --workers 1"
                            " --precision bf16 --channels-last 2>/dev/null",
                        &out) == 0);
    const std::vector<nlohmann::json> lines = read_json_lines(dir / "u/metrics.jsonl");
    REQUIRE(lines.size() == 12);
    double best_dice = 0;
    for (const nlohmann::json& line : lines) best_dice = std::max(best_dice, line.at("val_dice").get<double>());
    MESSAGE("best validation Dice, bf16 channels-last: ", best_dice);
    CHECK(best_dice > 0.8);  // as the float32 NCHW run above
    CHECK(io::load_safetensors(dir / "u/best.safetensors").tensors.front().second.dtype() == DType::Float32);
  }

  TEST_CASE("train::mask_scores: Dice and IoU per image and empty against empty is 1") {
    const Tensor logits = Tensor::from_vector({5, 5, -5, -5, /**/ -1, -1, -1, -1, /**/ 1, -1, -1, -1}, {3, 1, 2, 2});
    const Tensor targets = Tensor::from_vector({1, 0, 0, 0, /**/ 0, 0, 0, 0, /**/ 0, 1, 0, 0}, {3, 1, 2, 2});
    const std::vector<train::MaskScore> s = train::mask_scores(logits, targets);
    REQUIRE(s.size() == 3);
    CHECK(s[0].dice == doctest::Approx(2.0 / 3));
    CHECK(s[0].iou == doctest::Approx(0.5));
    CHECK(s[1].dice == 1.0);
    CHECK(s[1].iou == 1.0);
    CHECK(s[2].dice == 0.0);
    CHECK(s[2].iou == 0.0);
    CHECK_THROWS_AS(train::mask_scores(logits, targets.reshape({3, 4})), Error);
  }

  TEST_CASE("pneuma-train-unet: bad input is one line on stderr and exit code 1") {
    const std::string set = synthetic_set(48, 32);
    TempDir dir("unet-bad");
    std::string out;
    // a manifest without a mask column
    data::Manifest plain = data::read_manifest(set + "/train.csv");
    plain.has_mask = false;
    data::write_manifest(plain, dir / "plain.csv");
    CHECK(run_command(tool_path("train-unet") + " --data " + (dir / "plain.csv") + " --out " + (dir / "u") + " 2>&1",
                      &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(out.find("no mask column") != std::string::npos);
    CHECK(run_command(tool_path("train-unet") + " --data " + (dir / "none.csv") + " --out " + (dir / "u") + " 2>&1",
                      &out) == 1);
    CHECK(out.find("none.csv: no such file or folder") != std::string::npos);
    CHECK(run_command(tool_path("train-unet") + " --data " + set + "/train.csv 2>&1", &out) == 1);
    CHECK(out.find("give --out DIR to train") != std::string::npos);
    // a classifier checkpoint is not a U-Net
    io::save_safetensors(dir / "cls.safetensors", {{"fc.weight", Tensor::zeros({1, 2})}}, {{"model", "resnet18"}});
    CHECK(run_command(tool_path("train-unet") + " --weights " + (dir / "cls.safetensors") + " --predict-masks " +
                      (dir / "p") + " --data " + set + " 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(out.find("not a U-Net") != std::string::npos);
    CHECK(run_command(tool_path("train-unet") + " --help >/dev/null") == 0);
  }
}
