// pneuma-bench: one workload timed, its PyTorch twin is benchmarks/bench.py (same options,
// same JSON keys) and benchmarks/run interleaves the two and writes the table.
//
// Workloads:
//   model   a registry model (resnet18, resnet50, densenet161, unet, ...): --mode train is
//           forward, loss (BCE with logits on one logit for classifiers; Dice + BCE for the
//           U-Net's mask), backward, AdamW step, zero_grad; --mode infer is the forward in
//           eval mode without autograd. Input: random [batch, 3 (U-Net: 1), size, size].
//   loss    forward + backward of one loss on [n, dim] (focal, bce, nt_xent, multi_pos, supcon,
//           cross_entropy over dim classes with class weights as the tools use it,
//           cosine_embedding), timed alone.
//   loader  decode + augment + batch of the Kermany JPEGs with the loader's worker threads,
//           the consumer doing nothing else (Pipeline::cxr_train).
// Reports images/s (losses: calls/s, and rows/s as images/s), peak memory (CPU: the
// process's peak RSS, VmHWM; CUDA: the device caching allocator's peak of allocated bytes, as
// torch.cuda.max_memory_allocated), and on the CPU the time split by op (engine/core/profiler.h,
// on for the timed steps unless --no-profile; a scope costs well under a microsecond against
// milliseconds of op work; on CUDA the scopes would time kernel launches, not kernels, so no
// split is recorded there).
// --device cuda[:N] moves the model (nn::Module::to), inputs and targets to the device and
// times each step between two synchronizations of the device's op stream; --precision tf32
// turns on the device context's TF32 switch. --precision bf16 runs the forward and the loss
// under autocast::Guard(BFloat16), as the twin runs them under torch.autocast: convolutions and
// linear layers in bfloat16 with float32 master weights, the loss in float32, on either device.
// --channels-last lays the model's 4-d parameters and buffers out NHWC (nn::Module::to) and the
// input too (Tensor::contiguous), as the twin's model.to(memory_format=torch.channels_last) and
// x.contiguous(memory_format=torch.channels_last); the ops keep that layout, gradients arrive in
// the parameters' layout and the optimizers walk them flat.
// What the engine cannot do (tf32 on the CPU, a CUDA device in a build or machine without one)
// is one line on stderr and exit 1, never a silent fallback.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/generator.h"
#include "engine/core/profiler.h"
#include "engine/optim/optimizer.h"
#include "engine/pneuma.h"
#include "models/registry.h"
#include "models/unet.h"
#include "tools/common/cli.h"
#include "tools/common/compute.h"

#ifdef PNEUMA_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda/check.h"
#include "engine/cuda/context.h"
#include "engine/cuda/device_memory.h"
#include "engine/cuda/op_stream.h"
#endif

using namespace pneuma;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string workload = "model";
  std::string model = "resnet18";
  std::string mode = "train";
  int64_t batch = 16;
  int64_t img_size = 64;
  std::string loss = "nt_xent";
  double label_smoothing = 0;  // cross_entropy
  int64_t n = 2048;
  int64_t dim = 256;
  std::string manifest = "../shared/data/kermany224/train.csv";
  int workers = 2;
  int threads = 2;
  std::string device = "cpu";
  std::string precision = "fp32";
  bool channels_last = false;
  int steps = 10;
  int warmup = 2;
  uint64_t seed = 0;
  bool profile = true;
  bool json_output = false;
};

const std::vector<std::string> kLosses = {"focal", "bce", "nt_xent", "multi_pos", "supcon", "cross_entropy",
                                          "cosine_embedding"};

