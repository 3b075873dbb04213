#include "engine/train/checkpointing.h"

#include <charconv>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/generator.h"
#include "engine/io/safetensors.h"

namespace pneuma::train {

namespace fs = std::filesystem;

namespace {
constexpr const char* kModelPrefix = "model/";
constexpr const char* kOptimizerPrefix = "optimizer/";
constexpr const char* kStateKey = "train_state";
constexpr int kStateVersion = 1;

std::string path_in(const std::string& dir, const char* file) { return (fs::path(dir) / file).string(); }

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

std::string format_number(double value) {
  char buffer[64];
  // std::to_chars without a precision gives the shortest text that reads back exactly.
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc() ? std::string(buffer, end) : std::to_string(value);
}

std::string format_numbers(const std::vector<double>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + format_number(values[i]);
  return out;
}

io::Metadata checkpoint_metadata(const std::string& model, int64_t num_classes, int64_t img_size,
                                 const data::Normalization& normalization, int64_t epoch) {
  io::Metadata meta{{"model", model},
                    {"num_classes", std::to_string(num_classes)},
                    {"img_size", std::to_string(img_size)},
                    {"epoch", std::to_string(epoch)},
                    {"format", "pneuma"}};
  if (normalization.enabled()) {
    meta["mean"] = format_numbers(normalization.mean);
    meta["std"] = format_numbers(normalization.std);
  }
  return meta;
}

bool has_train_state(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(path_in(dir, kTrainState), ec);
}

void save_train_state(const std::string& dir, const nn::Module& model, const optim::Optimizer& optimizer,
                      const LrScheduler* scheduler, const EarlyStopping* early_stopping, const TrainState& state,
                      const io::Metadata& model_metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  PNEUMA_CHECK(fs::is_directory(dir), "cannot create the output folder ", dir);

  io::Metadata meta = model_metadata;
  meta["epoch"] = std::to_string(state.epoch);
  io::save_checkpoint(model, path_in(dir, kLastCheckpoint), meta);

  nn::NamedTensors tensors;
  for (const auto& [name, t] : model.state_dict()) tensors.emplace_back(kModelPrefix + name, t);
  for (auto& [name, t] : optimizer.state_tensors()) tensors.emplace_back(kOptimizerPrefix + name, t);
  const GeneratorState generator = generator_state();
  const nlohmann::json json = {
      {"version", kStateVersion},
      {"epoch", state.epoch},
      {"lr", optimizer.lr()},
      {"optimizer_parameters", optimizer.parameters().size()},
      {"scheduler", scheduler != nullptr ? scheduler->state() : nlohmann::json()},
      {"early_stopping", early_stopping != nullptr ? early_stopping->state() : nlohmann::json()},
      {"generator", {{"seed", generator.seed}, {"counter", generator.counter}}},
      {"extra", state.extra}};
  io::save_safetensors(path_in(dir, kTrainState), tensors, {{kStateKey, json.dump()}});
}

TrainState load_train_state(const std::string& dir, nn::Module& model, optim::Optimizer& optimizer,
                            LrScheduler* scheduler, EarlyStopping* early_stopping) {
  const std::string path = path_in(dir, kTrainState);
  PNEUMA_CHECK(has_train_state(dir), "cannot resume from ", dir, ": it has no ", kTrainState);
  const io::Safetensors file = io::load_safetensors(path);
  const auto found = file.metadata.find(kStateKey);
  PNEUMA_CHECK(found != file.metadata.end(), path, ": no '", kStateKey, "' in its metadata");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(found->second);
  } catch (const nlohmann::json::exception& e) {
    PNEUMA_FAIL(path, ": its train_state metadata is not JSON (", e.what(), ")");
  }

  nn::NamedTensors model_state, optimizer_state;
  for (const auto& [name, t] : file.tensors) {
    if (starts_with(name, kModelPrefix))
      model_state.emplace_back(name.substr(std::string(kModelPrefix).size()), t);
    else if (starts_with(name, kOptimizerPrefix))
      optimizer_state.emplace_back(name.substr(std::string(kOptimizerPrefix).size()), t);
    else
      PNEUMA_FAIL(path, ": unexpected tensor '", name, "'");
  }

  TrainState state;
  try {
    PNEUMA_CHECK(json.at("version").get<int>() == kStateVersion, path, ": train state version ",
                 json.at("version").dump(), " is not ", kStateVersion);
    const size_t saved_parameters = json.at("optimizer_parameters").get<size_t>();
    PNEUMA_CHECK(saved_parameters == optimizer.parameters().size(), path, ": its optimizer had ", saved_parameters,
                 " parameters, this run's has ", optimizer.parameters().size(), " (another model or --freeze?)");
    const bool saved_scheduler = !json.at("scheduler").is_null(), saved_early = !json.at("early_stopping").is_null();
    PNEUMA_CHECK(saved_scheduler == (scheduler != nullptr), path, ": the saved run ",
                 saved_scheduler ? "had" : "had no", " learning-rate scheduler, this one ",
                 scheduler ? "has one" : "has none");
    PNEUMA_CHECK(saved_early == (early_stopping != nullptr), path, ": the saved run ", saved_early ? "had" : "had no",
                 " early stopping, this one ", early_stopping ? "has it" : "has none");

    try {
      io::load_state_dict(model, model_state);
      optimizer.load_state_tensors(optimizer_state);
    } catch (const Error& e) {
      PNEUMA_FAIL(path, ": ", e.what());
    }
    optimizer.set_lr(json.at("lr").get<double>());
    if (scheduler != nullptr) scheduler->load_state(json.at("scheduler"));
    if (early_stopping != nullptr) early_stopping->load_state(json.at("early_stopping"));
    const nlohmann::json& generator = json.at("generator");
    set_generator_state({generator.at("seed").get<uint64_t>(), generator.at("counter").get<uint64_t>()});
    state.epoch = json.at("epoch").get<int64_t>();
    state.extra = json.at("extra");
  } catch (const nlohmann::json::exception& e) {
    PNEUMA_FAIL(path, ": bad train state (", e.what(), ")");
  }
  return state;
}

}  // namespace pneuma::train
