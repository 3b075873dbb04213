#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "engine/io/checkpoint.h"
#include "engine/io/safetensors.h"
#include "engine/nn/layers.h"
#include "engine/pneuma.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using pneuma::testing::TempDir;

namespace {

std::vector<uint8_t> with_header(const std::string& header, size_t data_bytes = 0) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    io::parse_safetensors(bytes, "case.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

nn::NamedTensors sample_tensors() {
  nn::NamedTensors t;
  t.emplace_back("conv.weight", Tensor::randn({4, 3, 2, 2}, 1));
  t.emplace_back("double", Tensor::randn({5}, 2, DType::Float64));
  t.emplace_back("steps", Tensor::from_indices({7}, {}));
  t.emplace_back("mask", Tensor::from_vector({1, 0, 1}, {3}, DType::Bool));
  t.emplace_back("pixels", Tensor::from_vector({0, 128, 255}, {3}, DType::UInt8));
  t.emplace_back("half", Tensor::from_vector({1.5, -2, 0.25}, {3}).to(DType::Float16));
  t.emplace_back("bf", Tensor::from_vector({1.5, -2, 0.25}, {3}).to(DType::BFloat16));
  t.emplace_back("empty", Tensor::zeros({0, 3}));
  t.emplace_back("transposed", Tensor::randn({3, 4}, 3).transpose(0, 1));  // not contiguous
  return t;
}

void check_same(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(a.dtype() == b.dtype());
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  CHECK(std::memcmp(ca.raw_data(), cb.raw_data(), static_cast<size_t>(a.numel()) * dtype_size(a.dtype())) == 0);
}

class Net : public nn::Module {
 public:
  explicit Net(int64_t out = 3) {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(2, 4, 3));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(4));
    fc = register_module("fc", std::make_shared<nn::Linear>(4, out));
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Linear> fc;
};

}  // namespace

TEST_CASE("safetensors round trip: every dtype - metadata - 0-d - empty and strided tensors") {
  const nn::NamedTensors tensors = sample_tensors();
  const io::Metadata metadata{{"model", "resnet18"}, {"img_size", "224"}};
  const std::vector<uint8_t> bytes = io::serialize_safetensors(tensors, metadata);
  // header length is a multiple of 8 so the data starts aligned
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  CHECK(n % 8 == 0);
  const io::Safetensors back = io::parse_safetensors(bytes);
  CHECK(back.metadata == metadata);
  REQUIRE(back.tensors.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    INFO(tensors[i].first);
    CHECK(back.tensors[i].first == tensors[i].first);  // data order is the given order
    check_same(back.tensors[i].second, tensors[i].second);
  }
  CHECK(back.find("steps").item() == 7);
  CHECK(!back.find("nope").defined());

  TempDir dir("safetensors");
  const std::string path = dir / "a.safetensors";
  io::save_safetensors(path, tensors, metadata);
  CHECK(testing::read_bytes(path) == bytes);
  const io::Safetensors loaded = io::load_safetensors(path);
  for (size_t i = 0; i < tensors.size(); ++i) check_same(loaded.tensors[i].second, tensors[i].second);
  const io::SafetensorsHeader header = io::read_safetensors_header(path);
  REQUIRE(header.tensors.size() == tensors.size());
  CHECK(header.tensors[0].name == "conv.weight");
  CHECK(header.tensors[0].shape == Shape{4, 3, 2, 2});
  CHECK(header.tensors[5].dtype == DType::Float16);
  CHECK(header.metadata.at("model") == "resnet18");
}

TEST_CASE("safetensors save is atomic: temp file renamed - no leftovers - old file kept on failure") {
  TempDir dir("atomic");
  const std::string path = dir / "ckpt.safetensors";
  io::save_safetensors(path, {{"a", Tensor::ones({2})}});
  io::save_safetensors(path, {{"b", Tensor::zeros({3})}});  // overwrite
  CHECK(io::load_safetensors(path).tensors.at(0).first == "b");
  // a tensor that cannot be written (duplicate name) leaves the previous file intact
  CHECK_THROWS_AS(io::save_safetensors(path, {{"x", Tensor::ones({1})}, {"x", Tensor::ones({1})}}), Error);
  CHECK(io::load_safetensors(path).tensors.at(0).first == "b");
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.str())) {
    ++files;
    CHECK(entry.path().filename() == "ckpt.safetensors");
  }
  CHECK(files == 1);
  CHECK_THROWS_WITH_AS(io::save_safetensors(dir / "no/such/folder/x.safetensors", {{"a", Tensor::ones({1})}}),
                       doctest::Contains("cannot create a temporary file"), Error);
  CHECK_THROWS_WITH_AS(io::load_safetensors(dir / "missing.safetensors"), doctest::Contains("cannot open"), Error);
}