// ---- memory: /proc/self/status, in bytes (the kernel reports kB)
int64_t proc_status_bytes(const char* field) {
  std::ifstream status("/proc/self/status");
  const std::string prefix = std::string(field) + ":";
  for (std::string line; std::getline(status, line);)
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size())) * 1024;
  PNEUMA_FAIL("/proc/self/status has no ", field, " line");
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// ---- the device: what this engine cannot do is one clear line, exit 1
Device select_device(const Options& o) {
  const Device device = Device::parse(o.device);
  if (device.is_cpu()) {
    if (o.precision == "tf32")
      PNEUMA_FAIL("--precision tf32: TF32 is a CUDA tensor-core mode; the CPU backend computes in float32");
    return device;
  }
#ifdef PNEUMA_WITH_CUDA
  const int devices = cuda::device_count();
  PNEUMA_CHECK(devices > 0, "--device ", o.device, ": no CUDA device visible (no GPU or no driver)");
  PNEUMA_CHECK(device.index < devices, "--device ", o.device, ": no such CUDA device (", devices, " visible)");
  PNEUMA_CHECK(o.workload != "loader", "--workload loader: the data loader runs on the CPU; use --device cpu");
  cuda::DeviceContext::get(device.index).set_tf32(o.precision == "tf32");
  return device;
#else
  PNEUMA_FAIL("--device ", o.device, ": this build of Pneuma has no CUDA backend (configure with nvcc, cuDNN and "
              "cuBLAS found)");
#endif
}

// Waits for every op queued on the device (a no-op on the CPU, whose ops are synchronous).
void synchronize(Device device) {
#ifdef PNEUMA_WITH_CUDA
  if (device.is_cuda()) PNEUMA_CUDA_CHECK(cudaStreamSynchronize(cuda::op_stream(device)));
#else
  (void)device;
#endif
}

// Peak memory of the run: the device allocator's peak of allocated bytes on CUDA, the
// process's peak RSS on the CPU.
int64_t peak_memory_bytes(Device device) {
#ifdef PNEUMA_WITH_CUDA
  if (device.is_cuda())
    return static_cast<int64_t>(cuda::DeviceContext::get(device.index).allocator().stats().peak_allocated);
#endif
  (void)device;
  return proc_status_bytes("VmHWM");
}

// ---- the timed loop shared by all workloads
struct Timing {
  std::vector<double> seconds;  // per timed step
  double last_value = 0;        // the last step's loss (models, losses) or checksum (loader)
};

// Runs warmup + steps calls of `step` (which returns a value to keep it honest), timing the
// last `steps`; the profiler records only the timed ones.
// On CUDA each step is timed from a synchronized device to a synchronized device.
Timing time_steps(const Options& o, Device device, const std::function<double()>& step) {
  Timing t;
  const bool profile = o.profile && device.is_cpu();
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    if (i == o.warmup && profile) {
      profiler::reset();
      profiler::set_enabled(true);
    }
    synchronize(device);
    const Clock::time_point start = Clock::now();
    t.last_value = step();
    synchronize(device);
    const Clock::time_point end = Clock::now();
    if (i >= o.warmup) t.seconds.push_back(std::chrono::duration<double>(end - start).count());
  }
  profiler::set_enabled(false);
  return t;
}

// The autocast scope of --precision bf16 (none for fp32 and tf32), entered where the twin enters
// torch.autocast: the tools' own (tools/common/compute.h).
using tools::PrecisionScope;

// ---- model workload
// The first element of a tensor on any device, copying only that element to the host.
double first_value(const Tensor& t) { return t.flatten().slice(0, 0, 1).item(); }

