#pragma once
// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin,
// end]}, ..., "__metadata__": {string: string}}, then the raw little-endian data, offsets
// relative to its start. Every malformed file (truncated, header length beyond the file,
// bad JSON, unknown dtype, offsets out of range or overlapping, byte counts that do not
// match the shape) is a pneuma::Error naming the file and the reason, never a crash.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace pneuma::io {

using Metadata = std::map<std::string, std::string>;

struct Safetensors {
  nn::NamedTensors tensors;  // CPU tensors, in the order of their data in the file
  Metadata metadata;

  // nullptr-like undefined Tensor when absent.
  Tensor find(const std::string& name) const;
};

// Headers above this size are refused before allocating them (as the reference reader).
inline constexpr uint64_t kMaxHeaderBytes = 100u << 20;

// "F32", "F64", "BF16", "F16", "I64", "U8", "BOOL"; other safetensors dtypes are errors.
const char* safetensors_dtype_name(DType dtype);
DType parse_safetensors_dtype(const std::string& name, const std::string& context);

Safetensors parse_safetensors(std::span<const uint8_t> bytes, const std::string& name = "<memory>");
Safetensors load_safetensors(const std::string& path);

// The whole file in memory. Tensors may have any strides and live on any device;
// names must be unique and not "__metadata__".
std::vector<uint8_t> serialize_safetensors(const nn::NamedTensors& tensors, const Metadata& metadata = {});
// Written to a temporary file in the same folder, flushed to disk (fsync) and renamed
// over `path`, so a crash leaves either the old file or the new one, never half a file.
void save_safetensors(const std::string& path, const nn::NamedTensors& tensors, const Metadata& metadata = {});

// Only the header: tensor names, dtypes and shapes, and the metadata, without reading
// the data (for inspecting large checkpoints).
struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
};
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in data order
  Metadata metadata;
};
SafetensorsHeader read_safetensors_header(const std::string& path);

}  // namespace pneuma::io
