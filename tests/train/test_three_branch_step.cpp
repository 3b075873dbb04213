#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/generator.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/index/index.h"
#include "engine/ops/loss/loss.h"
#include "engine/train/optimizer_factory.h"
#include "engine/train/three_branch_step.h"
#include "models/three_branch.h"

using namespace pneuma;

namespace {

// A tiny three-branch model (simple CNN backbones) and a batch of 8 with two images per
// (class, domain) group, domains interleaved as a shuffled balanced batch would be.
std::shared_ptr<models::ThreeBranch> tiny_model(uint64_t seed = 7) {
  manual_seed(seed);
  models::ThreeBranchOptions o;
  o.backbone = "simplecnn";
  o.num_classes = 1;
  o.projection = {32, 16};
  return std::make_shared<models::ThreeBranch>(o);
}

struct TinyBatch {
  Tensor images = Tensor::randn({8, 3, 16, 16}, 11);
  Tensor labels = Tensor::from_indices({0, 1, 1, 0, 1, 0, 0, 1}, {8});
  Tensor domains = Tensor::from_indices({0, 0, 1, 1, 0, 1, 0, 1}, {8});  // 0 pediatric, 1 adult
};

Tensor rows(const Tensor& x, const std::vector<int64_t>& index) {
  return index_select(x, 0, Tensor::from_indices(index, {static_cast<int64_t>(index.size())}));
}

Tensor focal(const Tensor& logits, const Tensor& labels) {
  const int64_t n = labels.numel();
  return sigmoid_focal_loss(logits, labels.to(DType::Float32).reshape({n, 1}), 0.25, 2.0, Reduction::Mean);
}

std::vector<std::vector<double>> gradients(const std::vector<Tensor>& params) {
  std::vector<std::vector<double>> out;
  for (const Tensor& p : params) out.push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<double>{});
  return out;
}

bool any_gradient(const std::vector<Tensor>& params) {
  for (const Tensor& p : params)
    if (p.grad().defined())
      for (double g : p.grad().to_vector())
        if (g != 0) return true;
  return false;
}