Timing run_model(const Options& o, Device device) {
  PNEUMA_CHECK(o.mode == "train" || o.mode == "infer", "--mode must be train or infer, got '", o.mode, "'");
  manual_seed(o.seed);
  const bool segmentation = o.model == "unet" || o.model == "unet-bilinear";
  std::shared_ptr<nn::Module> model = models::create_model(o.model, 1);
  model->to(device);
  int64_t in_channels = 3;
  if (const auto* unet = dynamic_cast<const models::UNet*>(model.get())) in_channels = unet->options().in_channels;
  Tensor x = Tensor::randn({o.batch, in_channels, o.img_size, o.img_size}, o.seed + 1).to(device);
  tools::apply_memory_format(*model, o.channels_last);
  if (o.channels_last) x = x.contiguous(MemoryFormat::ChannelsLast);

  if (o.mode == "infer") {
    model->eval();
    return time_steps(o, device, [&] {
      NoGradGuard no_grad;
      PrecisionScope precision(o.precision);
      profiler::Scope region("other", "forward", profiler::Phase::Forward);
      return first_value(models::forward_any(*model, x));
    });
  }

  // Targets: half the images positive; the U-Net's masks a random third of the pixels.
  Tensor target;
  if (segmentation) {
    target = gt(Tensor::rand({o.batch, 1, o.img_size, o.img_size}, o.seed + 2), 0.7).to(DType::Float32);
  } else {
    std::vector<double> labels(static_cast<size_t>(o.batch));
    for (int64_t i = 0; i < o.batch; ++i) labels[static_cast<size_t>(i)] = static_cast<double>(i % 2);
    target = Tensor::from_vector(labels, {o.batch, 1});
  }
  target = target.to(device);
  model->train();
  optim::Adam optimizer(model->parameters(), optim::adamw_options(1e-4, 1e-4));
  return time_steps(o, device, [&] {
    Tensor output, loss;
    {
      PrecisionScope precision(o.precision);
      profiler::Scope region("other", "forward", profiler::Phase::Forward);
      output = models::forward_any(*model, x);
    }
    {
      PrecisionScope precision(o.precision);
      profiler::Scope region("other", "loss", profiler::Phase::Forward);
      loss = segmentation ? dice_bce_loss(output, target) : binary_cross_entropy_with_logits(output, target);
    }
    {
      profiler::Scope region("other", "backward", profiler::Phase::Backward);
      loss.backward();
    }
    {
      profiler::Scope region("optimizer", "optimizer", profiler::Phase::Optimizer);
      optimizer.step();
      optimizer.zero_grad();
    }
    return loss.item();
  });
}

// ---- loss workload: the cases of the PyTorch twin's losses, [n, dim] each
struct LossCase {
  std::vector<Tensor> leaves;       // what the step differentiates
  std::function<Tensor()> forward;  // the loss, a scalar
};

Tensor leaf(const Shape& shape, uint64_t seed, Device device) {
  Tensor t = Tensor::randn(shape, seed).to(device);
  t.set_requires_grad(true);
  return t;
}

