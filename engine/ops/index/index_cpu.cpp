#include "engine/ops/index/index_cpu.h"

#include <algorithm>

#include "engine/cpu/copy.h"
#include "engine/cpu/loops.h"
#include "engine/cpu/parallel.h"

namespace pneuma::cpu {

namespace {

// A dense copy without autograd history (kernels read raw memory).
Tensor dense(const Tensor& t) { return t.detach().contiguous(); }

int64_t prod(const Shape& s, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) n *= s[i];
  return n;
}

void check_index(const char* op, int64_t value, int64_t dim, int64_t size) {
  PNEUMA_CHECK(value >= 0 && value < size, op, ": index ", value, " is out of bounds for dim ", dim,
               " with size ", size);
}

// Strides of t with dim's stride zeroed: the offset of the indexed dim is added from
// the index value instead.
Strides without_dim(const Tensor& t, int64_t dim) {
  Strides s = t.strides();
  if (!s.empty()) s[dim] = 0;
  return s;
}

int64_t stride_of(const Tensor& t, int64_t dim) { return t.dim() == 0 ? 1 : t.strides()[dim]; }
int64_t size_of(const Tensor& t, int64_t dim) { return t.dim() == 0 ? 1 : t.shape()[dim]; }

}  // namespace

void cat(const std::vector<Tensor>& inputs, int64_t dim, const Tensor& out) {
  int64_t offset = 0;
  for (const Tensor& t : inputs) {
    const int64_t n = t.shape()[dim];
    const Tensor region = make_view(out, t.shape(), out.strides(), out.offset() + offset * out.strides()[dim]);
    copy_strided(t, region);
    offset += n;
  }
}

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor xd = dense(x);
  const Tensor id = dense(index);
  const int64_t* idx = id.data<int64_t>();
  const int64_t k = id.numel();
  const int64_t n = size_of(x, dim);
  for (int64_t i = 0; i < k; ++i) check_index("index_select", idx[i], dim, n);
  const Shape& shape = x.shape();
  const int64_t outer = x.dim() == 0 ? 1 : prod(shape, 0, dim);
  const int64_t inner = x.dim() == 0 ? 1 : prod(shape, dim + 1, shape.size());
  dispatch_all(x.dtype(), "index_select", [&]<class T>() {
    const T* in = xd.data<T>();
    T* o = out.data<T>();
    parallel_for(outer * k, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / k, i = r % k;
        std::copy_n(in + (b * n + idx[i]) * inner, inner, o + r * inner);
      }
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(inner, 1)));
  });
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const Tensor sd = dense(src);
  const Tensor id = dense(index);
  const int64_t* idx = id.data<int64_t>();
  const int64_t k = id.numel();
  const int64_t n = size_of(out, dim);
  for (int64_t i = 0; i < k; ++i) check_index("index_add", idx[i], dim, n);
  const Shape& shape = out.shape();
  const int64_t outer = out.dim() == 0 ? 1 : prod(shape, 0, dim);
  const int64_t inner = out.dim() == 0 ? 1 : prod(shape, dim + 1, shape.size());
  dispatch_floating(out.dtype(), "index_add", [&]<class T>() {
    const T* s = sd.data<T>();
    T* o = out.data<T>();
    // Rows of different outer blocks never collide, so outer blocks run in parallel;
    // within one block repeated indices accumulate in order.
    parallel_for(outer, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b)
        for (int64_t i = 0; i < k; ++i) {
          T* dst = o + (b * n + idx[i]) * inner;
          const T* from = s + (b * k + i) * inner;
          for (int64_t j = 0; j < inner; ++j) dst[j] += from[j];
        }
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(k * inner, 1)));
  });
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out, const char* op) {
  const int64_t n = size_of(x, dim), step = stride_of(x, dim);
  const int64_t* idx = index.data<int64_t>();
  dispatch_all(x.dtype(), op, [&]<class T>() {
    const T* in = x.data<T>();
    T* o = out.data<T>();
    for_each_offset<3>(index.shape(), {out.strides(), index.strides(), without_dim(x, dim)},
                       [&](const std::array<int64_t, 3>& p) {
                         const int64_t v = idx[p[1]];
                         check_index(op, v, dim, n);
                         o[p[0]] = in[p[2] + v * step];
                       });
  });
}

void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, const char* op) {
  const int64_t n = size_of(out, dim), step = stride_of(out, dim);
  const int64_t* idx = index.data<int64_t>();
  dispatch_floating(out.dtype(), op, [&]<class T>() {
    const T* s = src.data<T>();
    T* o = out.data<T>();
    for_each_offset<3>(index.shape(), {without_dim(out, dim), index.strides(), src.strides()},
                       [&](const std::array<int64_t, 3>& p) {
                         const int64_t v = idx[p[1]];
                         check_index(op, v, dim, n);
                         o[p[0] + v * step] += s[p[2]];
                       });
  });
}

void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) {
  const Shape& shape = out.shape();
  const bool* c = condition.data<bool>();
  dispatch_all(a.dtype(), "where", [&]<class T>() {
    const T* as = a.data<T>();
    const T* bs = b.data<T>();
    T* o = out.data<T>();
    if (condition.shape() == shape && a.shape() == shape && b.shape() == shape && condition.is_contiguous() &&
        a.is_contiguous() && b.is_contiguous()) {
      parallel_for(out.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) o[i] = c[i] ? as[i] : bs[i];
      });
      return;
    }
    for_each_offset<4>(shape, {out.strides(), broadcast_strides(condition, shape), broadcast_strides(a, shape),
                               broadcast_strides(b, shape)},
                       [&](const std::array<int64_t, 4>& p) { o[p[0]] = c[p[1]] ? as[p[2]] : bs[p[3]]; });
  });
}

void masked_fill(const Tensor& x, const Tensor& mask, double value, const Tensor& out) {
  const Shape& shape = out.shape();
  const bool* m = mask.data<bool>();
  dispatch_all(x.dtype(), "masked_fill", [&]<class T>() {
    const T* in = x.data<T>();
    T* o = out.data<T>();
    const T v = static_cast<T>(value);
    if (x.shape() == shape && mask.shape() == shape && x.is_contiguous() && mask.is_contiguous()) {
      parallel_for(out.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) o[i] = m[i] ? v : in[i];
      });
      return;
    }
    for_each_offset<3>(shape, {out.strides(), broadcast_strides(x, shape), broadcast_strides(mask, shape)},
                       [&](const std::array<int64_t, 3>& p) { o[p[0]] = m[p[2]] ? v : in[p[1]]; });
  });
}

}  // namespace pneuma::cpu
