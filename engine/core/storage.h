#pragma once
#include <cstddef>
#include <memory>

#include "engine/core/device.h"

namespace pneuma {

// A flat byte buffer on one device. Tensors share a Storage and view it through
// (offset, shape, strides).
class Storage {
 public:
  // Allocates nbytes on device; the contents are unspecified unless zero_fill.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device, bool zero_fill = false);
  // Wraps memory owned elsewhere; deleter runs when the last tensor lets go.
  Storage(void* data, size_t nbytes, Device device, void (*deleter)(void*, Device));
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  void (*deleter_)(void*, Device);
};

}  // namespace pneuma