LossCase make_loss_case(const Options& o, Device device) {
  const std::string& loss = o.loss;
  const int64_t n = o.n, d = o.dim;
  std::vector<int64_t> binary(static_cast<size_t>(n)), classes(static_cast<size_t>(n));
  std::vector<double> targets01(static_cast<size_t>(n * d)), signs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    binary[static_cast<size_t>(i)] = i % 2;
    classes[static_cast<size_t>(i)] = (i * 37) % d;
    signs[static_cast<size_t>(i)] = i % 3 == 0 ? 1.0 : -1.0;
  }
  for (int64_t i = 0; i < n * d; ++i) targets01[static_cast<size_t>(i)] = (i * 7919) % 11 < 3 ? 1.0 : 0.0;
  const Tensor labels = Tensor::from_indices(binary, {n}).to(device);
  if (loss == "nt_xent") {
    PNEUMA_CHECK(n % 2 == 0, "--loss nt_xent: --n must be even (two views of n/2 samples), got ", n);
    Tensor z = leaf({n, d}, 1, device);
    return {{z}, [z] { return nt_xent_loss(z, 0.1); }};
  }
  if (loss == "multi_pos") {
    Tensor z = leaf({n, d}, 2, device);
    return {{z}, [z, labels] { return multi_pos_con_loss(z, labels, 0.1); }};
  }
  if (loss == "supcon") {
    // SupCon expects normalized features; the normalization is part of the timed step.
    Tensor z = leaf({n, d}, 3, device);
    return {{z}, [z, labels] { return supcon_loss(normalize(z, 2.0, 1), labels, 0.07); }};
  }
  if (loss == "focal") {
    Tensor x = leaf({n, d}, 4, device);
    const Tensor t = Tensor::from_vector(targets01, {n, d}).to(device);
    return {{x}, [x, t] { return sigmoid_focal_loss(x, t, 0.25, 2.0, Reduction::Mean); }};
  }
  if (loss == "bce") {
    Tensor x = leaf({n, d}, 8, device);
    const Tensor t = Tensor::from_vector(targets01, {n, d}).to(device);
    return {{x}, [x, t] { return binary_cross_entropy_with_logits(x, t); }};
  }
  if (loss == "cross_entropy") {
    // dim classes with per-class weights, as pneuma-train's --loss ce (inverse-frequency weights).
    Tensor x = leaf({n, d}, 5, device);
    const Tensor y = Tensor::from_indices(classes, {n}).to(device);
    std::vector<double> class_weights(static_cast<size_t>(d));
    for (int64_t c = 0; c < d; ++c) class_weights[static_cast<size_t>(c)] = 0.5 + 0.25 * static_cast<double>(c % 4);
    const Tensor w = Tensor::from_vector(class_weights, {d}).to(device);
    const double smoothing = o.label_smoothing;
    return {{x}, [x, y, w, smoothing] { return cross_entropy(x, y, w, -100, Reduction::Mean, smoothing); }};
  }
  if (loss == "cosine_embedding") {
    Tensor a = leaf({n, d}, 6, device), b = leaf({n, d}, 7, device);
    const Tensor t = Tensor::from_vector(signs, {n}).to(device);
    return {{a, b}, [a, b, t] { return cosine_embedding_loss(a, b, t, 0.1); }};
  }
  PNEUMA_FAIL("unknown loss '", loss, "'");
}

Timing run_loss(const Options& o, Device device) {
  const LossCase c = make_loss_case(o, device);
  return time_steps(o, device, [&] {
    for (const Tensor& t : c.leaves) t.set_grad(Tensor());
    Tensor y;
    {
      PrecisionScope precision(o.precision);
      profiler::Scope region("other", "loss", profiler::Phase::Forward);
      y = c.forward();
    }
    {
      profiler::Scope region("other", "backward", profiler::Phase::Backward);
      y.backward();
    }
    return y.item();
  });
}

// ---- loader workload: each step is one batch
Timing run_loader(const Options& o) {
  const data::Manifest m = data::read_manifest(o.manifest);
  const int64_t needed = o.batch * (o.warmup + o.steps);
  PNEUMA_CHECK(m.size() >= needed, o.manifest, ": ", m.size(), " images are fewer than the ", needed,
               " that --batch ", o.batch, " x (--warmup ", o.warmup, " + --steps ", o.steps, ") need");
  auto dataset = std::make_shared<data::ImageDataset>(m, data::Pipeline::cxr_train(o.img_size));
  auto sampler = std::make_shared<data::ShuffledSampler>(m.size(), o.seed);
  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.workers = o.workers;
  lo.seed = o.seed;
  data::DataLoader loader(dataset, sampler, lo);
  loader.start_epoch(0);
  return time_steps(o, Device::cpu(), [&] {
    const std::optional<data::Batch> batch = loader.next();
    PNEUMA_CHECK(batch.has_value(), "loader: the epoch ended early");
    return static_cast<double>(batch->images().data<float>()[0]);
  });
}

