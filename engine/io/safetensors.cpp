#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/core/shape.h"

namespace pneuma::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

struct ParsedHeader {
  std::vector<Entry> entries;  // sorted by begin
  Metadata metadata;
};

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string describe(const nlohmann::json& j) {
  std::string s = j.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

uint64_t header_length(const uint8_t* first8, uint64_t file_size, const std::string& file) {
  const uint64_t n = read_le64(first8);
  PNEUMA_CHECK(n <= file_size - 8, "safetensors: ", file, ": header length ", n, " exceeds the file (",
               file_size, " bytes)");
  PNEUMA_CHECK(n <= kMaxHeaderBytes, "safetensors: ", file, ": header length ", n, " exceeds the limit of ",
               kMaxHeaderBytes, " bytes");
  return n;
}

// Validates the JSON header against a data section of data_size bytes.
ParsedHeader parse_header(std::string_view text, uint64_t data_size, const std::string& file) {
  const std::string where = "safetensors: " + file + ": ";
  nlohmann::json header = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  PNEUMA_CHECK(!header.is_discarded(), where, "header is not valid JSON");
  PNEUMA_CHECK(header.is_object(), where, "header is not a JSON object");
  ParsedHeader out;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      PNEUMA_CHECK(value.is_object(), where, "__metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        PNEUMA_CHECK(mv.is_string(), where, "__metadata__ value of '", mk, "' is not a string: ", describe(mv));
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    const std::string t = where + "tensor '" + key + "': ";
    PNEUMA_CHECK(value.is_object(), t, "entry is not an object");
    PNEUMA_CHECK(value.contains("dtype") && value["dtype"].is_string(), t, "missing or non-string dtype");
    PNEUMA_CHECK(value.contains("shape") && value["shape"].is_array(), t, "missing or non-array shape");
    PNEUMA_CHECK(value.contains("data_offsets") && value["data_offsets"].is_array() &&
                     value["data_offsets"].size() == 2,
                 t, "data_offsets must be an array [begin, end]");
    Entry e;
    e.name = key;
    e.dtype = parse_safetensors_dtype(value["dtype"].get<std::string>(), t);
    uint64_t numel = 1;
    for (const auto& d : value["shape"]) {
      PNEUMA_CHECK(d.is_number_unsigned(), t, "shape entries must be non-negative integers, got ",
                   describe(value["shape"]));
      const uint64_t size = d.get<uint64_t>();
      PNEUMA_CHECK(size <= static_cast<uint64_t>(INT64_MAX) && !__builtin_mul_overflow(numel, size, &numel), t,
                   "shape ", describe(value["shape"]), " has too many elements");
      e.shape.push_back(static_cast<int64_t>(size));
    }
    const auto& offsets = value["data_offsets"];
    PNEUMA_CHECK(offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(), t,
                 "data_offsets must be non-negative integers, got ", describe(offsets));
    e.begin = offsets[0].get<uint64_t>();
    e.end = offsets[1].get<uint64_t>();
    PNEUMA_CHECK(e.begin <= e.end, t, "data_offsets ", describe(offsets), " end before they begin");
    PNEUMA_CHECK(e.end <= data_size, t, "data_offsets ", describe(offsets), " run past the data (", data_size,
                 " bytes)");
    uint64_t nbytes = 0;
    PNEUMA_CHECK(!__builtin_mul_overflow(numel, dtype_size(e.dtype), &nbytes) && nbytes == e.end - e.begin, t,
                 dtype_name(e.dtype), " shape ", describe(value["shape"]), " needs ", numel, " x ",
                 dtype_size(e.dtype), " bytes but data_offsets ", describe(offsets), " hold ", e.end - e.begin);
    out.entries.push_back(std::move(e));
  }
  std::stable_sort(out.entries.begin(), out.entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  for (size_t i = 1; i < out.entries.size(); ++i) {
    const Entry& a = out.entries[i - 1];
    const Entry& b = out.entries[i];
    PNEUMA_CHECK(a.end <= b.begin, where, "tensors '", a.name, "' [", a.begin, ", ", a.end, ") and '", b.name,
                 "' [", b.begin, ", ", b.end, ") overlap");
  }
  return out;
}

class File {
 public:
  File(const std::string& path, int flags, mode_t mode = 0) : path_(path) {
    fd_ = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    PNEUMA_CHECK(fd_ >= 0, "safetensors: cannot open ", path, ": ", std::strerror(errno));
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t size() const {
    struct stat st {};
    PNEUMA_CHECK(::fstat(fd_, &st) == 0, "safetensors: cannot stat ", path_, ": ", std::strerror(errno));
    PNEUMA_CHECK(S_ISREG(st.st_mode), "safetensors: ", path_, " is not a regular file");
    return static_cast<uint64_t>(st.st_size);
  }
  void read_at(void* dst, uint64_t n, uint64_t offset) const {
    auto* p = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      PNEUMA_CHECK(got > 0, "safetensors: cannot read ", path_, ": ",
                   got == 0 ? "unexpected end of file" : std::strerror(errno));
      p += got;
      n -= static_cast<uint64_t>(got);
      offset += static_cast<uint64_t>(got);
    }
  }
  void write_all(const void* src, uint64_t n) const {
    const auto* p = static_cast<const char*>(src);
    while (n > 0) {
      const ssize_t put = ::write(fd_, p, n);
      if (put < 0 && errno == EINTR) continue;
      PNEUMA_CHECK(put > 0, "safetensors: cannot write ", path_, ": ", std::strerror(errno));
      p += put;
      n -= static_cast<uint64_t>(put);
    }
  }
  void sync_and_close() {
    PNEUMA_CHECK(::fsync(fd_) == 0, "safetensors: cannot flush ", path_, ": ", std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    PNEUMA_CHECK(::close(fd) == 0, "safetensors: cannot close ", path_, ": ", std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

ParsedHeader read_header(const File& file, const std::string& path, uint64_t& data_start) {
  const uint64_t size = file.size();
  PNEUMA_CHECK(size >= 8, "safetensors: ", path, ": file too short (", size, " bytes) for the header length");
  uint8_t first8[8];
  file.read_at(first8, 8, 0);
  const uint64_t n = header_length(first8, size, path);
  std::string text(n, '\0');
  file.read_at(text.data(), n, 8);
  data_start = 8 + n;
  return parse_header(text, size - data_start, path);
}

Tensor cpu_contiguous(const Tensor& t) {
  Tensor c = t.device().is_cpu() ? t : t.to(Device::cpu());
  return c.detach().contiguous();
}

}  // namespace

Tensor Safetensors::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return Tensor();
}

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::BFloat16: return "BF16";
    case DType::Float16: return "F16";
    case DType::Int64: return "I64";
    case DType::UInt8: return "U8";
    case DType::Bool: return "BOOL";
  }
  PNEUMA_FAIL("safetensors: no dtype name for dtype ", static_cast<int>(dtype));
}

DType parse_safetensors_dtype(const std::string& name, const std::string& context) {
  for (DType d : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int64, DType::UInt8,
                  DType::Bool})
    if (name == safetensors_dtype_name(d)) return d;
  std::string shown = name.size() > 20 ? name.substr(0, 17) + "..." : name;
  PNEUMA_FAIL(context, "unsupported dtype '", shown, "' (expected F32, F64, BF16, F16, I64, U8 or BOOL)");
}

Safetensors parse_safetensors(std::span<const uint8_t> bytes, const std::string& name) {
  PNEUMA_CHECK(bytes.size() >= 8, "safetensors: ", name, ": file too short (", bytes.size(),
               " bytes) for the header length");
  const uint64_t n = header_length(bytes.data(), bytes.size(), name);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  const std::span<const uint8_t> data = bytes.subspan(8 + n);
  ParsedHeader header = parse_header(text, data.size(), name);
  Safetensors out;
  out.metadata = std::move(header.metadata);
  for (const Entry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw_data(), data.data() + e.begin, e.end - e.begin);
    out.tensors.emplace_back(e.name, t);
  }
  return out;
}

