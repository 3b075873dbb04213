// The one header every hand-written kernel is written against.
//
// Under nvcc the names below are CUDA itself. Under the host compiler they map onto the CPU
// emulator (kernels/emulator/emulator.h), so the same kernel source runs in CI without a GPU:
//
//   __global__ __device__ __host__ __forceinline__ __launch_bounds__(...) __align__(n)
//   threadIdx blockIdx blockDim gridDim warpSize
//   __syncthreads() __syncwarp(mask) __threadfence() __threadfence_block()
//   __shfl_sync __shfl_up_sync __shfl_down_sync __shfl_xor_sync (mask, value, lane/delta/mask, width = 32)
//   __ballot_sync __all_sync __any_sync
//   atomicAdd (int, unsigned, unsigned long long, float, double), atomicMax (int, unsigned,
//   unsigned long long), atomicMin (int, unsigned),
//   atomicExch (int, unsigned, float), atomicCAS (int, unsigned, unsigned long long), __ldg
//   __expf __logf (through pneuma::kern::fast_exp / fast_log)
//
// plus, for both sides:
//   PNEUMA_HD                          __host__ __device__, for math shared with CPU reference loops
//   PNEUMA_DEVICE                      __device__ __forceinline__, for kernel helpers
//   PNEUMA_SHARED(type, name, count)   static shared array `type name[count]`
//   PNEUMA_DYNAMIC_SHARED(type, name)  `type* name` into the launch's dynamic shared memory
//   PNEUMA_LAUNCH(kernel, grid, block, smem_bytes, stream, args...)
//   pneuma::kern::Stream, dim3, uint3, and the warp/block reductions at the end of this file.
//
// Kernels (__global__ functions) and their host-side launchers go inside
// `inline namespace PNEUMA_KERNEL_ABI { ... }` (within pneuma::kern or wherever they live). One
// binary can hold both builds of a kernel header: the library's .cu files compile it with nvcc
// and the emulated tests with the host compiler. The two builds define the same names with
// different bodies (a real launch vs an emulated one); the inline namespace gives them different
// symbols, so the linker cannot merge them. Plain types and PNEUMA_HD math stay outside it:
// host code shares them with the .cu files.
//
// Rules the emulator enforces (they are CUDA's rules; the GPU just does not always tell you):
// every thread of a block reaches the same __syncthreads(), every live lane named in a warp
// collective's mask calls it, and shuffles read only lanes that took part.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)

#include <cuda_runtime.h>

#include "engine/cuda/check.h"

#define PNEUMA_HD __host__ __device__
#define PNEUMA_DEVICE __device__ __forceinline__
#define PNEUMA_KERNEL_ABI gpu_build

namespace pneuma::kern {

using Stream = cudaStream_t;
using ::dim3;
using ::uint3;

// Launch errors (bad configuration, too much shared memory) surface here, not at the next sync, as
// the pneuma::Error every other failed CUDA call throws (engine/cuda/check.h): file:line of the
// launch, the kernel and CUDA's message.
inline void check_launch(const char* kernel, const char* file, int line) {
    ::pneuma::cuda::check_kernel_launch(kernel, file, line);
}

PNEUMA_DEVICE float fast_exp(float x) { return __expf(x); }
PNEUMA_DEVICE float fast_log(float x) { return __logf(x); }

}  // namespace pneuma::kern

#define PNEUMA_SHARED(type, name, count) __shared__ type name[count]

// One untyped extern array for every kernel: nvcc rejects `extern __shared__ T name[]` declared
// with different T in one translation unit, which templated kernels would do.
#define PNEUMA_DYNAMIC_SHARED(type, name)                                                  \
    extern __shared__ __align__(16) unsigned char pneuma_dynamic_shared_memory[];           \
    type* name = reinterpret_cast<type*>(pneuma_dynamic_shared_memory)