// ---- report
json profile_json(int steps) {
  const double per_step = 1.0 / steps;
  json ops = json::array(), phases = json::object(), kinds = json::object();
  for (const profiler::Record& r : profiler::records()) {
    const char* phase = profiler::phase_name(r.phase);
    ops.push_back({{"name", r.name},
                   {"kind", r.kind},
                   {"phase", phase},
                   {"calls_per_step", static_cast<double>(r.calls) * per_step},
                   {"self_seconds_per_step", r.self_seconds * per_step},
                   {"total_seconds_per_step", r.total_seconds * per_step}});
    json& k = kinds[r.kind];
    if (k.is_null()) k = json::object();
    k["total"] = k.value("total", 0.0) + r.self_seconds * per_step;
    k[phase] = k.value(phase, 0.0) + r.self_seconds * per_step;
    const bool region = r.name == "forward" || r.name == "loss" || r.name == "backward" || r.name == "optimizer";
    if (region) phases[r.name] = phases.value(r.name, 0.0) + r.total_seconds * per_step;
  }
  return {{"phases", phases}, {"kinds", kinds}, {"ops", ops}, {"steps", steps}};
}

void print_human(const json& r) {
  std::printf("%s: %.2f images/s", r["workload_label"].get<std::string>().c_str(),
              r["images_per_second"].get<double>());
  if (r.contains("calls_per_second")) std::printf(" (%.2f calls/s)", r["calls_per_second"].get<double>());
  std::printf(", median %.4f s/step of %d (min %.4f, max %.4f), peak memory %.0f MiB (at start %.0f MiB)\n",
              r["seconds_per_step_median"].get<double>(), r["steps"].get<int>(), r["seconds_per_step_min"].get<double>(),
              r["seconds_per_step_max"].get<double>(), r["peak_memory_bytes"].get<double>() / 1048576.0,
              r["baseline_memory_bytes"].get<double>() / 1048576.0);
  if (!r.contains("profile") || r["profile"].is_null()) return;
  const json& p = r["profile"];
  std::printf("\nphases, s/step:");
  for (const auto& [name, seconds] : p["phases"].items()) std::printf(" %s %.4f", name.c_str(), seconds.get<double>());
  std::printf("\n\n%-14s %10s %10s %10s\n", "kind (self)", "s/step", "forward", "backward");
  std::vector<std::pair<double, std::string>> kinds;
  for (const auto& [name, k] : p["kinds"].items()) kinds.emplace_back(k["total"].get<double>(), name);
  std::sort(kinds.rbegin(), kinds.rend());
  for (const auto& [total, name] : kinds) {
    const json& k = p["kinds"][name];
    std::printf("%-14s %10.4f %10.4f %10.4f\n", name.c_str(), total, k.value("forward", 0.0), k.value("backward", 0.0));
  }
  std::printf("\n%-28s %-9s %-12s %8s %10s %10s\n", "op", "phase", "kind", "calls", "self s", "total s");
  int shown = 0;
  for (const json& op : p["ops"]) {
    if (shown++ == 20) break;
    std::printf("%-28s %-9s %-12s %8.1f %10.4f %10.4f\n", op["name"].get<std::string>().c_str(),
                op["phase"].get<std::string>().c_str(), op["kind"].get<std::string>().c_str(),
                op["calls_per_step"].get<double>(), op["self_seconds_per_step"].get<double>(),
                op["total_seconds_per_step"].get<double>());
  }
}

