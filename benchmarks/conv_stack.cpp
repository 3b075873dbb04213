// ResNet-18's convolutions, forward + backward, on the CPU fast path; the PyTorch twin
// is benchmarks/conv_stack.py and benchmarks/run_conv_stack compares the two.
//
// The stack is ResNet-18 without batch norm, max pool and classifier: the 7x7/2 stem,
// then four stages of two basic blocks (3x3 convs, 64/128/256/512 channels, stride 2
// entering stages 2-4, 1x1/2 downsample convs on their shortcuts), ReLU after every
// conv and residual add. ResNet's 3x3/2 max pool is replaced by a stride-2 subsample
// (a strided view made contiguous) so that every conv sees ResNet-18's exact shapes
// while only convolutions carry real work. Gradients flow to the input and all weights.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/pneuma.h"

using namespace pneuma;

namespace {

struct Conv {
  Tensor weight;
  std::array<int64_t, 2> stride, padding;
  Tensor operator()(const Tensor& x) const { return conv2d(x, weight, Tensor(), stride, padding); }
};

// He-normal weights keep activations O(1) through the stack (no denormals, no overflow).
Conv make_conv(int64_t in, int64_t out, int64_t k, int64_t stride, uint64_t seed) {
  Tensor w = mul(Tensor::randn({out, in, k, k}, seed), std::sqrt(2.0 / static_cast<double>(in * k * k)));
  w.set_requires_grad(true);
  return {w, {stride, stride}, {k / 2, k / 2}};
}

struct Block {
  Conv conv1, conv2;
  bool has_downsample = false;
  Conv downsample;
  Tensor operator()(const Tensor& x) const {
    const Tensor y = conv2(relu(conv1(x)));
    return relu(add(y, has_downsample ? downsample(x) : x));
  }
};

struct Stack {
  Conv stem;
  std::vector<Block> blocks;

  Stack() {
    uint64_t seed = 1;
    stem = make_conv(3, 64, 7, 2, seed++);
    int64_t in = 64;
    for (int64_t channels : {64, 128, 256, 512}) {
      for (int b = 0; b < 2; ++b) {
        const int64_t stride = (b == 0 && channels != 64) ? 2 : 1;
        Block block;
        block.conv1 = make_conv(in, channels, 3, stride, seed++);
        block.conv2 = make_conv(channels, channels, 3, 1, seed++);
        if (stride != 1 || in != channels) {
          block.has_downsample = true;
          block.downsample = make_conv(in, channels, 1, stride, seed++);
        }
        blocks.push_back(block);
        in = channels;
      }
    }
  }

  Tensor operator()(const Tensor& x) const {
    Tensor y = relu(stem(x));
    y = y.slice(2, 0, y.size(2), 2).slice(3, 0, y.size(3), 2).contiguous();  // stands in for the max pool
    for (const Block& b : blocks) y = b(y);
    return y;
  }

  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p{stem.weight};
    for (const Block& b : blocks) {
      p.push_back(b.conv1.weight);
      p.push_back(b.conv2.weight);
      if (b.has_downsample) p.push_back(b.downsample.weight);
    }
    return p;
  }
};

int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // reported in kB
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ResNet-18 conv stack forward+backward benchmark (CPU, float32)"};
  int64_t size = 64, batch = 16;
  int threads = 2, warmup = 2, steps = 5;
  app.add_option("--size", size, "input height and width")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU threads (OpenMP/oneDNN)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--steps", steps, "timed steps")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    cpu::set_num_threads(threads);
    const Stack stack;
    const std::vector<Tensor> params = stack.parameters();
    Tensor x = Tensor::randn({batch, 3, size, size}, 42);
    x.set_requires_grad(true);

    std::vector<double> seconds;
    Tensor grad_output;
    for (int step = 0; step < warmup + steps; ++step) {
      const auto start = std::chrono::steady_clock::now();
      const Tensor y = stack(x);
      if (!grad_output.defined()) grad_output = Tensor::ones(y.shape());
      y.backward(grad_output);
      const auto end = std::chrono::steady_clock::now();
      if (step >= warmup) seconds.push_back(std::chrono::duration<double>(end - start).count());
      for (const Tensor& p : params) p.set_grad(Tensor());
      x.set_grad(Tensor());
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds.size() % 2 ? seconds[seconds.size() / 2]
                                             : 0.5 * (seconds[seconds.size() / 2 - 1] + seconds[seconds.size() / 2]);
    const nlohmann::json result = {{"images_per_second", static_cast<double>(batch) / median},
                                   {"seconds_per_step_median", median},
                                   {"peak_memory_bytes", peak_rss_bytes()},
                                   {"size", size},
                                   {"batch", batch},
                                   {"threads", threads},
                                   {"steps", steps}};
    std::cout << result.dump() << "\n";
  } catch (const Error& e) {
    std::cerr << "pneuma-conv_stack: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
