// CPU emulation of the CUDA execution model.
//
// A launch runs the whole grid on the host. Each block runs on one OS thread; each of its CUDA
// threads is a fiber (ucontext) with its own stack, so __syncthreads is a real barrier and warp
// shuffles really exchange values among the lanes of a warp. Blocks are spread over a few OS
// threads, which is why atomics must really be atomic. Kernel memory accesses go straight to host
// memory, so AddressSanitizer sees every out-of-bounds access a kernel makes.
//
// Kernels do not call this header directly: they are written against kernels/portable.cuh, which
// maps threadIdx, __syncthreads, __shfl_*_sync, PNEUMA_SHARED, PNEUMA_LAUNCH, ... onto it.
//
// Two limits of running CUDA threads as fibers of one OS thread:
// - C++ keeps exception state per OS thread, so kernel code must not synchronise (barrier, warp
//   collective) inside a catch handler or in a destructor that runs during unwinding.
// - A block that cannot finish unwinds its suspended threads with an exception that is not a
//   std::exception; a catch (...) in kernel code must rethrow it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

namespace pneuma::emu {

// CUDA's dim3: every component defaults to 1.
struct Dim3 {
    unsigned x = 1;
    unsigned y = 1;
    unsigned z = 1;
    constexpr Dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// CUDA's uint3, the type of threadIdx and blockIdx.
struct Uint3 {
    unsigned x = 0;
    unsigned y = 0;
    unsigned z = 0;
};

// A kernel broke a rule of the execution model (divergent barrier, incomplete warp shuffle,
// invalid launch configuration, ...). Never thrown for a kernel's own exceptions: those propagate
// out of launch() unchanged.
class EmulationError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Options {
    // Stack of each emulated thread, with a guard page below it so that an overflow crashes
    // instead of corrupting a neighbour. Kernels are shallow; raise it for deep device code.
    // Kept small because AddressSanitizer clears the shadow of the whole target stack on every
    // switch.
    std::size_t fiber_stack_bytes = 64 * 1024;
    // OS threads that execute blocks concurrently; 0 picks min(hardware threads, 4).
    unsigned worker_threads = 0;
    // What a plain <<<>>> launch may ask for without cudaFuncSetAttribute.
    std::size_t max_dynamic_shared_bytes = 48 * 1024;
};

// Read once at the start of each launch; safe to call from any host thread.
Options options();
void set_options(const Options& new_options);

// Where a launch came from, for error messages. PNEUMA_LAUNCH fills it in.
struct LaunchSite {
    const char* kernel_name = "kernel";
    const char* file = "";
    int line = 0;
};

// ---- What a running kernel thread sees (portable.cuh maps the CUDA names onto these). ----
// Each throws EmulationError when called outside an emulated kernel thread.

const Uint3& thread_idx();
const Uint3& block_idx();
const Dim3& block_dim();
const Dim3& grid_dim();

// True on an OS thread while it executes an emulated kernel thread.
bool in_kernel();

// __syncthreads(): no thread of the block passes until every thread of the block has arrived at
// the same call site.
void sync_threads(const std::source_location& site);

// __syncwarp(mask): the lanes in mask that have not exited wait for each other.
void sync_warp(unsigned mask);

enum class ShuffleMode { Index, Up, Down, Xor };

// One warp shuffle of up to 64 bits. Lanes of the warp named in mask that have not exited all
// contribute before any returns. Reading a lane that did not contribute (not in mask, exited, or
// past the end of a partial warp) yields all-one bits, a NaN for floating-point types, so that
// kernels that use such values fail their tests instead of passing by luck.
std::uint64_t shuffle_bits(unsigned mask, std::uint64_t bits, ShuffleMode mode, int operand, int width);

// __ballot_sync(mask, predicate): bit i set when lane i contributed a non-zero predicate.
unsigned ballot(unsigned mask, bool predicate);

template <class T>
T shuffle(unsigned mask, T value, ShuffleMode mode, int operand, int width) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(std::uint64_t),
                  "warp shuffles move at most 64 bits of a trivially copyable type");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = shuffle_bits(mask, bits, mode, operand, width);
    T result;
    std::memcpy(&result, &bits, sizeof(T));
    return result;
}

// Static shared memory: one buffer per block and call site, allocated by the first thread that
// reaches the site, exactly `bytes` long, filled with all-one bits (CUDA leaves it uninitialised).
void* block_shared(const void* site_key, std::size_t bytes, std::size_t alignment);

template <class T, std::size_t Count>
T (&block_shared_array(const void* site_key))[Count] {
    static_assert(std::is_trivially_destructible_v<T>, "shared memory holds trivial types only");
    return *static_cast<T(*)[Count]>(block_shared(site_key, sizeof(T) * Count, alignof(T)));
}

// Dynamic shared memory: exactly the bytes the launch asked for, 16-byte aligned.
void* dynamic_shared_memory();

template <class T>
T* dynamic_shared() {
    static_assert(alignof(T) <= 16, "dynamic shared memory is only 16-byte aligned");
    return static_cast<T*>(dynamic_shared_memory());
}

namespace detail {

using KernelBody = void (*)(const void* closure);

// Runs body(closure) once per thread of the grid; returns when all blocks finished. Rethrows the
// first exception of the lowest failing block, after every fiber of that block has unwound.
void run_grid(const LaunchSite& site, Dim3 grid, Dim3 block, std::size_t dynamic_shared_bytes,
              KernelBody body, const void* closure);

}  // namespace detail

// The host-side equivalent of kernel<<<grid, block, dynamic_shared_bytes>>>(args...). Arguments
// are converted to the kernel's parameter types once, as a real launch does, and every thread
// receives its own copy of them.
template <class... Params, class... Args>
void launch(const LaunchSite& site, void (*kernel)(Params...), Dim3 grid, Dim3 block,
            std::size_t dynamic_shared_bytes, Args&&... args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
    using ParamTuple = std::tuple<std::decay_t<Params>...>;
    struct Closure {
        void (*kernel)(Params...);
        ParamTuple params;
    };
    const Closure closure{kernel, ParamTuple(std::forward<Args>(args)...)};
    detail::run_grid(
        site, grid, block, dynamic_shared_bytes,
        [](const void* erased) {
            const Closure& bound = *static_cast<const Closure*>(erased);
            std::apply(bound.kernel, bound.params);
        },
        &closure);
}

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), Dim3 grid, Dim3 block, std::size_t dynamic_shared_bytes, Args&&... args) {
    launch(LaunchSite{}, kernel, grid, block, dynamic_shared_bytes, std::forward<Args>(args)...);
}

}  // namespace pneuma::emu
