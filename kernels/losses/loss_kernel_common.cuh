// Launch geometry and block-level helpers shared by the loss kernels.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../portable.cuh"
#include "loss_math.cuh"

namespace pneuma::kern::losses {

inline constexpr unsigned kRowBlockThreads = 256;      // most threads of a one-block-per-row kernel
inline constexpr unsigned kElementBlockThreads = 256;  // threads of an elementwise kernel
inline constexpr std::int64_t kElementMaxBlocks = 1024;
inline constexpr std::int64_t kMaxGridX = 2147483647;

// Enough warps to give every column a thread, at most kRowBlockThreads: wider rows loop.
inline unsigned row_block_threads(std::int64_t cols) {
    const std::int64_t warps = (cols + kWarpSize - 1) / kWarpSize;
    const std::int64_t threads = (warps < 1 ? 1 : warps) * kWarpSize;
    return threads < kRowBlockThreads ? static_cast<unsigned>(threads) : kRowBlockThreads;
}

inline unsigned row_grid(std::int64_t rows) {
    return static_cast<unsigned>(rows < kMaxGridX ? (rows < 1 ? 1 : rows) : kMaxGridX);
}

// Blocks of an elementwise grid-stride kernel over n elements; also the number of partial sums
// it writes, so the workspace of a reduced loss.
inline std::int64_t element_blocks(std::int64_t n) {
    const std::int64_t blocks = (n + kElementBlockThreads - 1) / kElementBlockThreads;
    return blocks < 1 ? 1 : (blocks < kElementMaxBlocks ? blocks : kElementMaxBlocks);
}

inline void check_size(const char* launcher, const char* what, std::int64_t value) {
    if (value < 0) {
        throw std::invalid_argument(std::string(launcher) + ": negative " + what + " " + std::to_string(value));
    }
}

inline namespace PNEUMA_KERNEL_ABI {

// Sum over k in [0, count) of values[k * stride + offset] by the whole block, in a fixed order for
// a given block size (deterministic). Every thread of the block must call it.
template <class T>
PNEUMA_DEVICE T block_strided_sum(const T* values, std::int64_t count, std::int64_t stride, std::int64_t offset) {
    T local = T(0);
    for (std::int64_t k = threadIdx.x; k < count; k += blockDim.x) local += values[k * stride + offset];
    return block_reduce_sum(local);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern::losses