void zero_gradients(const models::ThreeBranch& model) {
  for (const Tensor& p : model.parameters()) p.set_grad(Tensor());
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("three-branch loss: Eq. 10-13 composed from the paths' outputs - weighted as asked") {
    const auto model_ptr = tiny_model();
    const models::ThreeBranch& model = *model_ptr;
    const TinyBatch b;
    const std::vector<int64_t> pediatric_rows{0, 1, 4, 6}, adult_rows{2, 3, 5, 7};
    train::ComparisonConfig config = train::ComparisonConfig::parse("three-branch+contrastive+embedding");
    train::ComparisonLossOptions o;
    o.w_focal = 0.5;
    o.w_contrastive = 2;
    o.w_similarity = 3;
    o.w_dissimilarity = 0.25;
    o.temperature = 0.2;
    const train::LossTerms terms = train::comparison_loss(model, config, o, b.images, b.labels, b.domains);

    const models::BranchOutput c = model.forward(models::Branch::Common, b.images);
    const models::BranchOutput p = model.forward(models::Branch::Pediatric, rows(b.images, pediatric_rows));
    const models::BranchOutput a = model.forward(models::Branch::Adult, rows(b.images, adult_rows));
    const Tensor yp = rows(b.labels, pediatric_rows), ya = rows(b.labels, adult_rows);
    const double expected_focal =
        focal(c.logits, b.labels).item() + focal(p.logits, yp).item() + focal(a.logits, ya).item();
    const double expected_contrastive = multi_pos_con_loss(c.embedding, b.labels, 0.2).item() +
                                        multi_pos_con_loss(p.embedding, yp, 0.2).item() +
                                        multi_pos_con_loss(a.embedding, ya, 0.2).item();
    const double expected_similarity =
        embedding_similarity_loss(c.embedding, b.labels, a.embedding, ya, p.embedding, yp, 2).item();
    const double expected_dissimilarity =
        embedding_dissimilarity_loss(c.embedding, b.labels, 2, true, Reduction::Sum).item();
    CHECK(terms.focal == doctest::Approx(expected_focal).epsilon(1e-6));
    CHECK(terms.contrastive == doctest::Approx(expected_contrastive).epsilon(1e-6));
    CHECK(terms.similarity == doctest::Approx(expected_similarity).epsilon(1e-6));
    CHECK(terms.dissimilarity == doctest::Approx(expected_dissimilarity).epsilon(1e-6));
    CHECK(terms.similarity > 0);  // untrained paths disagree
    CHECK(terms.total.item() == doctest::Approx(0.5 * expected_focal + 2 * expected_contrastive +
                                                3 * expected_similarity + 0.25 * expected_dissimilarity)
                                    .epsilon(1e-6));

    // Switched-off terms are neither computed nor added.
    config.contrastive = config.embedding = false;
    const train::LossTerms plain = train::comparison_loss(model, config, o, b.images, b.labels, b.domains);
    CHECK(plain.contrastive == 0);
    CHECK(plain.similarity == 0);
    CHECK(plain.dissimilarity == 0);
    CHECK(plain.total.item() == doctest::Approx(0.5 * expected_focal).epsilon(1e-6));
  }

  TEST_CASE("three-branch loss: each domain reaches its own path - the embedding loss couples the paths") {
    const auto model_ptr = tiny_model();
    const models::ThreeBranch& model = *model_ptr;
    const TinyBatch b;
    // The same batch with other pediatric images (rows 0, 1, 4, 6).
    Tensor noise = Tensor::randn({8, 1, 1, 1}, 5);
    const Tensor pediatric_mask = Tensor::from_vector({1, 1, 0, 0, 1, 0, 1, 0}, {8, 1, 1, 1});
    const Tensor other_pediatric = add(b.images, mul(mul(noise, pediatric_mask), 3.0));
    const train::ComparisonLossOptions o;

    auto grads_after = [&](const train::ComparisonConfig& config, const Tensor& images) {
      zero_gradients(model);
      train::comparison_loss(model, config, o, images, b.labels, b.domains).total.backward();
      return std::vector<std::vector<std::vector<double>>>{gradients(model.pediatric->parameters()),
                                                            gradients(model.adult->parameters()),
                                                            gradients(model.common->parameters())};
    };
    const auto config = train::ComparisonConfig::parse("three-branch+contrastive");
    const auto before = grads_after(config, b.images);
    const auto after = grads_after(config, other_pediatric);
    CHECK(before[1] == after[1]);  // the adult path never sees pediatric images
    CHECK(before[0] != after[0]);
    CHECK(before[2] != after[2]);  // the common path sees both

    const auto coupled = train::ComparisonConfig::parse("three-branch+embedding");
    CHECK(grads_after(coupled, b.images)[1] != grads_after(coupled, other_pediatric)[1]);
  }

  TEST_CASE("single branch: only the common path trains - on its configured domains") {
    const auto model_ptr = tiny_model();
    const models::ThreeBranch& model = *model_ptr;
    const TinyBatch b;
    const auto joint = train::ComparisonConfig::parse("joint+contrastive");
    CHECK(train::comparison_parameters(model, joint).size() == model.common->parameters().size());
    CHECK(train::comparison_parameters(model, train::ComparisonConfig::parse("three-branch")).size() ==
          model.parameters().size());

    zero_gradients(model);
    const train::LossTerms terms = train::comparison_loss(model, joint, {}, b.images, b.labels, b.domains);
    const models::BranchOutput c = model.forward(models::Branch::Common, b.images);
    CHECK(terms.focal == doctest::Approx(focal(c.logits, b.labels).item()).epsilon(1e-6));
    CHECK(terms.contrastive == doctest::Approx(multi_pos_con_loss(c.embedding, b.labels, 0.1).item()).epsilon(1e-6));
    terms.total.backward();
    CHECK(any_gradient(model.common->parameters()));
    CHECK_FALSE(any_gradient(model.pediatric->parameters()));
    CHECK_FALSE(any_gradient(model.adult->parameters()));

    // Pediatric-only training with an adult image in the batch is a bug upstream.
    const auto pediatric_only = train::ComparisonConfig::parse("pediatric-only");
    CHECK_THROWS_WITH(train::comparison_loss(model, pediatric_only, {}, b.images, b.labels, b.domains),
                      doctest::Contains("adult image"));
    const Tensor pediatric_images = rows(b.images, {0, 1, 4, 6});
    const Tensor pediatric_labels = rows(b.labels, {0, 1, 4, 6});
    const Tensor pediatric_domains = Tensor::from_indices({0, 0, 0, 0}, {4});
    CHECK_NOTHROW(
        train::comparison_loss(model, pediatric_only, {}, pediatric_images, pediatric_labels, pediatric_domains));
    // ... and a three-branch batch needs both domains.
    CHECK_THROWS_WITH(train::comparison_loss(model, train::ComparisonConfig::parse("three-branch"), {},
                                             pediatric_images, pediatric_labels, pediatric_domains),
                      doctest::Contains("needs both domains"));
  }

  TEST_CASE("comparison step: the loss of a fixed batch falls under AdamW") {
    for (const char* name : {"three-branch+contrastive+embedding", "joint+contrastive"}) {
      INFO(std::string(name));
      const auto model_ptr = tiny_model(3);
      const models::ThreeBranch& model = *model_ptr;
      const TinyBatch b;
      const auto config = train::ComparisonConfig::parse(name);
      auto optimizer = train::make_optimizer("adamw", train::comparison_parameters(model, config), 3e-3, 1e-4);
      std::vector<double> losses;
      for (int64_t step = 1; step <= 12; ++step)
        losses.push_back(train::comparison_step(model, *optimizer, config, {}, b.images, b.labels, b.domains, {},
                                                step)
                             .total.item());
      MESSAGE(std::string(name), ": loss ", losses.front(), " -> ", losses.back());
      CHECK(losses.back() < 0.8 * losses.front());
    }
  }

  TEST_CASE("comparison step: a NaN loss stops with the step number") {
    const auto model_ptr = tiny_model();
    const models::ThreeBranch& model = *model_ptr;
    const TinyBatch b;
    // A diverged classifier: NaN logits on the common path.
    for (const Tensor& p : model.common->classifier->parameters()) {
      float* values = p.data<float>();
      for (int64_t i = 0; i < p.numel(); ++i) values[i] = std::nanf("");
    }
    const auto config = train::ComparisonConfig::parse("three-branch");
    auto optimizer = train::make_optimizer("adamw", model.parameters(), 1e-4, 1e-4);
    const std::vector<double> weights_before = model.common->parameters().front().to_vector();
    CHECK_THROWS_WITH(train::comparison_step(model, *optimizer, config, {}, b.images, b.labels, b.domains, {}, 7,
                                             "the checkpoint of epoch 1"),
                      "loss is nan at step 7; kept the checkpoint of epoch 1");
    CHECK(model.common->parameters().front().to_vector() == weights_before);  // no update
  }

  TEST_CASE("comparison configurations: names round trip - bad names and single-branch embedding losses throw") {
    for (const char* name : {"pediatric-only", "adult-only", "joint", "joint+contrastive", "three-branch",
                             "three-branch+contrastive", "three-branch+embedding", "three-branch+contrastive+embedding"})
      CHECK(train::ComparisonConfig::parse(name).name() == name);
    const auto adult = train::ComparisonConfig::parse("adult-only+contrastive");
    CHECK_FALSE(adult.three_branch);
    CHECK_FALSE(adult.train_pediatric);
    CHECK(adult.train_adult);
    CHECK(adult.contrastive);
    CHECK_THROWS_WITH(train::ComparisonConfig::parse("joint+embedding"), doctest::Contains("need three-branch"));
    CHECK_THROWS_WITH(train::ComparisonConfig::parse("two-branch"), doctest::Contains("unknown configuration"));
  }
}