Safetensors load_safetensors(const std::string& path) {
  File file(path, O_RDONLY);
  uint64_t data_start = 0;
  ParsedHeader header = read_header(file, path, data_start);
  Safetensors out;
  out.metadata = std::move(header.metadata);
  for (const Entry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) file.read_at(t.raw_data(), e.end - e.begin, data_start + e.begin);
    out.tensors.emplace_back(e.name, t);
  }
  return out;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  File file(path, O_RDONLY);
  uint64_t data_start = 0;
  ParsedHeader header = read_header(file, path, data_start);
  SafetensorsHeader out;
  out.metadata = std::move(header.metadata);
  for (Entry& e : header.entries) out.tensors.push_back({e.name, e.dtype, e.shape});
  return out;
}

namespace {

struct Prepared {
  std::string header;  // JSON, padded with spaces to a multiple of 8 as the reference writer
  std::vector<Tensor> data;
  uint64_t data_bytes = 0;
};

Prepared prepare(const nn::NamedTensors& tensors, const Metadata& metadata) {
  Prepared p;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    PNEUMA_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    PNEUMA_CHECK(name != "__metadata__", "safetensors: '__metadata__' cannot name a tensor");
    PNEUMA_CHECK(seen.insert(name).second, "safetensors: tensor name '", name, "' appears twice");
    const Tensor c = cpu_contiguous(t);
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * dtype_size(c.dtype());
    header[name] = {{"dtype", safetensors_dtype_name(c.dtype())},
                    {"shape", c.shape()},
                    {"data_offsets", {p.data_bytes, p.data_bytes + nbytes}}};
    p.data_bytes += nbytes;
    p.data.push_back(c);
  }
  p.header = header.dump();
  p.header.append((8 - p.header.size() % 8) % 8, ' ');
  return p;
}

void le64(uint64_t v, uint8_t* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const nn::NamedTensors& tensors, const Metadata& metadata) {
  const Prepared p = prepare(tensors, metadata);
  std::vector<uint8_t> out(8 + p.header.size() + p.data_bytes);
  le64(p.header.size(), out.data());
  std::memcpy(out.data() + 8, p.header.data(), p.header.size());
  size_t at = 8 + p.header.size();
  for (const Tensor& t : p.data) {
    const size_t n = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    if (n > 0) std::memcpy(out.data() + at, t.raw_data(), n);
    at += n;
  }
  return out;
}

void save_safetensors(const std::string& path, const nn::NamedTensors& tensors, const Metadata& metadata) {
  namespace fs = std::filesystem;
  const Prepared p = prepare(tensors, metadata);
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  PNEUMA_CHECK(fd >= 0, "safetensors: cannot create a temporary file next to ", path, ": ", std::strerror(errno));
  ::close(fd);
  try {
    File file(tmp, O_WRONLY | O_TRUNC);
    uint8_t n[8];
    le64(p.header.size(), n);
    file.write_all(n, 8);
    file.write_all(p.header.data(), p.header.size());
    for (const Tensor& t : p.data) file.write_all(t.raw_data(), static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype()));
    file.sync_and_close();
    // mkstemp creates 0600; checkpoints are ordinary files.
    ::chmod(tmp.c_str(), 0644);
    PNEUMA_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "safetensors: cannot rename ", tmp, " to ", path, ": ",
                 std::strerror(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // The rename itself is durable only once the folder is flushed.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace pneuma::io