TEST_CASE("safetensors parser rejects malformed files with a reason") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(parse_error(with_header(ok, 8)).empty());

  CHECK(parse_error({}).find("too short") != std::string::npos);
  CHECK(parse_error({1, 2, 3}).find("too short") != std::string::npos);
  {
    std::vector<uint8_t> huge = with_header(ok, 8);
    for (int i = 0; i < 8; ++i) huge[i] = 0xff;  // 2^64 - 1
    CHECK(parse_error(huge).find("exceeds the file") != std::string::npos);
    huge[7] = 0x7f;
    CHECK(parse_error(huge).find("exceeds the file") != std::string::npos);
  }
  {
    std::vector<uint8_t> beyond = with_header(ok, 8);
    beyond[0] = static_cast<uint8_t>(beyond.size() - 7);  // one byte past the end
    CHECK(parse_error(beyond).find("exceeds the file") != std::string::npos);
  }
  struct Case {
    std::string header;
    size_t data;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"", 0, "not valid JSON"},
      {"{", 0, "not valid JSON"},
      {"[1, 2]", 0, "not a JSON object"},
      {R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8, "unsupported dtype 'F33'"},
      {R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8, "unsupported dtype 'I32'"},
      {R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8, "dtype"},
      {R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8, "dtype"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8, "non-negative"},
      {R"({"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8, "shape"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8,
       "too many elements"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", 8, "[begin, end]"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "end before they begin"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}})", 8, "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8, "run past the data"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})", 8,
       "run past the data"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 16, "needs 3 x 4 bytes"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       16, "overlap"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       16, "overlap"},
      {R"({"a":[1,2]})", 0, "not an object"},
      {R"({"__metadata__":{"k":1}})", 0, "not a string"},
      {R"({"__metadata__":[]})", 0, "__metadata__ is not an object"},
  };
  for (const Case& c : cases) {
    INFO(c.header);
    const std::string error = parse_error(with_header(c.header, c.data));
    CHECK_MESSAGE(error.find(c.reason) != std::string::npos, "error: '", error, "'");
    CHECK(error.find("case.safetensors") != std::string::npos);
  }
  // every strict prefix of a valid file is refused
  const std::vector<uint8_t> valid = io::serialize_safetensors(sample_tensors(), {{"k", "v"}});
  for (size_t cut = 0; cut < valid.size(); ++cut) {
    const std::vector<uint8_t> prefix(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(cut));
    CHECK_THROWS_AS(io::parse_safetensors(prefix), Error);
  }
  // the same checks apply when reading from disk
  TempDir dir("corrupt");
  testing::write_bytes(dir / "bad.safetensors", with_header(cases[16].header, 16));
  CHECK_THROWS_WITH_AS(io::load_safetensors(dir / "bad.safetensors"), doctest::Contains("needs 3 x 4 bytes"), Error);
  testing::write_bytes(dir / "short.safetensors", std::vector<uint8_t>(valid.begin(), valid.end() - 1));
  CHECK_THROWS_WITH_AS(io::load_safetensors(dir / "short.safetensors"), doctest::Contains("run past the data"), Error);
  CHECK_THROWS_WITH_AS(io::read_safetensors_header(dir / "short.safetensors"), doctest::Contains("run past"), Error);
}

TEST_CASE("safetensors fuzz: mutated files parse or throw pneuma::Error - never crash") {
  const std::vector<uint8_t> valid = io::serialize_safetensors(sample_tensors(), {{"model", "x"}});
  std::mt19937_64 rng(20240601);
  int refused = 0, accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 5) {
        case 0: bytes[at] = static_cast<uint8_t>(rng()); break;               // random byte
        case 1: bytes[at] = static_cast<uint8_t>("0123456789[]{},:\"-."[rng() % 19]); break;  // JSON-ish
        case 2: bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at)); break;
        case 3: bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(rng())); break;
        default: bytes[rng() % 8] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;  // header length bits
      }
      if (bytes.empty()) break;
    }
    try {
      const io::Safetensors s = io::parse_safetensors(bytes);
      for (const auto& [name, t] : s.tensors) CHECK(t.numel() * static_cast<int64_t>(dtype_size(t.dtype())) >= 0);
      ++accepted;
    } catch (const Error&) {
      ++refused;
    }
  }
  MESSAGE("fuzz: ", accepted, " accepted, ", refused, " refused");
  CHECK(refused > 10000);
}