std::string workload_label(const Options& o) {
  const std::string size = std::to_string(o.img_size) + "x" + std::to_string(o.img_size);
  if (o.workload == "model") return o.model + " " + o.mode + " b" + std::to_string(o.batch) + " " + size;
  if (o.workload == "loss") return o.loss + " N=" + std::to_string(o.n) + " d=" + std::to_string(o.dim);
  return "loader b" + std::to_string(o.batch) + " " + size + " " + std::to_string(o.workers) + " workers";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark a training step, inference, a loss or the data loader (PyTorch twin: benchmarks/bench.py)",
               "pneuma-bench"};
  Options o;
  app.add_option("--workload", o.workload, "what to time")->check(CLI::IsMember({"model", "loss", "loader"}));
  app.add_option("--model", o.model, "registry model (resnet18, resnet50, densenet161, unet, ...)");
  app.add_option("--mode", o.mode, "model: train step or inference")->check(CLI::IsMember({"train", "infer"}));
  app.add_option("--batch", o.batch, "batch size (model, loader)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--img-size", o.img_size, "input height and width (model, loader)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--loss", o.loss, "loss")->check(CLI::IsMember(kLosses));
  app.add_option("--n", o.n, "loss: rows (embeddings, samples)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--dim", o.dim, "loss: features per row (cross_entropy: classes)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--label-smoothing", o.label_smoothing, "loss cross_entropy: label smoothing")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--manifest", o.manifest, "loader: CSV manifest of the images");
  app.add_option("--workers", o.workers, "loader: worker threads")->check(CLI::Range(1, 64));
  app.add_option("--threads", o.threads, "CPU threads (OpenMP, oneDNN, OpenBLAS)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--device", o.device, "cpu or cuda[:N]");
  app.add_option("--precision", o.precision, "compute precision")->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  app.add_flag("--channels-last", o.channels_last, "NHWC activations");
  app.add_option("--steps", o.steps, "timed steps")->check(CLI::Range(1, 1 << 30));
  app.add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "weights, inputs and sampler seed");
  app.add_flag("!--no-profile", o.profile, "do not record the per-op time split");
  app.add_flag("--json", o.json_output, "print one JSON object");
  if (auto code = tools::parse_command_line(app, argc, argv)) return *code;

  try {
    const int64_t baseline = proc_status_bytes("VmRSS");
    const Device device = select_device(o);
    cpu::set_num_threads(o.threads);
    const Timing t = o.workload == "model"  ? run_model(o, device)
                     : o.workload == "loss" ? run_loss(o, device)
                                            : run_loader(o);
    PNEUMA_CHECK(std::isfinite(t.last_value), workload_label(o), ": the last step's value is ", t.last_value);
    const double median = median_of(t.seconds);
    const int64_t per_step = o.workload == "loss" ? o.n : o.batch;
    const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
    json r = {{"framework", "pneuma"},
              {"workload", o.workload},
              {"workload_label", workload_label(o)},
              {"device", o.device},
              {"precision", o.precision},
              {"channels_last", o.channels_last},
              {"threads", o.threads},
              {"omp_wait_policy", wait_policy ? wait_policy : ""},
              {"steps", o.steps},
              {"warmup", o.warmup},
              {"seconds_per_step", t.seconds},
              {"seconds_per_step_median", median},
              {"seconds_per_step_min", *std::min_element(t.seconds.begin(), t.seconds.end())},
              {"seconds_per_step_max", *std::max_element(t.seconds.begin(), t.seconds.end())},
              {"images_per_second", static_cast<double>(per_step) / median},
              {"peak_memory_bytes", peak_memory_bytes(device)},
              {"baseline_memory_bytes", device.is_cuda() ? 0 : baseline},
              {"memory_kind", device.is_cuda() ? "CUDA caching allocator peak (allocated bytes)" : "peak RSS (VmHWM)"},
              {"value", t.last_value}};
    if (o.workload == "model") {
      r["model"] = o.model;
      r["mode"] = o.mode;
      r["batch"] = o.batch;
      r["img_size"] = o.img_size;
    } else if (o.workload == "loss") {
      r["loss"] = o.loss;
      r["n"] = o.n;
      r["dim"] = o.dim;
      r["calls_per_second"] = 1.0 / median;
      if (o.loss == "cross_entropy") r["label_smoothing"] = o.label_smoothing;
    } else {
      r["batch"] = o.batch;
      r["img_size"] = o.img_size;
      r["workers"] = o.workers;
    }
    r["profile"] = o.profile && device.is_cpu() ? profile_json(o.steps) : json();
    if (o.json_output) std::cout << r.dump() << std::endl;
    else print_human(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pneuma-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
