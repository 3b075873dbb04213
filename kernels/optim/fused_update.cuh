// Fused optimizer steps: one launch updates every parameter of a model (SGD with momentum,
// nesterov and weight decay; Adam; AdamW).
//
// The host writes a table with one entry per parameter (pointers to the weights, the gradient and
// the optimizer state, the element count) into device memory. Each parameter is cut into chunks
// of kFusedChunkElements; block b (grid-stride over all chunks of all parameters) finds its
// parameter by a binary search over the entries' first chunk and updates that chunk, its threads
// striding over the elements. Per-element math: kernels/optim/update_math.cuh, shared with the
// CPU optimizer.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../portable.cuh"
#include "update_math.cuh"

namespace pneuma::kern {

inline constexpr std::int64_t kFusedChunkElements = 8192;
inline constexpr unsigned kFusedThreads = 256;
inline constexpr std::int64_t kFusedMaxBlocks = 65536;

// One parameter of a fused step. state0/state1: SGD's momentum buffer (or nullptr) / unused;
// Adam's exp_avg / exp_avg_sq.
template <class T>
struct FusedParameter {
    T* weight;
    const T* grad;
    T* state0;
    T* state1;
    std::int64_t numel;
    std::int64_t first_chunk;  // chunks of the parameters before this one
    int first_step;            // SGD: the momentum buffer was created for this step
};

inline std::int64_t fused_chunks(std::int64_t numel) { return (numel + kFusedChunkElements - 1) / kFusedChunkElements; }

// The entry holding chunk `chunk`: the last one whose first chunk is not after it.
template <class T>
PNEUMA_HD int find_fused_parameter(const FusedParameter<T>* table, int count, std::int64_t chunk) {
    int low = 0, high = count - 1;
    while (low < high) {
        const int middle = (low + high + 1) / 2;
        if (table[middle].first_chunk <= chunk) low = middle;
        else high = middle - 1;
    }
    return low;
}

inline void check_fused_launch(const char* launcher, int count, std::int64_t total_chunks) {
    if (count < 0 || total_chunks < 0) {
        throw std::invalid_argument(std::string(launcher) + ": negative parameter count " + std::to_string(count) +
                                    " or chunk count " + std::to_string(total_chunks));
    }
}

inline unsigned fused_blocks(std::int64_t total_chunks) {
    return static_cast<unsigned>(total_chunks < kFusedMaxBlocks ? total_chunks : kFusedMaxBlocks);
}

inline namespace PNEUMA_KERNEL_ABI {

// update(p, i) for every element i of every parameter p in the table: block b takes chunks b,
// b + gridDim.x, ... and its threads stride over the chunk's elements.
template <class T, class Update>
PNEUMA_DEVICE void for_each_fused_element(const FusedParameter<T>* table, int count, std::int64_t total_chunks,
                                          const Update& update) {
    for (std::int64_t chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x) {
        const FusedParameter<T> p = table[find_fused_parameter(table, count, chunk)];
        const std::int64_t begin = (chunk - p.first_chunk) * kFusedChunkElements;
        const std::int64_t end = begin + kFusedChunkElements < p.numel ? begin + kFusedChunkElements : p.numel;
        for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) update(p, i);
    }
}

template <class T>
__global__ void fused_sgd_kernel(const FusedParameter<T>* table, int count, std::int64_t total_chunks, SgdHyper h) {
    for_each_fused_element(table, count, total_chunks, [&](const FusedParameter<T>& p, std::int64_t i) {
        sgd_update(p.weight[i], p.grad[i], p.state0 != nullptr ? p.state0 + i : nullptr, p.first_step != 0, h);
    });
}

template <class T>
__global__ void fused_adam_kernel(const FusedParameter<T>* table, int count, std::int64_t total_chunks, AdamHyper h) {
    for_each_fused_element(table, count, total_chunks, [&](const FusedParameter<T>& p, std::int64_t i) {
        adam_update(p.weight[i], p.grad[i], p.state0[i], p.state1[i], h);
    });
}

// table: `count` entries in memory the kernel can read (device memory on a GPU), first_chunk
// ascending, total_chunks = the sum of fused_chunks(numel).
template <class T>
void launch_fused_sgd(const FusedParameter<T>* table, int count, std::int64_t total_chunks, const SgdHyper& h,
                      Stream stream) {
    check_fused_launch("launch_fused_sgd", count, total_chunks);
    if (count == 0 || total_chunks == 0) return;
    auto kernel = &fused_sgd_kernel<T>;
    PNEUMA_LAUNCH(kernel, fused_blocks(total_chunks), kFusedThreads, 0, stream, table, count, total_chunks, h);
}

template <class T>
void launch_fused_adam(const FusedParameter<T>* table, int count, std::int64_t total_chunks, const AdamHyper& h,
                       Stream stream) {
    check_fused_launch("launch_fused_adam", count, total_chunks);
    if (count == 0 || total_chunks == 0) return;
    auto kernel = &fused_adam_kernel<T>;
    PNEUMA_LAUNCH(kernel, fused_blocks(total_chunks), kFusedThreads, 0, stream, table, count, total_chunks, h);
}

}  // inline namespace PNEUMA_KERNEL_ABI

}  // namespace pneuma::kern
