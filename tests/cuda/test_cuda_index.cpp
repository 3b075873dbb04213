// GPU-vs-CPU parity of the indexing ops (index_select, gather, scatter_add, forward and backward),
// of max/min along a dim (whose backward scatters the gradient), of clip_grad_norm, and the
// errors CUDA paths give: out-of-range indices and failed kernel launches. Skipped without a GPU.
#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

#include "engine/pneuma.h"
#include "engine/train/clip.h"
#include "tests/cuda/cuda_parity.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/check.h"
#endif

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;
using pneuma::testing::require_close_to;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda index_select") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = parity_input({5, 70, 3}, 1, dtype);
    // Repeated indices: their gradients accumulate (atomically on the GPU).
    const Tensor rows = Tensor::from_indices({69, 0, 3, 3, 69, 10}, {6});
    check_cuda_parity([&](const auto& t) { return index_select(t[0], 1, rows); }, {x});
    check_cuda_parity([&](const auto& t) { return index_select(t[0], 0, Tensor::from_indices({4, 4, 1}, {3})); }, {x});
    check_cuda_parity([&](const auto& t) { return index_select(t[0].transpose(0, 2), 1, rows); }, {x});
  }
  // Labels and masks are selected too.
  const Tensor labels = Tensor::from_indices({7, 8, 9, 10}, {4});
  const Tensor picked = index_select(labels.to(Device::cuda()), 0, Tensor::from_indices({3, 0}, {2}).to(Device::cuda()));
  CHECK(picked.to_indices() == std::vector<int64_t>{10, 7});
}

TEST_CASE("parity cuda gather") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = parity_input({4, 300}, 2, dtype);
    std::vector<int64_t> v;
    for (int64_t i = 0; i < 3 * 500; ++i) v.push_back((i * 7919) % 300);
    const Tensor index = Tensor::from_indices(v, {3, 500});  // fewer rows, more columns than x
    check_cuda_parity([&](const auto& t) { return gather(t[0], 1, index); }, {x});
    check_cuda_parity([&](const auto& t) { return gather(t[0], 0, Tensor::from_indices({3, 0, 0, 2}, {2, 2})); }, {x});
  }
}

TEST_CASE("parity cuda scatter_add") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = parity_input({6, 40}, 3, dtype);
    const Tensor src = parity_input({6, 100}, 4, dtype);
    std::vector<int64_t> v;
    for (int64_t i = 0; i < 5 * 90; ++i) v.push_back((i * 31) % 40);
    const Tensor index = Tensor::from_indices(v, {5, 90});  // inside src: src's other elements get no gradient
    check_cuda_parity([&](const auto& t) { return scatter_add(t[0], 1, index, t[1]); }, {x, src},
                      dtype == DType::Float32 ? 1e-5 : -1);
  }
}

TEST_CASE("parity cuda max and min along a dim") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = parity_input({7, 130, 3}, 5, dtype);
    for (const int64_t dim : {0, 1, 2, -1}) {
      for (const bool keepdim : {false, true}) {
        CAPTURE(dim);
        CAPTURE(keepdim);
        check_cuda_parity([&](const auto& t) { return max(t[0], dim, keepdim).first; }, {x});
        check_cuda_parity([&](const auto& t) { return min(t[0], dim, keepdim).first; }, {x});
      }
    }
  }
  // Ties: the gradient goes to the index max reported, on both devices.
  const Tensor ties = Tensor::from_vector({1, 3, 3, 0, 2, 2}, {2, 3});
  check_cuda_parity([](const auto& t) { return max(t[0], 1).first; }, {ties});
}

TEST_CASE("parity cuda clip_grad_norm") {
  PNEUMA_REQUIRE_GPU();
  const std::vector<Shape> shapes{{3}, {64, 129}, {20001}, {0}};
  for (const double norm_type : {2.0, 1.0, 3.0, std::numeric_limits<double>::infinity()}) {
    for (const double max_norm : {0.5, 1e6}) {  // clipped, and left as they are
      CAPTURE(norm_type);
      CAPTURE(max_norm);
      std::vector<Tensor> cpu_params, cuda_params;
      for (size_t i = 0; i < shapes.size(); ++i) {
        const DType dtype = i == 1 ? DType::Float64 : DType::Float32;
        Tensor p = Tensor::zeros(shapes[i], dtype).set_requires_grad(true);
        p.set_grad(parity_input(shapes[i], 30 + i, dtype));
        Tensor q = Tensor::zeros(shapes[i], dtype, Device::cuda()).set_requires_grad(true);
        q.set_grad(p.grad().to(Device::cuda()));
        cpu_params.push_back(p);
        cuda_params.push_back(q);
      }
      const double expected = train::clip_grad_norm(cpu_params, max_norm, norm_type);
      const double actual = train::clip_grad_norm(cuda_params, max_norm, norm_type);
      CHECK(actual == doctest::Approx(expected).epsilon(1e-12));
      for (size_t i = 0; i < shapes.size(); ++i) {
        REQUIRE(cuda_params[i].grad().device() == Device::cuda());
        require_close_to(cpu_params[i].grad(), cuda_params[i].grad().to(Device::cpu()), 1e-6, "clipped gradient");
      }
    }
  }
}

TEST_CASE("parity cuda index ops refuse out-of-range indices as the CPU does") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = parity_input({3, 4}, 6, DType::Float32);
  const Tensor bad = Tensor::from_indices({0, 4, -1}, {3});
  const Tensor bad_2d = Tensor::from_indices({1, 2, -3, 0, 1, 2}, {3, 2});
  auto message = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const Tensor xg = x.to(Device::cuda());
  CHECK(message([&] { index_select(xg, 1, bad.to(Device::cuda())); }) == message([&] { index_select(x, 1, bad); }));
  CHECK(message([&] { gather(xg, 1, bad_2d.to(Device::cuda())); }) == message([&] { gather(x, 1, bad_2d); }));
  CHECK(message([&] { scatter_add(xg, 1, bad_2d.to(Device::cuda()), xg); }) ==
        message([&] { scatter_add(x, 1, bad_2d, x); }));
  CHECK(message([&] { gather(x, 1, bad_2d); }).find("index -3 is out of bounds for dim 1 with size 4") !=
        std::string::npos);
  // The device is still usable afterwards (no device-side assert was raised).
  CHECK(sum(xg).item() == doctest::Approx(sum(x).item()).epsilon(1e-6));
}

TEST_CASE("parity cuda kernel launch failures throw pneuma::Error naming the kernel") {
  PNEUMA_REQUIRE_GPU();
#ifdef PNEUMA_WITH_CUDA
  // An invalid call leaves its error where the next check_launch reads it, as a bad launch
  // configuration would.
  REQUIRE(cudaSetDevice(1 << 20) != cudaSuccess);
  std::string message;
  try {
    cuda::check_kernel_launch("probe_kernel", "probe.cu", 42);  // what PNEUMA_LAUNCH calls
  } catch (const Error& e) {
    message = e.what();
  }
  CHECK(message.find("probe.cu:42: launch of probe_kernel failed: cudaErrorInvalidDevice") != std::string::npos);
  CHECK(cudaGetLastError() == cudaSuccess);  // reading the error cleared it
  REQUIRE(cudaSetDevice(0) == cudaSuccess);
#endif
}

}  // TEST_SUITE
