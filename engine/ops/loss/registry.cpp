#include "engine/ops/loss/registry.h"

#include <cstdlib>

#include "engine/ops/loss/loss.h"

namespace pneuma {

namespace {

double number(const LossSpec& spec, const LossOptions& o, const std::string& key) {
  const std::string& text = o.at(key);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  PNEUMA_CHECK(!text.empty() && end == text.c_str() + text.size(), spec.name, ": option ", key,
               " must be a number, got '", text, "'");
  return v;
}

int64_t integer(const LossSpec& spec, const LossOptions& o, const std::string& key) {
  const double v = number(spec, o, key);
  PNEUMA_CHECK(v == static_cast<double>(static_cast<int64_t>(v)), spec.name, ": option ", key,
               " must be an integer, got '", o.at(key), "'");
  return static_cast<int64_t>(v);
}

bool flag(const LossSpec& spec, const LossOptions& o, const std::string& key) {
  const std::string& text = o.at(key);
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  PNEUMA_FAIL(spec.name, ": option ", key, " must be true or false, got '", text, "'");
}

Reduction reduction(const LossSpec& spec, const LossOptions& o) {
  return reduction_from_string(o.at("reduction"), spec.name.c_str());
}

Tensor arg(const std::vector<Tensor>& in, size_t i) { return i < in.size() ? in[i] : Tensor(); }

std::vector<LossSpec> make_registry() {
  std::vector<LossSpec> r;
  auto add = [&](std::string name, std::string summary, std::vector<std::string> inputs, LossOptions defaults,
                 std::function<Tensor(const LossSpec&, const std::vector<Tensor>&, const LossOptions&)> fn) {
    LossSpec spec{std::move(name), std::move(summary), std::move(inputs), std::move(defaults), {}};
    const std::string key = spec.name;
    spec.fn = [fn, key](const std::vector<Tensor>& in, const LossOptions& o) { return fn(find_loss(key), in, o); };
    r.push_back(std::move(spec));
  };
  add("sigmoid_focal", "torchvision.ops.sigmoid_focal_loss on logits", {"input", "target"},
      {{"alpha", "0.25"}, {"gamma", "2"}, {"reduction", "none"}},
      [](const LossSpec& s, const auto& in, const auto& o) {
        return sigmoid_focal_loss(in[0], in[1], number(s, o, "alpha"), number(s, o, "gamma"), reduction(s, o));
      });
  add("softmax_focal", "multi-class focal loss with per-class alpha", {"input", "target", "alpha?"},
      {{"gamma", "2"}, {"reduction", "mean"}}, [](const LossSpec& s, const auto& in, const auto& o) {
        return softmax_focal_loss(in[0], in[1], arg(in, 2), number(s, o, "gamma"), reduction(s, o));
      });
  add("bce_with_logits", "torch BCEWithLogitsLoss", {"input", "target", "weight?", "pos_weight?"},
      {{"reduction", "mean"}}, [](const LossSpec& s, const auto& in, const auto& o) {
        return binary_cross_entropy_with_logits(in[0], in[1], arg(in, 2), reduction(s, o), arg(in, 3));
      });
  add("cross_entropy", "torch CrossEntropyLoss", {"input", "target", "weight?"},
      {{"ignore_index", "-100"}, {"reduction", "mean"}, {"label_smoothing", "0"}},
      [](const LossSpec& s, const auto& in, const auto& o) {
        return cross_entropy(in[0], in[1], arg(in, 2), integer(s, o, "ignore_index"), reduction(s, o),
                             number(s, o, "label_smoothing"));
      });
  add("nt_xent", "SimCLR NT-Xent over [2N, d] (views i and i + N)", {"z"}, {{"temperature", "0.1"}},
      [](const LossSpec& s, const auto& in, const auto& o) { return nt_xent_loss(in[0], number(s, o, "temperature")); });
  add("multi_pos_con", "StableRep multi-positive contrastive loss", {"features", "labels"},
      {{"temperature", "0.1"}}, [](const LossSpec& s, const auto& in, const auto& o) {
        return multi_pos_con_loss(in[0], in[1], number(s, o, "temperature"));
      });
  add("supcon", "SupCon (Khosla et al.), contrast mode all", {"features", "labels?"},
      {{"temperature", "0.07"}, {"base_temperature", "0.07"}}, [](const LossSpec& s, const auto& in, const auto& o) {
        return supcon_loss(in[0], arg(in, 1), number(s, o, "temperature"), number(s, o, "base_temperature"));
      });
  add("cosine_embedding", "torch CosineEmbeddingLoss", {"input1", "input2", "target"},
      {{"margin", "0"}, {"reduction", "mean"}}, [](const LossSpec& s, const auto& in, const auto& o) {
        return cosine_embedding_loss(in[0], in[1], in[2], number(s, o, "margin"), reduction(s, o));
      });
  add("embedding_similarity", "three-branch class-mean similarity loss (Eq. 12)",
      {"z_common", "labels_common", "z_adult", "labels_adult", "z_pediatric", "labels_pediatric"},
      {{"num_classes", "2"}}, [](const LossSpec& s, const auto& in, const auto& o) {
        return embedding_similarity_loss(in[0], in[1], in[2], in[3], in[4], in[5], integer(s, o, "num_classes"));
      });
  add("embedding_dissimilarity", "three-branch class-mean dissimilarity loss (Eq. 13)", {"z_common", "labels_common"},
      {{"num_classes", "2"}, {"hinge", "true"}, {"reduction", "mean"}},
      [](const LossSpec& s, const auto& in, const auto& o) {
        return embedding_dissimilarity_loss(in[0], in[1], integer(s, o, "num_classes"), flag(s, o, "hinge"),
                                            reduction(s, o));
      });
  add("dice", "soft Dice on logits", {"input", "target"}, {{"smooth", "1"}, {"reduction", "mean"}},
      [](const LossSpec& s, const auto& in, const auto& o) {
        return dice_loss(in[0], in[1], number(s, o, "smooth"), reduction(s, o));
      });
  add("dice_bce", "soft Dice + BCE with logits", {"input", "target"},
      {{"smooth", "1"}, {"dice_weight", "1"}, {"bce_weight", "1"}}, [](const LossSpec& s, const auto& in, const auto& o) {
        return dice_bce_loss(in[0], in[1], number(s, o, "smooth"), number(s, o, "dice_weight"),
                             number(s, o, "bce_weight"));
      });
  return r;
}

}  // namespace

const std::vector<LossSpec>& loss_registry() {
  static const std::vector<LossSpec> registry = make_registry();
  return registry;
}

const LossSpec& find_loss(std::string_view name) {
  std::string known;
  for (const LossSpec& spec : loss_registry()) {
    if (spec.name == name) return spec;
    known += (known.empty() ? "" : ", ") + spec.name;
  }
  PNEUMA_FAIL("loss: unknown loss '", name, "' (known: ", known, ")");
}

Tensor compute_loss(std::string_view name, const std::vector<Tensor>& inputs, const LossOptions& options) {
  const LossSpec& spec = find_loss(name);
  size_t required = 0;
  for (const std::string& in : spec.inputs)
    if (in.back() != '?') ++required;
  PNEUMA_CHECK(inputs.size() >= required && inputs.size() <= spec.inputs.size(), spec.name, ": expected ",
               required == spec.inputs.size() ? "" : detail::concat(required, " to "), spec.inputs.size(),
               " tensors, got ", inputs.size());
  for (size_t i = 0; i < required; ++i)
    PNEUMA_CHECK(inputs[i].defined(), spec.name, ": tensor argument ", spec.inputs[i], " is undefined");
  LossOptions merged = spec.defaults;
  for (const auto& [key, value] : options) {
    auto it = merged.find(key);
    if (it == merged.end()) {
      std::string known;
      for (const auto& [k, v] : spec.defaults) known += (known.empty() ? "" : ", ") + k;
      PNEUMA_FAIL(spec.name, ": unknown option '", key, "' (options: ", known, ")");
    }
    it->second = value;
  }
  return spec.fn(inputs, merged);
}

}  // namespace pneuma
