#include "engine/train/three_branch_step.h"

#include "engine/core/error.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/index/index.h"
#include "engine/ops/loss/loss.h"
#include "engine/train/epoch_loop.h"

namespace pneuma::train {

namespace {

constexpr const char* kContrastiveSuffix = "+contrastive";
constexpr const char* kEmbeddingSuffix = "+embedding";

// Mean sigmoid focal loss of one logit per sample against the class labels (0/1).
Tensor focal_term(const Tensor& logits, const Tensor& labels, const ComparisonLossOptions& o) {
  const int64_t n = labels.numel();
  const Tensor targets = labels.to(logits.dtype()).reshape({n, 1});
  return sigmoid_focal_loss(logits.reshape({n, 1}), targets, o.focal_alpha, o.focal_gamma, Reduction::Mean);
}

// Positions of the batch whose domain is `domain`.
std::vector<int64_t> rows_of_domain(const std::vector<int64_t>& domains, int64_t domain) {
  std::vector<int64_t> rows;
  for (size_t i = 0; i < domains.size(); ++i)
    if (domains[i] == domain) rows.push_back(static_cast<int64_t>(i));
  return rows;
}

// Accumulates weight * term into total (total may still be undefined).
void add_weighted(Tensor& total, const Tensor& term, double weight) {
  const Tensor weighted = weight == 1.0 ? term : mul(term, weight);
  total = total.defined() ? add(total, weighted) : weighted;
}

}  // namespace

std::string ComparisonConfig::name() const {
  std::string base;
  if (three_branch)
    base = "three-branch";
  else if (train_pediatric && train_adult)
    base = "joint";
  else if (train_pediatric)
    base = "pediatric-only";
  else
    base = "adult-only";
  if (contrastive) base += kContrastiveSuffix;
  if (embedding) base += kEmbeddingSuffix;
  return base;
}

ComparisonConfig ComparisonConfig::parse(const std::string& text) {
  std::string rest = text;
  ComparisonConfig c;
  c.contrastive = c.embedding = false;
  auto take_suffix = [&rest](const std::string& suffix) {
    const size_t at = rest.find(suffix);
    if (at == std::string::npos) return false;
    rest.erase(at, suffix.size());
    return true;
  };
  c.contrastive = take_suffix(kContrastiveSuffix);
  c.embedding = take_suffix(kEmbeddingSuffix);
  if (rest == "three-branch") {
    c.three_branch = true;
  } else if (rest == "joint") {
    c.three_branch = false;
  } else if (rest == "pediatric-only") {
    c.three_branch = false;
    c.train_adult = false;
  } else if (rest == "adult-only") {
    c.three_branch = false;
    c.train_pediatric = false;
  } else {
    PNEUMA_FAIL("unknown configuration '", text,
                "' (pediatric-only, adult-only, joint or three-branch, optionally followed by +contrastive and, "
                "for three-branch, +embedding)");
  }
  PNEUMA_CHECK(c.three_branch || !c.embedding, "configuration '", text,
               "': the embedding losses compare the three paths; they need three-branch");
  return c;
}

LossTerms comparison_loss(const models::ThreeBranch& model, const ComparisonConfig& config,
                          const ComparisonLossOptions& options, const Tensor& images, const Tensor& labels,
                          const Tensor& domains, DomainIds ids) {
  PNEUMA_CHECK(images.dim() == 4 && labels.dim() == 1 && domains.dim() == 1 && images.size(0) == labels.size(0) &&
                   labels.size(0) == domains.size(0),
               "comparison_loss: expected images [B, C, H, W] with labels [B] and domains [B], got ", images.str(),
               ", ", labels.str(), ", ", domains.str());
  PNEUMA_CHECK(!config.embedding || config.three_branch, "comparison_loss: ", config.name(),
               ": the embedding losses need three-branch");
  const std::vector<int64_t> domain_of = domains.to_indices();
  const std::vector<int64_t> pediatric_rows = rows_of_domain(domain_of, ids.pediatric);
  const std::vector<int64_t> adult_rows = rows_of_domain(domain_of, ids.adult);
  PNEUMA_CHECK(pediatric_rows.size() + adult_rows.size() == domain_of.size(), "comparison_loss: a domain id in ",
               domains.str(), " is neither pediatric (", ids.pediatric, ") nor adult (", ids.adult, ")");

  LossTerms terms;
  const models::BranchOutput common = model.forward(models::Branch::Common, images);
  const Tensor common_focal = focal_term(common.logits, labels, options);
  if (!config.three_branch) {
    PNEUMA_CHECK(config.train_pediatric || pediatric_rows.empty(), "comparison_loss: ", config.name(), ": the batch has ",
                 pediatric_rows.size(), " pediatric image(s)");
    PNEUMA_CHECK(config.train_adult || adult_rows.empty(), "comparison_loss: ", config.name(), ": the batch has ",
                 adult_rows.size(), " adult image(s)");
    terms.focal = common_focal.item();
    add_weighted(terms.total, common_focal, options.w_focal);
    if (config.contrastive) {
      const Tensor contrastive = multi_pos_con_loss(common.embedding, labels, options.temperature);
      terms.contrastive = contrastive.item();
      add_weighted(terms.total, contrastive, options.w_contrastive);
    }
    return terms;
  }

  PNEUMA_CHECK(!pediatric_rows.empty() && !adult_rows.empty(), "comparison_loss: a three-branch batch needs both "
               "domains; this one has ", pediatric_rows.size(), " pediatric and ", adult_rows.size(), " adult image(s)");
  const int64_t n_pediatric = static_cast<int64_t>(pediatric_rows.size());
  const int64_t n_adult = static_cast<int64_t>(adult_rows.size());
  const Tensor pediatric_index = Tensor::from_indices(pediatric_rows, {n_pediatric}).to(images.device());
  const Tensor adult_index = Tensor::from_indices(adult_rows, {n_adult}).to(images.device());
  const Tensor pediatric_labels = index_select(labels, 0, pediatric_index);
  const Tensor adult_labels = index_select(labels, 0, adult_index);
  const models::BranchOutput pediatric =
      model.forward(models::Branch::Pediatric, index_select(images, 0, pediatric_index));
  const models::BranchOutput adult = model.forward(models::Branch::Adult, index_select(images, 0, adult_index));

  // Eq. 11
  const Tensor focal = add(add(common_focal, focal_term(pediatric.logits, pediatric_labels, options)),
                           focal_term(adult.logits, adult_labels, options));
  terms.focal = focal.item();
  add_weighted(terms.total, focal, options.w_focal);
  // Eq. 10
  if (config.contrastive) {
    const Tensor contrastive =
        add(add(multi_pos_con_loss(common.embedding, labels, options.temperature),
                multi_pos_con_loss(pediatric.embedding, pediatric_labels, options.temperature)),
            multi_pos_con_loss(adult.embedding, adult_labels, options.temperature));
    terms.contrastive = contrastive.item();
    add_weighted(terms.total, contrastive, options.w_contrastive);
  }
  // Eq. 12-13
  if (config.embedding) {
    const Tensor similarity = embedding_similarity_loss(common.embedding, labels, adult.embedding, adult_labels,
                                                        pediatric.embedding, pediatric_labels, options.num_classes);
    const Tensor dissimilarity = embedding_dissimilarity_loss(common.embedding, labels, options.num_classes,
                                                              /*hinge=*/true, Reduction::Sum);
    terms.similarity = similarity.item();
    terms.dissimilarity = dissimilarity.item();
    add_weighted(terms.total, similarity, options.w_similarity);
    add_weighted(terms.total, dissimilarity, options.w_dissimilarity);
  }
  return terms;
}

std::vector<Tensor> comparison_parameters(const models::ThreeBranch& model, const ComparisonConfig& config) {
  return config.three_branch ? model.parameters() : model.common->parameters();
}

LossTerms comparison_step(const models::ThreeBranch& model, optim::Optimizer& optimizer,
                          const ComparisonConfig& config, const ComparisonLossOptions& options, const Tensor& images,
                          const Tensor& labels, const Tensor& domains, DomainIds ids, int64_t step,
                          const std::string& keep_note) {
  LossTerms terms = comparison_loss(model, config, options, images, labels, domains, ids);
  optimization_step(terms.total, optimizer, /*clip_grad=*/0, step, keep_note);
  return terms;
}

}  // namespace pneuma::train
