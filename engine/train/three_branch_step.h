#pragma once
// The training step of seed 000's comparison (Zunaed et al.): the three-branch framework
// and its ablations, as a library so that the loss composition is testable without the
// pneuma-train-3branch executable.
//
// Every configuration trains a models::ThreeBranch and infers with its common path
// (ThreeBranch::forward), so every row of Tables I-III is the same architecture
// (backbone -> pooled features h -> classifier; h -> projection head -> embedding z) and
// every checkpoint loads as "threebranch-<backbone>" in pneuma-eval / pneuma-predict:
//   single branch (Tables I-II):  only the common path trains, on the domains chosen
//       (pediatric only, adult only, or both = joint training): focal loss on its logits
//       [+ multi-positive contrastive loss on its embeddings]. The other two paths stay
//       untouched (not optimized).
//   three-branch (Table III): the pediatric half of a balanced batch goes through the
//       pediatric path, the adult half through the adult path and the whole batch
//       through the common path;
//       L = w_focal * (FL_c + FL_p + FL_a)                                      Eq. 11
//         + w_contrastive * (H(p_c, q_c) + H(p_p, q_p) + H(p_a, q_a))          Eq. 10
//         + w_similarity * sum_j (1 - cos(w_c^j, w_a^j)) + (1 - cos(w_c^j, w_p^j))  Eq. 12
//         + w_dissimilarity * sum_{i != j} max(0, cos(w_c^i, w_c^j))           Eq. 13
//       with w^j the mean L2-normalized embedding of class j in a path's batch. (Eq. 12
//       as printed reads "2 - sim(c, a) + sim(c, p)"; the text says the three paths'
//       class embeddings are pulled together, so both similarities are subtracted.)
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/optim/optimizer.h"
#include "models/three_branch.h"

namespace pneuma::train {

// The domain ids of a batch's `domains` tensor.
struct DomainIds {
  int64_t pediatric = 0, adult = 1;
};

// One configuration of the comparison (a row of the paper's tables).
struct ComparisonConfig {
  bool three_branch = true;
  // Single branch: the domains the common path trains on (three-branch: both).
  bool train_pediatric = true, train_adult = true;
  bool contrastive = true;  // multi-positive contrastive loss on each trained path
  bool embedding = true;    // class-wise embedding similarity + dissimilarity (three-branch only)

  // "pediatric-only", "adult-only", "joint" or "three-branch", then "+contrastive" and/or
  // "+embedding" for the losses switched on.
  std::string name() const;
  // The inverse of name(); an unknown name or embedding losses without three branches
  // throw, naming the text.
  static ComparisonConfig parse(const std::string& name);
};

struct ComparisonLossOptions {
  double focal_alpha = 0.25, focal_gamma = 2.0;  // torchvision's sigmoid_focal_loss defaults
  // Multi-positive contrastive temperature: StableRep's default (the paper states none).
  double temperature = 0.1;
  double w_focal = 1, w_contrastive = 1, w_similarity = 1, w_dissimilarity = 1;
  // Classes of the class-wise embeddings and of the contrastive positives: the binary task
  // has one logit but two classes (normal, pneumonia).
  int64_t num_classes = 2;
};

// The terms of one step. The doubles are unweighted and summed over the paths that ran;
// a term that is switched off is 0.
struct LossTerms {
  Tensor total;  // the weighted sum (a scalar to backpropagate)
  double focal = 0, contrastive = 0, similarity = 0, dissimilarity = 0;
};

// The loss of one batch: images [B, C, H, W], labels int64 [B] (class indices), domains
// int64 [B] (DomainIds). A three-branch batch without a pediatric or an adult sample, or a
// single-branch batch holding a domain the configuration does not train on, throws.
LossTerms comparison_loss(const models::ThreeBranch& model, const ComparisonConfig& config,
                          const ComparisonLossOptions& options, const Tensor& images, const Tensor& labels,
                          const Tensor& domains, DomainIds ids = {});

// The parameters a configuration trains: the common path's alone for a single branch,
// all three paths' for the three-branch framework.
std::vector<Tensor> comparison_parameters(const models::ThreeBranch& model, const ComparisonConfig& config);

// One optimization step: loss, NaN/inf guard (require_finite_loss with `step` and
// `keep_note`), zero_grad, backward, optimizer step. Returns the loss of the batch
// before the update.
LossTerms comparison_step(const models::ThreeBranch& model, optim::Optimizer& optimizer,
                          const ComparisonConfig& config, const ComparisonLossOptions& options, const Tensor& images,
                          const Tensor& labels, const Tensor& domains, DomainIds ids, int64_t step,
                          const std::string& keep_note = "");

}  // namespace pneuma::train
