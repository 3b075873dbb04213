#pragma once
// Tensor-level launches of the indexing kernels (kernels/index/index.cuh): compiled by nvcc for
// index_cuda.cu and by the host compiler for the emulated kernel tests, which therefore run this
// code too (see engine/ops/elementwise/elementwise_kernels.h).
//
// Index values live on the device, so checking them as the CPU loops do (engine/ops/index/
// index_cpu.cpp) costs a kernel and one host sync to read its 8-byte verdict. Forward ops take
// user indices and check them (IndexCheck::Validate), giving the CPU's error message; backward
// passes reuse indices their forward already checked, or that max/min produced, and skip the
// sync (IndexCheck::Trusted).
#include <array>

#include "engine/core/tensor.h"
#include "engine/cpu/loops.h"
#include "kernels/index/index.cuh"

namespace pneuma::kern {

enum class IndexCheck { Validate, Trusted };

inline namespace PNEUMA_KERNEL_ABI {

// Throws, as the CPU loops do, naming op, the first index (in index's row-major order) outside
// [0, bound) and the dim, when there is one. index: contiguous int64.
inline void check_indices_in_range(const char* op, const Tensor& index, int64_t dim, int64_t bound, Stream stream,
                                   const IndexLaunch& shape = {}) {
  const int64_t count = index.numel();
  if (count == 0) return;
  const Tensor verdict = Tensor::zeros({1}, DType::Int64, index.device());
  // Positions are non-negative, so the int64 slot holds the kernel's unsigned maximum unchanged.
  auto* first_bad = reinterpret_cast<unsigned long long*>(verdict.data<int64_t>());
  launch_find_bad_index(index.data<int64_t>(), count, bound, first_bad, stream, shape);
  const int64_t count_minus_first = verdict.to(Device::cpu()).data<int64_t>()[0];
  if (count_minus_first == 0) return;
  const int64_t first = count - count_minus_first;
  const int64_t value = index.reshape({-1}).slice(0, first, first + 1).to(Device::cpu()).data<int64_t>()[0];
  PNEUMA_FAIL(op, ": index ", value, " is out of bounds for dim ", dim, " with size ", bound);
}

// x (any dims, or 0-d) seen as [outer, n, inner] around dim, k indices selecting along it.
inline IndexRows index_rows(const Shape& shape, int64_t dim, int64_t k) {
  IndexRows rows;
  rows.k = k;
  if (shape.empty()) return rows;
  for (int64_t d = 0; d < dim; ++d) rows.outer *= shape[d];
  rows.n = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) rows.inner *= shape[d];
  return rows;
}

// out (contiguous, x's shape with index.numel() at dim) = x[..., index, ...]; any dtype with a
// native type, as cpu::index_select.
inline void run_index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, Stream stream,
                             IndexCheck check = IndexCheck::Validate, const IndexLaunch& shape = {}) {
  const Tensor xd = x.detach().contiguous(), id = index.detach().contiguous();
  const IndexRows rows = index_rows(x.shape(), dim, id.numel());
  if (check == IndexCheck::Validate) check_indices_in_range("index_select", id, dim, rows.n, stream, shape);
  dispatch_all(x.dtype(), "index_select (CUDA)", [&]<class T>() {
    launch_index_select<T>(xd.data<T>(), id.data<int64_t>(), out.data<T>(), rows, stream, shape);
  });
}

// out (contiguous)[..., index[i], ...] += src[..., i, ...]; float, as cpu::index_add.
inline void run_index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, Stream stream,
                          IndexCheck check = IndexCheck::Validate, const IndexLaunch& shape = {}) {
  const Tensor sd = src.detach().contiguous(), id = index.detach().contiguous();
  const IndexRows rows = index_rows(out.shape(), dim, id.numel());
  if (check == IndexCheck::Validate) check_indices_in_range("index_add", id, dim, rows.n, stream, shape);
  dispatch_floating(out.dtype(), "index_add (CUDA)", [&]<class T>() {
    launch_index_add<T>(out.data<T>(), id.data<int64_t>(), sd.data<T>(), rows, stream, shape);
  });
}

// Strides of t with dim's zeroed (the index value supplies that offset), over an index of `rank`
// dims: all zeros for a 0-d t (whose index may be 0-d or hold one element in 1-d).
inline Strides strides_without_dim(const Tensor& t, int64_t dim, int64_t rank) {
  if (t.dim() == 0) return Strides(rank, 0);
  Strides s = t.strides();
  s[dim] = 0;
  return s;
}

// out (index's shape, any strides) = x gathered along dim; any dtype with a native type, as
// cpu::gather. op names the caller in errors.
inline void run_gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, const char* op,
                       Stream stream, IndexCheck check = IndexCheck::Validate, const IndexLaunch& shape = {}) {
  const Tensor id = index.detach().contiguous();
  const int64_t n = x.dim() == 0 ? 1 : x.shape()[dim], step = x.dim() == 0 ? 1 : x.strides()[dim];
  if (check == IndexCheck::Validate) check_indices_in_range(op, id, dim, n, stream, shape);
  const auto offsets =
      make_offset_calculator<3>(id.shape(), {out.strides(), id.strides(), strides_without_dim(x, dim, id.dim())});
  dispatch_all(x.dtype(), "gather (CUDA)", [&]<class T>() {
    launch_gather<T>(x.data<T>(), id.data<int64_t>(), out.data<T>(), offsets, step, id.numel(), stream, shape);
  });
}

// out[... index[p] ...] += src[p] for every position p of index; float, as cpu::scatter_add.
inline void run_scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, const char* op,
                            Stream stream, IndexCheck check = IndexCheck::Validate, const IndexLaunch& shape = {}) {
  const Tensor id = index.detach().contiguous();
  const int64_t n = out.dim() == 0 ? 1 : out.shape()[dim], step = out.dim() == 0 ? 1 : out.strides()[dim];
  if (check == IndexCheck::Validate) check_indices_in_range(op, id, dim, n, stream, shape);
  const auto offsets =
      make_offset_calculator<3>(id.shape(), {strides_without_dim(out, dim, id.dim()), id.strides(), src.strides()});
  dispatch_floating(out.dtype(), "scatter_add (CUDA)", [&]<class T>() {
    launch_scatter_add<T>(out.data<T>(), id.data<int64_t>(), src.data<T>(), offsets, step, id.numel(), stream, shape);
  });
}

}  // inline namespace PNEUMA_KERNEL_ABI
}  // namespace pneuma::kern
