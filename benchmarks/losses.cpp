// Forward + backward of the losses' CPU reference path (float32), one JSON line per case; the
// PyTorch twin is benchmarks/losses.py, which also runs this binary, interleaving the two, and
// reports the ratios.
//
// Cases (N rows of dim D): the contrastive family on embeddings [N, D] (nt_xent, multi_pos_con
// with two balanced classes as in the three-branch framework, supcon), and the row losses on
// [N, D] (sigmoid_focal with binary targets, cross_entropy over D classes with label smoothing,
// cosine_embedding with +-1 targets). The timed step is loss(x) then loss.backward().
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/pneuma.h"

using namespace pneuma;

namespace {

const std::vector<std::string> kLosses = {"nt_xent", "multi_pos_con", "supcon", "sigmoid_focal", "cross_entropy",
                                          "cosine_embedding"};

struct Case {
  std::vector<Tensor> leaves;       // what the step differentiates
  std::function<Tensor()> forward;  // the loss, a scalar
};

Tensor leaf(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::randn(shape, seed);
  t.set_requires_grad(true);
  return t;
}

Case make_case(const std::string& loss, int64_t n, int64_t d) {
  std::vector<int64_t> binary(static_cast<size_t>(n)), classes(static_cast<size_t>(n));
  std::vector<double> targets01(static_cast<size_t>(n * d)), signs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    binary[static_cast<size_t>(i)] = i % 2;
    classes[static_cast<size_t>(i)] = (i * 37) % d;
    signs[static_cast<size_t>(i)] = i % 3 == 0 ? 1.0 : -1.0;
  }
  for (int64_t i = 0; i < n * d; ++i) targets01[static_cast<size_t>(i)] = (i * 7919) % 11 < 3 ? 1.0 : 0.0;
  const Tensor labels = Tensor::from_indices(binary, {n});
  if (loss == "nt_xent") {
    Tensor z = leaf({n, d}, 1);
    return {{z}, [z] { return nt_xent_loss(z, 0.1); }};
  }
  if (loss == "multi_pos_con") {
    Tensor z = leaf({n, d}, 2);
    return {{z}, [z, labels] { return multi_pos_con_loss(z, labels, 0.1); }};
  }
  if (loss == "supcon") {
    // SupCon expects normalized features; the normalization is part of the timed step.
    Tensor z = leaf({n, d}, 3);
    return {{z}, [z, labels] { return supcon_loss(normalize(z, 2.0, 1), labels, 0.07); }};
  }
  if (loss == "sigmoid_focal") {
    Tensor x = leaf({n, d}, 4);
    const Tensor t = Tensor::from_vector(targets01, {n, d});
    return {{x}, [x, t] { return sigmoid_focal_loss(x, t, 0.25, 2.0, Reduction::Mean); }};
  }
  if (loss == "cross_entropy") {
    Tensor x = leaf({n, d}, 5);
    const Tensor y = Tensor::from_indices(classes, {n});
    return {{x}, [x, y] { return cross_entropy(x, y, Tensor(), -100, Reduction::Mean, 0.1); }};
  }
  if (loss == "cosine_embedding") {
    Tensor a = leaf({n, d}, 6), b = leaf({n, d}, 7);
    const Tensor t = Tensor::from_vector(signs, {n});
    return {{a, b}, [a, b, t] { return cosine_embedding_loss(a, b, t, 0.1); }};
  }
  PNEUMA_FAIL("pneuma-losses: unknown loss '", loss, "'");
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Loss forward+backward benchmark (CPU reference path, float32); one JSON line per case"};
  std::vector<std::string> losses = kLosses;
  std::vector<int64_t> sizes = {64, 512, 2048};
  int64_t dim = 256;
  int threads = 2, warmup = 2, steps = 5;
  app.add_option("--loss", losses, "losses to run")->check(CLI::IsMember(kLosses));
  app.add_option("--n", sizes, "rows (batch sizes) to run")->check(CLI::PositiveNumber);
  app.add_option("--dim", dim, "embedding dim / classes / features per row")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU threads (OpenMP/OpenBLAS)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--steps", steps, "timed steps")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    cpu::set_num_threads(threads);
    for (const std::string& loss : losses)
      for (int64_t n : sizes) {
        const Case c = make_case(loss, n, dim);
        std::vector<double> seconds;
        double value = 0;
        for (int step = 0; step < warmup + steps; ++step) {
          for (const Tensor& t : c.leaves) t.set_grad(Tensor());
          const auto start = std::chrono::steady_clock::now();
          const Tensor y = c.forward();
          y.backward();
          const auto end = std::chrono::steady_clock::now();
          value = y.item();
          if (step >= warmup) seconds.push_back(std::chrono::duration<double>(end - start).count());
        }
        PNEUMA_CHECK(std::isfinite(value), "pneuma-losses: ", loss, " at N ", n, " is not finite: ", value);
        const nlohmann::json line = {{"framework", "pneuma"}, {"loss", loss},       {"n", n},
                                     {"dim", dim},            {"threads", threads}, {"seconds", seconds},
                                     {"median_seconds", median_of(seconds)},      {"loss_value", value}};
        std::cout << line.dump() << std::endl;
      }
  } catch (const std::exception& e) {
    std::cerr << "pneuma-losses: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
