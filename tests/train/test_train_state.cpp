#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include "engine/core/generator.h"
#include "engine/io/safetensors.h"
#include "engine/train/checkpointing.h"
#include "engine/train/optimizer_factory.h"
#include "models/registry.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using testing::TempDir;

namespace {

// A deterministic gradient that depends on the parameter's current value and the step,
// so a wrong momentum, moment or step count changes the trajectory.
void set_gradients(const std::vector<Tensor>& params, int64_t step) {
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<double> w = params[i].to_vector(), g(w.size());
    for (size_t j = 0; j < w.size(); ++j)
      g[j] = std::sin(3.0 * w[j] + 0.7 * static_cast<double>(step) + static_cast<double>(i + j)) + 0.1;
    params[i].set_grad(Tensor::from_vector(g, params[i].shape()));
  }
}

std::vector<Tensor> make_params() {
  std::vector<Tensor> params{Tensor::from_vector({0.5, -0.25, 1.0, 2.0, -1.5, 0.0}, {2, 3}),
                             Tensor::from_vector({0.3, -0.7}, {2}), Tensor::from_vector({1.25}, {1})};
  for (Tensor& p : params) p.set_requires_grad(true);
  return params;
}

std::vector<Tensor> copy_params(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params) out.push_back(p.detach().clone().set_requires_grad(true));
  return out;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(),
                     static_cast<size_t>(a.numel()) * dtype_size(a.dtype())) == 0;
}

}  // namespace

TEST_CASE("optimizer state round trip: 3 steps + save/load + 3 steps equals 6 steps bitwise") {
  for (const std::string name : {"sgd", "adam", "adamw"}) {
    INFO(name);
    // The third parameter gets no gradient in the first steps: its state appears late.
    auto step_all = [](optim::Optimizer& opt, const std::vector<Tensor>& params, int64_t step) {
      set_gradients(params, step);
      if (step < 2) params[2].set_grad(Tensor());
      opt.step();
    };
    const std::vector<Tensor> reference = make_params();
    auto uninterrupted = train::make_optimizer(name, reference, 0.05, 0.01);
    for (int64_t s = 0; s < 6; ++s) step_all(*uninterrupted, reference, s);

    const std::vector<Tensor> first = make_params();
    auto before = train::make_optimizer(name, first, 0.05, 0.01);
    for (int64_t s = 0; s < 3; ++s) step_all(*before, first, s);
    // Through a safetensors file's bytes, as a checkpoint stores it.
    const auto bytes = io::serialize_safetensors(before->state_tensors());
    const nn::NamedTensors saved = io::parse_safetensors(bytes).tensors;
    CHECK(saved.size() == (name == "sgd" ? 3u : 7u));

    const std::vector<Tensor> resumed = copy_params(first);
    auto after = train::make_optimizer(name, resumed, 0.05, 0.01);
    after->load_state_tensors(saved);
    for (int64_t s = 3; s < 6; ++s) step_all(*after, resumed, s);
    for (size_t i = 0; i < reference.size(); ++i) CHECK(bitwise_equal(resumed[i], reference[i]));

    // Without the state the trajectory differs (the test can fail).
    const std::vector<Tensor> fresh = copy_params(first);
    auto forgetful = train::make_optimizer(name, fresh, 0.05, 0.01);
    for (int64_t s = 3; s < 6; ++s) step_all(*forgetful, fresh, s);
    CHECK_FALSE(bitwise_equal(fresh[0], reference[0]));
  }
}

TEST_CASE("optimizer state: unknown names - bad indices and shapes are errors") {
  const std::vector<Tensor> params = make_params();
  auto sgd = train::make_optimizer("sgd", params, 0.1, 0);
  CHECK_THROWS_WITH_AS(sgd->load_state_tensors({{"momentum_buffer.9", Tensor::zeros({1})}}),
                       doctest::Contains("no parameter index below 3"), Error);
  CHECK_THROWS_WITH_AS(sgd->load_state_tensors({{"momentum_buffer.1", Tensor::zeros({3})}}),
                       doctest::Contains("but its parameter is"), Error);
  CHECK_THROWS_WITH_AS(sgd->load_state_tensors({{"exp_avg.0", Tensor::zeros({2, 3})}}),
                       doctest::Contains("unknown state tensor 'exp_avg.0'"), Error);
  auto adam = train::make_optimizer("adam", params, 0.1, 0);
  CHECK_THROWS_WITH_AS(adam->load_state_tensors({{"exp_avg.0", Tensor::zeros({2, 3})}}), doctest::Contains("'step'"),
                       Error);
  CHECK_THROWS_WITH_AS(train::make_optimizer("rmsprop", params, 0.1, 0), doctest::Contains("unknown optimizer"), Error);
}

