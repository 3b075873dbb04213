#include "engine/train/predict.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "engine/autograd/grad_mode.h"
#include "engine/core/error.h"
#include "engine/data/device_batch.h"
#include "models/registry.h"

namespace pneuma::train {

namespace {

// Probabilities in double from the logits: sigmoid for one output, softmax otherwise
// (double keeps large logits apart that float32 would round to the same 1.0, which would
// create ties the AUROC then has to split).
std::vector<double> probabilities_from_logits(const double* logits, int64_t k) {
  std::vector<double> p(static_cast<size_t>(k));
  if (k == 1) {
    const double x = logits[0];
    p[0] = x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
    return p;
  }
  const double top = *std::max_element(logits, logits + k);
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += p[static_cast<size_t>(j)] = std::exp(logits[j] - top);
  for (double& v : p) v /= sum;
  return p;
}

// "%.17g": enough digits for every double to read back bit-exactly.
std::string exact_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

bool parse_double(const std::string& text, double& value) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  if (b == e) return false;
  const auto [end, ec] = std::from_chars(text.data() + b, text.data() + e, value);
  return ec == std::errc() && end == text.data() + e;
}

}  // namespace

std::vector<double> Predictions::positive_scores() const {
  const int64_t k = num_outputs();
  PNEUMA_CHECK(k == 1 || k == 2, "positive_scores: binary scores need 1 or 2 outputs per sample, these have ", k);
  std::vector<double> scores;
  scores.reserve(probabilities.size());
  for (const auto& row : probabilities) scores.push_back(row.at(static_cast<size_t>(k - 1)));
  return scores;
}

Predictions predict(nn::Module& model, data::DataLoader& loader, int64_t epoch,
                    const std::function<void(int64_t done, int64_t total)>& on_batch) {
  // Every submodule's flag, not only the root's: a training run may hold frozen
  // BatchNorms in eval inside a model in training mode.
  std::vector<std::pair<nn::Module*, bool>> modes;
  for (const auto& [name, module] : model.named_modules()) modes.emplace_back(module, module->is_training());
  struct RestoreModes {
    std::vector<std::pair<nn::Module*, bool>>& modes;
    ~RestoreModes() {
      // Module::train is recursive, so set each module after its parent: the list is
      // depth-first with parents first.
      for (auto& [module, training] : modes) module->train(training);
    }
  } restore{modes};
  model.eval();
  NoGradGuard no_grad;

  const std::vector<Tensor> parameters = model.parameters();
  const Device device = parameters.empty() ? Device::cpu() : parameters.front().device();
  Predictions out;
  loader.start_epoch(epoch);
  while (auto batch = loader.next()) {
    // A pinned batch goes up asynchronously (data::to_device); labels stay on the host.
    const Tensor images = data::to_device(*batch, device).images();
    Tensor logits = models::forward_any(model, images);
    const int64_t n = batch->size();
    PNEUMA_CHECK(logits.dim() == 2 && logits.size(0) == n, "predict: the model returned ", logits.str(),
                 " for a batch of ", n, " images; expected [", n, ", classes] logits");
    if (!logits.device().is_cpu()) logits = logits.to(Device::cpu());
    const std::vector<double> values = logits.to_vector();
    const std::vector<int64_t> labels = batch->labels.to_indices();
    const int64_t k = logits.size(1);
    PNEUMA_CHECK(out.probabilities.empty() || out.num_outputs() == k, "predict: batch ", batch->index, " has ", k,
                 " outputs per sample, earlier batches ", out.num_outputs());
    for (int64_t i = 0; i < n; ++i) {
      out.probabilities.push_back(probabilities_from_logits(values.data() + i * k, k));
      out.labels.push_back(labels[static_cast<size_t>(i)]);
      out.indices.push_back(batch->indices[static_cast<size_t>(i)]);
    }
    if (on_batch) on_batch(batch->index + 1, loader.batches_per_epoch());
  }
  return out;
}

void write_predictions_csv(const Predictions& p, const data::Manifest& manifest, const std::string& path) {
  const int64_t k = p.num_outputs();
  PNEUMA_CHECK(p.indices.size() == p.labels.size() && p.probabilities.size() == p.labels.size(),
               "write_predictions_csv: ", p.labels.size(), " labels, ", p.indices.size(), " indices and ",
               p.probabilities.size(), " rows of probabilities");
  PNEUMA_CHECK(k >= 1, "write_predictions_csv '", path, "': no predictions");
  // The file is a manifest with score columns, so write_manifest's quoting, relative
  // paths and temporary-and-rename writing apply unchanged.
  data::Manifest out;
  if (k == 1) {
    out.extra_columns = {"score"};
  } else {
    for (int64_t j = 0; j < k; ++j) out.extra_columns.push_back("score_" + std::to_string(j));
  }
  for (size_t i = 0; i < p.labels.size(); ++i) {
    const int64_t index = p.indices[i];
    PNEUMA_CHECK(index >= 0 && index < manifest.size(), "write_predictions_csv: dataset index ", index,
                 " is outside the manifest '", manifest.source, "' of ", manifest.size(), " records");
    PNEUMA_CHECK(static_cast<int64_t>(p.probabilities[i].size()) == k, "write_predictions_csv: row ", i, " has ",
                 p.probabilities[i].size(), " scores, row 0 has ", k);
    data::Record record;
    record.path = manifest.records[static_cast<size_t>(index)].path;
    record.file = manifest.records[static_cast<size_t>(index)].file;
    record.label = p.labels[i];
    for (double v : p.probabilities[i]) record.extra.push_back(exact_number(v));
    out.records.push_back(std::move(record));
  }
  // Absolute: write_manifest takes the CSV's folder for the relative paths, and a bare
  // file name ("pred.csv") has an empty one.
  data::write_manifest(out, std::filesystem::absolute(path).string());
}

Predictions read_predictions_csv(const std::string& path, data::Manifest* manifest_out) {
  data::Manifest manifest = data::read_manifest(path);
  std::map<std::string, size_t> column;
  for (size_t c = 0; c < manifest.extra_columns.size(); ++c) column[manifest.extra_columns[c]] = c;
  std::vector<size_t> score_columns;
  if (column.count("score")) {
    score_columns.push_back(column.at("score"));
  } else {
    for (size_t j = 0; column.count("score_" + std::to_string(j)); ++j)
      score_columns.push_back(column.at("score_" + std::to_string(j)));
  }
  PNEUMA_CHECK(!score_columns.empty(), "predictions '", path,
               "': line 1: needs a 'score' column or columns score_0, score_1, ...");
  PNEUMA_CHECK(!manifest.records.empty(), "predictions '", path, "': no rows");

  Predictions p;
  for (size_t i = 0; i < manifest.records.size(); ++i) {
    const data::Record& r = manifest.records[i];
    std::vector<double> row;
    for (size_t c : score_columns) {
      double v = 0;
      PNEUMA_CHECK(parse_double(r.extra[c], v) && std::isfinite(v), "predictions '", path, "': line ", r.line,
                   ": ", manifest.extra_columns[c], " '", r.extra[c], "' is not a finite number");
      row.push_back(v);
    }
    p.labels.push_back(r.label);
    p.indices.push_back(static_cast<int64_t>(i));
    p.probabilities.push_back(std::move(row));
  }
  if (manifest_out) *manifest_out = std::move(manifest);
  return p;
}

}  // namespace pneuma::train