// A kernel template with several arguments has commas in its name: bind it to a local function
// pointer first (auto k = &kernel<A, B>;) and launch k.
#define PNEUMA_LAUNCH(kernel, grid, block, smem_bytes, stream, ...)                        \
    do {                                                                                    \
        kernel<<<(grid), (block), (smem_bytes), (stream)>>>(__VA_ARGS__);                   \
        ::pneuma::kern::check_launch(#kernel, __FILE__, __LINE__);                          \
    } while (false)

#else  // host compiler: the CPU emulator

#include <atomic>
#include <source_location>

// threadIdx, blockIdx, blockDim and gridDim become macros below, and CUDA's own headers declare
// struct members with those names (cudaLaunchParams::gridDim). Parsing them first, where they
// are reachable, keeps a host translation unit that also uses the CUDA runtime compiling
// whatever its include order; where they are not reachable nothing can include them later.
#if __has_include(<cuda_runtime.h>)
#include <cuda_runtime.h>
#endif

#include "emulator/emulator.h"

// cuda_runtime.h, when a host translation unit also includes it, defines some of these already.
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif
#ifndef __forceinline__
#define __forceinline__ __inline__ __attribute__((always_inline))
#endif
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif

#define PNEUMA_HD __host__ __device__
#define PNEUMA_DEVICE __device__ __forceinline__
#define PNEUMA_KERNEL_ABI emulated_build

// The built-in variables are per emulated thread, so they are calls, not variables.
#define threadIdx (::pneuma::emu::thread_idx())
#define blockIdx (::pneuma::emu::block_idx())
#define blockDim (::pneuma::emu::block_dim())
#define gridDim (::pneuma::emu::grid_dim())

#ifndef warpSize
inline constexpr int warpSize = 32;
#endif

namespace pneuma::kern {

// Opaque: the emulator runs each launch to completion before returning.
struct EmulatedStream;
using Stream = EmulatedStream*;
using dim3 = ::pneuma::emu::Dim3;
using uint3 = ::pneuma::emu::Uint3;

inline float fast_exp(float x) { return std::exp(x); }
inline float fast_log(float x) { return std::log(x); }

}  // namespace pneuma::kern

// glibc's <math.h> declares (but does not export) functions named __expf and __logf, so the CUDA
// intrinsics are macros here rather than functions.
#define __expf(x) ::pneuma::kern::fast_exp(x)
#define __logf(x) ::pneuma::kern::fast_log(x)

// The call site identifies the barrier, so that threads waiting at different __syncthreads()
// calls (undefined behaviour in CUDA) are reported instead of silently paired up.
inline void __syncthreads(std::source_location site = std::source_location::current()) {
    ::pneuma::emu::sync_threads(site);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::pneuma::emu::sync_warp(mask); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T>
inline T __shfl_sync(unsigned mask, T value, int src_lane, int width = warpSize) {
    return ::pneuma::emu::shuffle(mask, value, ::pneuma::emu::ShuffleMode::Index, src_lane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = warpSize) {
    return ::pneuma::emu::shuffle(mask, value, ::pneuma::emu::ShuffleMode::Up, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = warpSize) {
    return ::pneuma::emu::shuffle(mask, value, ::pneuma::emu::ShuffleMode::Down, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize) {
    return ::pneuma::emu::shuffle(mask, value, ::pneuma::emu::ShuffleMode::Xor, lane_mask, width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) { return ::pneuma::emu::ballot(mask, predicate != 0); }
inline int __all_sync(unsigned mask, int predicate) {
    return ::pneuma::emu::ballot(mask, predicate != 0) == ::pneuma::emu::ballot(mask, true);
}
inline int __any_sync(unsigned mask, int predicate) { return ::pneuma::emu::ballot(mask, predicate != 0) != 0; }

// Relaxed, like CUDA's atomics; real atomics because blocks run on several OS threads.
namespace pneuma::emu::atomics {

template <class T>
inline T fetch_add(T* address, T value) {
    return std::atomic_ref<T>(*address).fetch_add(value, std::memory_order_relaxed);
}

template <class T, class Choose>
inline T update(T* address, T value, Choose choose) {
    std::atomic_ref<T> target(*address);
    T old = target.load(std::memory_order_relaxed);
    while (!target.compare_exchange_weak(old, choose(old, value), std::memory_order_relaxed)) {
    }
    return old;
}

template <class T>
inline T exchange(T* address, T value) {
    return std::atomic_ref<T>(*address).exchange(value, std::memory_order_relaxed);
}

template <class T>
inline T compare_and_swap(T* address, T compare, T value) {
    std::atomic_ref<T>(*address).compare_exchange_strong(compare, value, std::memory_order_relaxed);
    return compare;  // holds the old value whether or not the swap happened
}

}  // namespace pneuma::emu::atomics

inline int atomicAdd(int* address, int value) { return ::pneuma::emu::atomics::fetch_add(address, value); }
inline unsigned atomicAdd(unsigned* address, unsigned value) { return ::pneuma::emu::atomics::fetch_add(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return ::pneuma::emu::atomics::fetch_add(address, value);
}
inline float atomicAdd(float* address, float value) { return ::pneuma::emu::atomics::fetch_add(address, value); }
inline double atomicAdd(double* address, double value) { return ::pneuma::emu::atomics::fetch_add(address, value); }

inline int atomicMax(int* address, int value) {
    return ::pneuma::emu::atomics::update(address, value, [](int a, int b) { return a > b ? a : b; });
}
inline unsigned atomicMax(unsigned* address, unsigned value) {
    return ::pneuma::emu::atomics::update(address, value, [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline unsigned long long atomicMax(unsigned long long* address, unsigned long long value) {
    return ::pneuma::emu::atomics::update(address, value,
                                          [](unsigned long long a, unsigned long long b) { return a > b ? a : b; });
}
inline int atomicMin(int* address, int value) {
    return ::pneuma::emu::atomics::update(address, value, [](int a, int b) { return a < b ? a : b; });
}
inline unsigned atomicMin(unsigned* address, unsigned value) {
    return ::pneuma::emu::atomics::update(address, value, [](unsigned a, unsigned b) { return a < b ? a : b; });
}

inline int atomicExch(int* address, int value) { return ::pneuma::emu::atomics::exchange(address, value); }
inline unsigned atomicExch(unsigned* address, unsigned value) { return ::pneuma::emu::atomics::exchange(address, value); }
inline float atomicExch(float* address, float value) { return ::pneuma::emu::atomics::exchange(address, value); }

inline int atomicCAS(int* address, int compare, int value) {
    return ::pneuma::emu::atomics::compare_and_swap(address, compare, value);
}
inline unsigned atomicCAS(unsigned* address, unsigned compare, unsigned value) {
    return ::pneuma::emu::atomics::compare_and_swap(address, compare, value);
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long value) {
    return ::pneuma::emu::atomics::compare_and_swap(address, compare, value);
}

template <class T>
inline T __ldg(const T* address) {
    return *address;
}

// The lambda's static gives each call site (and each template instantiation) its own key.
#define PNEUMA_SHARED(type, name, count)                                                   \
    type(&name)[count] = ::pneuma::emu::block_shared_array<type, (count)>([] {              \
        static const char pneuma_shared_site = 0;                                           \
        return static_cast<const void*>(&pneuma_shared_site);                               \
    }())

#define PNEUMA_DYNAMIC_SHARED(type, name) type* name = ::pneuma::emu::dynamic_shared<type>()

#define PNEUMA_LAUNCH(kernel, grid, block, smem_bytes, stream, ...)                                   \
    do {                                                                                               \
        static_cast<void>(stream);                                                                     \
        ::pneuma::emu::launch(::pneuma::emu::LaunchSite{#kernel, __FILE__, __LINE__}, kernel, (grid), \
                              (block), (smem_bytes)__VA_OPT__(, ) __VA_ARGS__);                        \
    } while (false)

#endif  // __CUDACC__

// -------------------------------------------------------------------------------------------------
// Warp and block reductions, written once in terms of shuffles and shared memory so that the GPU
// and the emulator run the same code.

namespace pneuma::kern {

inline constexpr unsigned kWarpSize = 32;
inline constexpr unsigned kFullWarpMask = 0xffffffffu;

PNEUMA_DEVICE unsigned threads_per_block() { return blockDim.x * blockDim.y * blockDim.z; }

// CUDA numbers the threads of a block with x fastest; warps are consecutive runs of 32.
PNEUMA_DEVICE unsigned linear_thread_index() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
PNEUMA_DEVICE unsigned lane_index() { return linear_thread_index() % kWarpSize; }
PNEUMA_DEVICE unsigned warp_index() { return linear_thread_index() / kWarpSize; }

// The last warp of a block whose size is not a multiple of 32 has fewer lanes.
PNEUMA_DEVICE unsigned lanes_in_warp() {
    const unsigned remaining = threads_per_block() - warp_index() * kWarpSize;
    return remaining < kWarpSize ? remaining : kWarpSize;
}
PNEUMA_DEVICE unsigned warp_member_mask() {
    const unsigned lanes = lanes_in_warp();
    return lanes == kWarpSize ? kFullWarpMask : (1u << lanes) - 1u;
}

struct SumOp {
    template <class T>
    PNEUMA_HD T operator()(const T& a, const T& b) const {
        return a + b;
    }
};

// Propagates NaN whichever side it is on, as torch.max does.
struct MaxOp {
    template <class T>
    PNEUMA_HD T operator()(const T& a, const T& b) const {
        return (a > b || a != a) ? a : b;
    }
};

namespace detail {

// Reduces the values of lanes [0, valid_lanes) into lane 0; other lanes hold partial results.
// Every existing lane of the warp must call it; lanes at or past valid_lanes take part in the
// shuffles but their values are ignored.
template <class T, class Op>
PNEUMA_DEVICE T warp_reduce_to_lane0(T value, Op op, unsigned valid_lanes) {
    const unsigned mask = warp_member_mask();
    const unsigned lane = lane_index();
    for (unsigned offset = kWarpSize / 2; offset > 0; offset /= 2) {
        const T other = __shfl_down_sync(mask, value, offset);
        if (lane + offset < valid_lanes) value = op(value, other);
    }
    return value;
}

}  // namespace detail

// Reduces `value` over lanes [0, valid_lanes) of the calling warp and returns the result to every
// lane. Every existing lane of the warp must call it (valid_lanes <= lanes_in_warp()); all lanes
// get the bitwise same result.
template <class T, class Op>
PNEUMA_DEVICE T warp_reduce(T value, Op op, unsigned valid_lanes = kWarpSize) {
    const unsigned valid = valid_lanes < lanes_in_warp() ? valid_lanes : lanes_in_warp();
    value = detail::warp_reduce_to_lane0(value, op, valid);
    return __shfl_sync(warp_member_mask(), value, 0);
}

template <class T>
PNEUMA_DEVICE T warp_reduce_sum(T value, unsigned valid_lanes = kWarpSize) {
    return warp_reduce(value, SumOp{}, valid_lanes);
}

template <class T>
PNEUMA_DEVICE T warp_reduce_max(T value, unsigned valid_lanes = kWarpSize) {
    return warp_reduce(value, MaxOp{}, valid_lanes);
}

// Reduces one value per thread over the whole block and returns the result to every thread.
// Every thread of the block must call it (it contains __syncthreads). Back-to-back calls are safe
// without an extra barrier: the result lives in a slot that the next call writes only after its
// own first barrier, which every thread reaches after reading this call's result.
template <class T, class Op>
PNEUMA_DEVICE T block_reduce(T value, Op op) {
    PNEUMA_SHARED(T, warp_results, kWarpSize + 1);
    const unsigned warp = warp_index();
    const unsigned lane = lane_index();
    const unsigned warps = (threads_per_block() + kWarpSize - 1) / kWarpSize;

    value = detail::warp_reduce_to_lane0(value, op, lanes_in_warp());
    if (lane == 0) warp_results[warp] = value;
    __syncthreads();
    if (warp == 0) {
        // Warp 0 has at least as many lanes as the block has warps.
        const T total = detail::warp_reduce_to_lane0(warp_results[lane < warps ? lane : 0], op, warps);
        if (lane == 0) warp_results[kWarpSize] = total;
    }
    __syncthreads();
    return warp_results[kWarpSize];
}

template <class T>
PNEUMA_DEVICE T block_reduce_sum(T value) {
    return block_reduce(value, SumOp{});
}

template <class T>
PNEUMA_DEVICE T block_reduce_max(T value) {
    return block_reduce(value, MaxOp{});
}

}  // namespace pneuma::kern