TEST_CASE("optimizer factory: frozen parameters are left out - SGD momentum 0.9 by default") {
  std::vector<Tensor> params = make_params();
  params[1].set_requires_grad(false);
  auto sgd = train::make_optimizer("sgd", params, 0.1, 0);
  CHECK(sgd->parameters().size() == 2);
  // Momentum 0.9: the second step moves by lr * (0.9 g + g) for a constant gradient g = 1.
  Tensor p = Tensor::zeros({1}).set_requires_grad(true);
  auto opt = train::make_optimizer("sgd", {p}, 0.1, 0);
  for (int i = 0; i < 2; ++i) {
    p.set_grad(Tensor::ones({1}));
    opt->step();
  }
  CHECK(p.item() == doctest::Approx(-0.1 - 0.19));
}

TEST_CASE("generator state: get and set replay the same seeds") {
  manual_seed(42);
  next_seed();
  const GeneratorState state = generator_state();
  const uint64_t a = next_seed(), b = next_seed();
  manual_seed(7);
  set_generator_state(state);
  CHECK(next_seed() == a);
  CHECK(next_seed() == b);
}

TEST_CASE("train state: save and load restore model - optimizer - scheduler - early stopping and generator") {
  TempDir dir("train-state");
  manual_seed(3);
  auto model = models::create_classifier("simplecnn", 1);
  auto opt = train::make_optimizer("adam", model->parameters(), 0.01, 0);
  train::SchedulerOptions so;
  so.kind = "step";
  so.step_size = 1;
  so.gamma = 0.5;
  train::LrScheduler sched(*opt, so, 5);
  train::EarlyStopping early(3);
  const std::vector<Tensor> params = model->parameters();
  set_gradients(params, 0);
  opt->step();
  sched.step();
  early.update(0.75);
  early.update(0.5);
  next_seed();
  const GeneratorState generator = generator_state();
  train::TrainState state;
  state.epoch = 2;
  state.extra = {{"note", "hello"}};
  const io::Metadata meta = train::checkpoint_metadata("simplecnn", 1, 32, data::Normalization::imagenet(), 0);
  train::save_train_state(dir.str(), *model, *opt, &sched, &early, state, meta);

  const io::SafetensorsHeader last = io::read_safetensors_header(dir / train::kLastCheckpoint);
  CHECK(last.metadata.at("model") == "simplecnn");
  CHECK(last.metadata.at("epoch") == "2");
  CHECK(last.metadata.at("mean") == "0.485,0.456,0.406");
  CHECK(last.metadata.at("img_size") == "32");

  manual_seed(99);
  auto model2 = models::create_classifier("simplecnn", 1);
  auto opt2 = train::make_optimizer("adam", model2->parameters(), 0.01, 0);
  train::LrScheduler sched2(*opt2, so, 5);
  train::EarlyStopping early2(3);
  const train::TrainState loaded = train::load_train_state(dir.str(), *model2, *opt2, &sched2, &early2);
  CHECK(loaded.epoch == 2);
  CHECK(loaded.extra.at("note") == "hello");
  CHECK(opt2->lr() == doctest::Approx(0.005));
  CHECK(sched2.epochs_stepped() == 1);
  CHECK(early2.best() == 0.75);
  CHECK(early2.best_epoch() == 0);
  CHECK(early2.epochs_without_improvement() == 1);
  CHECK(generator_state().seed == generator.seed);
  CHECK(generator_state().counter == generator.counter);
  const auto a = model->state_dict(), b = model2->state_dict();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(bitwise_equal(a[i].second, b[i].second));
  const auto sa = opt->state_tensors(), sb = opt2->state_tensors();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) CHECK(bitwise_equal(sa[i].second, sb[i].second));

  // Another model, or a scheduler this run does not have: errors naming the file.
  auto other = models::create_classifier("simplecnn", 3);
  auto other_opt = train::make_optimizer("adam", other->parameters(), 0.01, 0);
  CHECK_THROWS_WITH_AS(train::load_train_state(dir.str(), *other, *other_opt, nullptr, &early2),
                       doctest::Contains("train_state.safetensors"), Error);
  CHECK_THROWS_WITH_AS(train::load_train_state(dir.str(), *model2, *opt2, nullptr, &early2),
                       doctest::Contains("learning-rate scheduler"), Error);
  TempDir empty("train-state-empty");
  CHECK_THROWS_WITH_AS(train::load_train_state(empty.str(), *model2, *opt2, &sched2, &early2),
                       doctest::Contains("has no train_state.safetensors"), Error);
}

TEST_CASE("format_number reads back exactly") {
  CHECK(train::format_number(0.1) == "0.1");
  CHECK(train::format_number(0.30000000000000004) == "0.30000000000000004");
  CHECK(std::stod(train::format_number(1.0 / 3.0)) == 1.0 / 3.0);
  CHECK(train::format_numbers({0.5, 2}) == "0.5,2");
}