TEST_CASE("load_state_dict: strict - non-strict - mismatched shapes - dtype conversion") {
  Net source, target;
  {
    NoGradGuard no_grad;
    source.bn->running_mean.data<float>()[1] = 3;
    source.bn->num_batches_tracked.data<int64_t>()[0] = 5;
  }
  const Tensor handle = target.conv->weight;
  io::LoadReport r = io::load_state_dict(target, source.state_dict());
  CHECK(r.clean());
  CHECK(r.loaded.size() == source.state_dict().size());
  CHECK(handle.same(target.conv->weight));  // copied into the existing tensor
  CHECK(target.conv->weight.to_vector() == source.conv->weight.to_vector());
  CHECK(target.bn->running_mean.to_vector()[1] == 3);
  CHECK(target.bn->num_batches_tracked.item() == 5);
  CHECK(target.conv->weight.requires_grad());

  // missing + unexpected + mismatched, all in one message, and nothing copied
  Net other(5);
  nn::NamedTensors state = other.state_dict();
  state.erase(state.begin());                                  // conv.weight missing
  state.emplace_back("extra.weight", Tensor::zeros({1}));      // unexpected
  const std::vector<double> before = target.conv->bias.to_vector();
  try {
    io::load_state_dict(target, state);
    FAIL("strict load accepted a bad state dict");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find(R"(missing key(s): "conv.weight")") != std::string::npos);
    CHECK(m.find(R"(unexpected key(s): "extra.weight")") != std::string::npos);
    CHECK(m.find("size mismatch for fc.weight: copying a param with shape [5, 4] from checkpoint, the shape in "
                 "current model is [3, 4]") != std::string::npos);
    CHECK(m.find("size mismatch for fc.bias") != std::string::npos);
  }
  CHECK(target.conv->bias.to_vector() == before);

  // non-strict: missing/unexpected reported, shape mismatches still refused (as PyTorch)
  CHECK_THROWS_WITH_AS(io::load_state_dict(target, state, {false, false}), doctest::Contains("size mismatch"), Error);
  r = io::load_state_dict(target, state, {false, true});
  CHECK(r.missing_keys == std::vector<std::string>{"conv.weight"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"extra.weight"});
  CHECK(r.mismatched.size() == 2);
  CHECK(target.conv->bias.to_vector() == other.conv->bias.to_vector());
  CHECK(target.fc->weight.shape() == Shape{3, 4});

  // float64 values into float32 parameters convert, as Tensor.copy_
  nn::NamedTensors doubles;
  for (const auto& [name, t] : source.state_dict()) doubles.emplace_back(name, t.to(t.dtype() == DType::Float32 ? DType::Float64 : t.dtype()));
  io::load_state_dict(target, doubles);
  CHECK(target.fc->weight.dtype() == DType::Float32);
  CHECK(target.fc->weight.to_vector() == source.fc->weight.to_vector());

  CHECK_THROWS_WITH_AS(io::load_state_dict(target, {{"conv.bias", Tensor::zeros({4})}, {"conv.bias", Tensor::zeros({4})}},
                                           {false, false}),
                       doctest::Contains("appears twice"), Error);
}

TEST_CASE("checkpoints: save_checkpoint / load_checkpoint with metadata") {
  TempDir dir("ckpt");
  Net a, b;
  io::save_checkpoint(a, dir / "net.safetensors", {{"epoch", "3"}});
  io::Metadata metadata;
  io::load_checkpoint(b, dir / "net.safetensors", {}, &metadata);
  CHECK(metadata.at("epoch") == "3");
  CHECK(b.fc->weight.to_vector() == a.fc->weight.to_vector());
  const io::LoadReport r = io::compare_state_dict(Net(7), io::read_safetensors_header(dir / "net.safetensors"));
  CHECK(r.mismatched.size() == 2);
  Net c(7);
  CHECK_THROWS_WITH_AS(io::load_checkpoint(c, dir / "net.safetensors"), doctest::Contains("net.safetensors: load_state_dict: size mismatch"), Error);
}
