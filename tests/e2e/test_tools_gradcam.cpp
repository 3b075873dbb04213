// pneuma-predict --gradcam: the overlay PNG is the library's Grad-CAM (models/gradcam.h)
// of the preprocessed image, upsampled to the original image and blended over it.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "engine/core/generator.h"
#include "engine/data/image.h"
#include "engine/data/manifest.h"
#include "engine/data/transforms.h"
#include "engine/io/checkpoint.h"
#include "engine/train/checkpointing.h"
#include "models/gradcam.h"
#include "models/registry.h"
#include "tests/e2e/tools_util.h"

using namespace pneuma;
using namespace pneuma::testing;
namespace fs = std::filesystem;

TEST_SUITE("e2e") {
  TEST_CASE("pneuma-predict --gradcam writes the Grad-CAM overlay at the image's size") {
    const std::string set = synthetic_set(48, 32);
    TempDir dir("gradcam-tool");
    for (const char* name : {"resnet18", "densenet121"}) {
      INFO(name);
      manual_seed(9);
      const auto model = models::create_classifier(name, 1);
      const std::string weights = dir / (std::string(name) + ".safetensors");
      io::save_checkpoint(*model, weights, train::checkpoint_metadata(name, 1, 32, data::Normalization::imagenet(), 1));
      // an image of another size than the model's input: the map is upsampled to it
      const data::Image source = data::read_image(data::read_manifest(set + "/train.csv").records[0].file, 1);
      const data::Image image = data::resize(source, 40, 36);
      data::write_png(image, dir / "x.png");
      const data::Image original = data::read_image(dir / "x.png");  // as the tool reads it (8-bit)
      std::string out;
      REQUIRE(run_command(tool_path("predict") + " --weights " + weights + " --image " + (dir / "x.png") +
                          " --gradcam " + (dir / "cam.png") + " --gradcam-alpha 0.4 --json", &out) == 0);
      const nlohmann::json j = nlohmann::json::parse(out);
      CHECK(j.at("gradcam_class") == 0);
      const data::Image overlay = data::read_image(dir / "cam.png");
      REQUIRE(overlay.channels == 3);
      REQUIRE(overlay.height == 40);
      REQUIRE(overlay.width == 36);

      // the same computation in process: pneuma-predict's preprocessing, then grad_cam
      model->eval();
      const Tensor x = data::Pipeline::eval(32)(data::read_image(dir / "x.png", 1), 0).unsqueeze(0);
      const models::GradCam cam = models::grad_cam(*model, x, std::nullopt, std::array<int64_t, 2>{40, 36});
      CHECK(j.at("logits")[0].get<double>() == doctest::Approx(cam.logits[0]).epsilon(1e-5));
      const data::Image expected = models::gradcam_overlay(original, cam.heatmap, 0.4);
      double worst = 0;
      for (size_t i = 0; i < expected.values.size(); ++i)
        worst = std::max(worst, std::abs(static_cast<double>(expected.values[i] - overlay.values[i])));
      CHECK(worst <= 1.0 / 255 + 1e-6);
    }
  }

  TEST_CASE("pneuma-predict --gradcam: a class the model does not have is one line and exit 1") {
    TempDir dir("gradcam-bad");
    io::save_checkpoint(*models::create_classifier("resnet18", 1), dir / "r18.safetensors",
                        {{"model", "resnet18"}, {"num_classes", "1"}, {"img_size", "32"}});
    data::write_png(data::Image(1, 32, 32, 0.5f), dir / "x.png");
    std::string out;
    CHECK(run_command(tool_path("predict") + " --weights " + (dir / "r18.safetensors") + " --image " + (dir / "x.png") +
                      " --gradcam " + (dir / "cam.png") + " --gradcam-class 3 2>&1", &out) == 1);
    CHECK(text_lines(out).size() == 1);
    CHECK(out.find("target class 3") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "cam.png"));
  }
}
