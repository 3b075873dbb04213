// pneuma-quickstart: the README's main job until the training tools exist. Generates a
// small two-class image set (a bright opacity or none, over a noisy background),
// trains a small conv net with SGD and prints one JSON line per epoch; exits 1 when
// the loss did not fall.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "engine/core/generator.h"
#include "engine/core/random.h"
#include "engine/nn/layers.h"
#include "engine/optim/optimizer.h"
#include "engine/ops/index/index.h"
#include "engine/ops/pool/pool.h"
#include "engine/pneuma.h"
#include "tools/common/cli.h"

using namespace pneuma;

namespace {

struct Dataset {
  Tensor images;  // [N, 1, S, S]
  Tensor labels;  // [N, 1], 0 or 1
};

// Class 1 images carry a Gaussian blob at a random place; both classes have a smooth
// gradient background and pixel noise, so the net must find the blob.
Dataset make_dataset(int64_t count, int64_t size, uint64_t seed) {
  std::vector<double> pixels(count * size * size), labels(count);
  for (int64_t n = 0; n < count; ++n) {
    const uint64_t base = static_cast<uint64_t>(n) * 16;
    const bool positive = n % 2 == 1;
    labels[n] = positive ? 1 : 0;
    const double cx = size * (0.25 + 0.5 * random::uniform(seed, base));
    const double cy = size * (0.25 + 0.5 * random::uniform(seed, base + 1));
    const double radius = size * (0.08 + 0.06 * random::uniform(seed, base + 2));
    const double tilt = random::uniform(seed, base + 3) - 0.5;
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        const int64_t i = (n * size + y) * size + x;
        double v = 0.3 + tilt * (static_cast<double>(x) / size - 0.5) + 0.1 * random::normal(seed + 1, i);
        if (positive) {
          const double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
          v += 0.6 * std::exp(-d2 / (2 * radius * radius));
        }
        pixels[i] = v;
      }
  }
  return {Tensor::from_vector(pixels, {count, 1, size, size}), Tensor::from_vector(labels, {count, 1})};
}

class SmallConvNet : public nn::Module {
 public:
  SmallConvNet()
      : conv1(register_module("conv1", std::make_shared<nn::Conv2d>(1, 8, std::array<int64_t, 2>{3, 3}, opts()))),
        bn1(register_module("bn1", std::make_shared<nn::BatchNorm2d>(8))),
        conv2(register_module("conv2", std::make_shared<nn::Conv2d>(8, 16, std::array<int64_t, 2>{3, 3}, opts()))),
        bn2(register_module("bn2", std::make_shared<nn::BatchNorm2d>(16))),
        fc(register_module("fc", std::make_shared<nn::Linear>(16, 1))) {}

  Tensor forward(const Tensor& x) const {
    Tensor h = max_pool2d(relu(bn1->forward(conv1->forward(x))), {2, 2});
    h = relu(bn2->forward(conv2->forward(h)));
    h = adaptive_avg_pool2d(h, {1, 1}).flatten(1);
    return fc->forward(h);
  }

 private:
  static nn::Conv2d::Options opts() {
    nn::Conv2d::Options o;
    o.padding = {1, 1};
    o.bias = false;
    return o;
  }
  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Conv2d> conv2;
  std::shared_ptr<nn::BatchNorm2d> bn2;
  std::shared_ptr<nn::Linear> fc;
};

// Binary cross-entropy with logits, written stably: softplus(z) - y z.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets) {
  return mean(sub(softplus(logits), mul(targets, logits)));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"train a small conv net on generated two-class images and show the loss falling", "pneuma-quickstart"};
  int64_t images = 512, size = 32, batch = 32, epochs = 6;
  double lr = 0.05;
  uint64_t seed = 7;
  int threads = 2;
  app.add_option("--images", images, "number of generated images")->check(CLI::Range(int64_t{8}, int64_t{1} << 20));
  app.add_option("--size", size, "image side in pixels")->check(CLI::Range(int64_t{8}, int64_t{512}));
  app.add_option("--batch", batch, "batch size")->check(CLI::Range(int64_t{2}, int64_t{4096}));
  app.add_option("--epochs", epochs, "epochs")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--lr", lr, "SGD learning rate (momentum 0.9)")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed for data and weights");
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 256));
  if (const auto exit_code = tools::parse_command_line(app, argc, argv)) return *exit_code;

  try {
    cpu::set_num_threads(threads);
    manual_seed(seed);
    const Dataset data = make_dataset(images, size, seed);
    SmallConvNet model;
    optim::SGD optimizer(model.parameters(), {lr, 0.9, 0, 1e-4, false});
    const int64_t steps = (images + batch - 1) / batch;
    const bool show_progress = isatty(STDERR_FILENO) != 0;
    double first_loss = 0, last_loss = 0;
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      model.train();
      double total = 0;
      int64_t correct = 0;
      for (int64_t s = 0; s < steps; ++s) {
        // A fixed permutation per epoch: stride through the set with a step coprime to it.
        const int64_t begin = s * batch, end = std::min(images, begin + batch);
        std::vector<int64_t> index;
        for (int64_t i = begin; i < end; ++i) index.push_back((i * 7919 + epoch * 104729) % images);
        const Tensor idx = Tensor::from_indices(index, {static_cast<int64_t>(index.size())});
        const Tensor x = index_select(data.images, 0, idx);
        const Tensor y = index_select(data.labels, 0, idx);
        const Tensor logits = model.forward(x);
        const Tensor loss = bce_with_logits(logits, y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        total += loss.item() * static_cast<double>(index.size());
        const std::vector<double> z = logits.to_vector(), t = y.to_vector();
        for (size_t i = 0; i < z.size(); ++i) correct += (z[i] > 0) == (t[i] > 0.5);
        if (show_progress)
          std::fprintf(stderr, "\repoch %lld/%lld [%-30s] %lld/%lld", static_cast<long long>(epoch + 1),
                     static_cast<long long>(epochs), std::string(30 * (s + 1) / steps, '#').c_str(),
                     static_cast<long long>(s + 1), static_cast<long long>(steps));
      }
      if (show_progress) std::fprintf(stderr, "\n");
      const double loss = total / static_cast<double>(images);
      if (epoch == 0) first_loss = loss;
      last_loss = loss;
      std::cout << nlohmann::json{{"epoch", epoch + 1}, {"loss", loss},
                                  {"train_accuracy", static_cast<double>(correct) / static_cast<double>(images)}}
                       .dump()
                << std::endl;
    }
    if (!(last_loss < first_loss)) {
      std::fprintf(stderr, "pneuma-quickstart: the loss did not fall (%g -> %g)\n", first_loss, last_loss);
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pneuma-quickstart: %s\n", e.what());
    return 1;
  }
}
