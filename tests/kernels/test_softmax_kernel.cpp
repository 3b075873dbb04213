// The softmax kernel family, executed by the CPU emulator, against a plain double-precision loop.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/softmax/softmax.cuh"

namespace {

namespace kern = pneuma::kern;

// Written independently of the kernel's shared math, so that it checks that math too.
std::vector<double> reference_softmax_rows(const std::vector<double>& x, std::int64_t rows, std::int64_t cols,
                                           bool log) {
    std::vector<double> y(x.size());
    for (std::int64_t r = 0; r < rows; ++r) {
        const double* in = x.data() + r * cols;
        double* out = y.data() + r * cols;
        double row_max = in[0];
        for (std::int64_t c = 0; c < cols; ++c) {
            if (in[c] > row_max || std::isnan(in[c])) row_max = in[c];
        }
        double sum = 0.0;
        for (std::int64_t c = 0; c < cols; ++c) sum += std::exp(in[c] - row_max);
        for (std::int64_t c = 0; c < cols; ++c) {
            out[c] = log ? in[c] - row_max - std::log(sum) : std::exp(in[c] - row_max) / sum;
        }
    }
    return y;
}

// Logits in [-8, 8), with row 0 shifted by +1000: exp(1000) overflows even a double, so that row
// fails unless the kernel subtracts the row maximum first.
template <class T>
std::vector<T> make_logits(std::int64_t rows, std::int64_t cols) {
    std::vector<T> x(static_cast<std::size_t>(rows * cols));
    std::uint32_t state = 12345u;
    for (std::size_t i = 0; i < x.size(); ++i) {
        state = state * 1664525u + 1013904223u;
        const double unit = static_cast<double>(state >> 8) / static_cast<double>(1u << 24);
        x[i] = static_cast<T>(16.0 * unit - 8.0);
    }
    for (std::int64_t c = 0; c < cols; ++c) x[static_cast<std::size_t>(c)] += static_cast<T>(1000);
    return x;
}

template <class T>
double tolerance(double reference) {
    const double relative = std::is_same_v<T, float> ? 2e-6 : 1e-13;
    return relative * (1.0 + std::fabs(reference));
}

template <class T>
void check_against_reference(const std::vector<T>& x, const std::vector<T>& y, std::int64_t rows, std::int64_t cols,
                             bool log) {
    const std::vector<double> x_double(x.begin(), x.end());
    const std::vector<double> expected = reference_softmax_rows(x_double, rows, cols, log);
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CAPTURE(i);
        REQUIRE(std::fabs(static_cast<double>(y[i]) - expected[i]) <= tolerance<T>(expected[i]));
    }
    if (!log) {
        for (std::int64_t r = 0; r < rows; ++r) {
            double row_sum = 0.0;
            for (std::int64_t c = 0; c < cols; ++c) row_sum += static_cast<double>(y[static_cast<std::size_t>(r * cols + c)]);
            CHECK(row_sum == doctest::Approx(1.0).epsilon(1e-5));
        }
    }
}

struct Shape {
    std::int64_t rows;
    std::int64_t cols;
};

const Shape kShapes[] = {{1, 1}, {3, 7}, {5, 1000}, {64, 33}};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("softmax kernel: launcher matches a double-precision loop", T, float, double) {
    for (const Shape shape : kShapes) {
        for (const bool log : {false, true}) {
            CAPTURE(shape.rows);
            CAPTURE(shape.cols);
            CAPTURE(log);
            const std::vector<T> x = make_logits<T>(shape.rows, shape.cols);
            std::vector<T> y(x.size(), T(-123));
            kern::launch_softmax_rows(x.data(), y.data(), shape.rows, shape.cols, log, kern::Stream{});
            check_against_reference(x, y, shape.rows, shape.cols, log);
        }
    }
}

TEST_CASE_TEMPLATE("softmax kernel: any block size - fewer blocks than rows", T, float, double) {
    const std::int64_t rows = 7;
    const std::int64_t cols = 1000;
    const std::vector<T> x = make_logits<T>(rows, cols);
    for (const unsigned threads : {1u, 33u, 1024u}) {
        for (const unsigned blocks : {1u, 3u, 7u}) {
            for (const bool log : {false, true}) {
                CAPTURE(threads);
                CAPTURE(blocks);
                CAPTURE(log);
                std::vector<T> y(x.size(), T(-123));
                PNEUMA_LAUNCH(kern::softmax_rows_kernel<T>, blocks, threads, 0, kern::Stream{}, x.data(), y.data(),
                              rows, cols, log);
                check_against_reference(x, y, rows, cols, log);
            }
        }
    }
}

TEST_CASE("softmax kernel: in place") {
    const std::int64_t rows = 4;
    const std::int64_t cols = 300;
    const std::vector<float> x = make_logits<float>(rows, cols);
    std::vector<float> y = x;
    kern::launch_softmax_rows(y.data(), y.data(), rows, cols, true, kern::Stream{});
    check_against_reference(x, y, rows, cols, true);
}

TEST_CASE("softmax kernel: a NaN poisons its own row only") {
    const std::int64_t rows = 3;
    const std::int64_t cols = 50;
    std::vector<float> x = make_logits<float>(rows, cols);
    x[1 * cols + 17] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> y(x.size(), 0.0f);
    kern::launch_softmax_rows(x.data(), y.data(), rows, cols, false, kern::Stream{});
    for (std::int64_t c = 0; c < cols; ++c) {
        CHECK(std::isnan(y[static_cast<std::size_t>(cols + c)]));
        CHECK_FALSE(std::isnan(y[static_cast<std::size_t>(c)]));
        CHECK_FALSE(std::isnan(y[static_cast<std::size_t>(2 * cols + c)]));
    }
}

TEST_CASE("softmax kernel: block size choice and empty or negative shapes") {
    CHECK(kern::softmax_block_threads(1) == 32);
    CHECK(kern::softmax_block_threads(33) == 64);
    CHECK(kern::softmax_block_threads(1000) == 256);

    std::vector<float> y(4, 7.0f);
    kern::launch_softmax_rows<float>(nullptr, y.data(), 0, 4, false, kern::Stream{});
    kern::launch_softmax_rows<float>(nullptr, y.data(), 4, 0, false, kern::Stream{});
    CHECK(y[0] == 7.0f);
    CHECK_THROWS_AS(kern::launch_softmax_rows<float>(y.data(), y.data(), -1, 4, false, kern::Stream{}),
                    std::invalid_argument);
}

TEST_CASE("softmax kernel: shared math matches the closed forms") {
    CHECK(kern::softmax_value(2.0, 2.0, 4.0) == 0.25);
    CHECK(kern::log_softmax_value(3.0, 1.0, 0.5) == 1.5);
    CHECK(kern::softmax_shifted_exp(1.0f, 1.0f) == 1.0f);
}

}  // TEST_SUITE
