// The CPU emulator of the CUDA execution model: barriers, shuffles, reductions, atomics, shared
// memory, indexing, and the errors it must raise instead of hanging.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kernels/portable.cuh"

namespace {

using pneuma::emu::EmulationError;
using Dim3 = pneuma::kern::dim3;  // not "dim3": CUDA builds also see ::dim3 from cuda_runtime.h
namespace kern = pneuma::kern;

// Restores the emulator options a test changed.
class ScopedOptions {
public:
    explicit ScopedOptions(const pneuma::emu::Options& wanted) : saved_(pneuma::emu::options()) {
        pneuma::emu::set_options(wanted);
    }
    ~ScopedOptions() { pneuma::emu::set_options(saved_); }
    ScopedOptions(const ScopedOptions&) = delete;
    ScopedOptions& operator=(const ScopedOptions&) = delete;

private:
    pneuma::emu::Options saved_;
};

pneuma::emu::Options with_workers(unsigned workers) {
    pneuma::emu::Options options = pneuma::emu::options();
    options.worker_threads = workers;
    return options;
}

// Runs `launch` and returns the EmulationError message it must throw ("" when it did not throw).
template <class Launch>
std::string emulation_error_of(Launch&& launch) {
    try {
        launch();
    } catch (const EmulationError& error) {
        return error.what();
    }
    return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- Kernels ----

// Without a real barrier, thread 0 would read its mirror slot before thread n-1 wrote it and get
// the emulator's all-one fill (-1).
__global__ void reverse_in_shared(const int* in, int* out) {
    PNEUMA_SHARED(int, tile, 1024);
    const unsigned n = blockDim.x;
    const unsigned t = threadIdx.x;
    const unsigned base = blockIdx.x * n;
    tile[t] = in[base + t];
    __syncthreads();
    out[base + t] = tile[n - 1 - t];
}

// Classic halving tree: log2(n) barriers, each one needed.
__global__ void tree_sum_in_shared(const int* in, int* block_sums) {
    PNEUMA_SHARED(int, partial, 256);
    const unsigned t = kern::linear_thread_index();
    const unsigned n = kern::threads_per_block();
    partial[t] = in[blockIdx.x * n + t];
    __syncthreads();
    for (unsigned half = n / 2; half > 0; half /= 2) {
        if (t < half) partial[t] += partial[t + half];
        __syncthreads();
    }
    if (t == 0) block_sums[blockIdx.x] = partial[0];
}

__global__ void xor_butterfly(const int* in, int* out, int width) {
    const unsigned t = threadIdx.x;
    int value = in[t];
    for (int lane_mask = width / 2; lane_mask > 0; lane_mask /= 2) {
        value += __shfl_xor_sync(kern::warp_member_mask(), value, lane_mask, width);
    }
    out[t] = value;
}

// Down-reduction guarded for a partial last warp: lanes past its end are never added.
__global__ void guarded_down_reduction(const int* in, int* warp_sums) {
    const unsigned t = threadIdx.x;
    const unsigned lane = kern::lane_index();
    const unsigned lanes = kern::lanes_in_warp();
    int value = in[t];
    for (unsigned offset = 16; offset > 0; offset /= 2) {
        const int other = __shfl_down_sync(kern::warp_member_mask(), value, offset);
        if (lane + offset < lanes) value += other;
    }
    if (lane == 0) warp_sums[kern::warp_index()] = value;
}

__global__ void broadcast_and_scan(const int* in, int* broadcast, int* inclusive_scan) {
    const unsigned t = threadIdx.x;
    const unsigned lane = kern::lane_index();
    const unsigned mask = kern::warp_member_mask();
    int value = in[t];
    broadcast[t] = __shfl_sync(mask, value, 3);
    for (unsigned delta = 1; delta < 32; delta *= 2) {
        const int lower = __shfl_up_sync(mask, value, delta);
        if (lane >= delta) value += lower;
    }
    inclusive_scan[t] = value;
}

// One partial warp of 8 lanes: offsets past the warp's end read lanes that do not exist.
__global__ void shuffle_edges(float* past_end, float* within_width) {
    const unsigned t = threadIdx.x;
    const float value = static_cast<float>(t) + 1.0f;
    past_end[t] = __shfl_down_sync(0xffu, value, 4);
    within_width[t] = __shfl_down_sync(0xffu, value, 1, 8);
}

__global__ void votes(unsigned* ballots, int* any_results, int* all_results) {
    const unsigned t = threadIdx.x;
    const unsigned mask = kern::warp_member_mask();
    ballots[t] = __ballot_sync(mask, t % 3 == 0);
    any_results[t] = __any_sync(mask, t == 35);
    all_results[t] = __all_sync(mask, t < 32);
}

// Back-to-back reductions of several types, to check every thread gets every result and the
// shared scratch of one call does not corrupt the next.
__global__ void block_reductions(int* int_sums, int* int_maxes, double* double_sums, float* float_maxes) {
    const unsigned t = kern::linear_thread_index();
    const unsigned n = kern::threads_per_block();
    const unsigned slot = blockIdx.x * n + t;
    const int scrambled = static_cast<int>((t * 7919u) % n);  // a permutation of 0..n-1
    int_sums[slot] = kern::block_reduce_sum(static_cast<int>(t) + 1);
    int_maxes[slot] = kern::block_reduce_max(scrambled);
    double_sums[slot] = kern::block_reduce_sum(0.5 * static_cast<double>(t));
    float_maxes[slot] = kern::block_reduce_max(-static_cast<float>(scrambled) - 1.0f);
    int_sums[slot] += kern::block_reduce_sum(1);  // again right after: adds n
}

__global__ void warp_reductions(int* sums, int* maxes, int valid_lanes) {
    const unsigned t = threadIdx.x;
    sums[t] = kern::warp_reduce_sum(static_cast<int>(t) + 1, static_cast<unsigned>(valid_lanes));
    maxes[t] = kern::warp_reduce_max(static_cast<int>((t * 13u) % 32u));
}

struct AtomicTotals {
    int count = 0;
    unsigned long long id_sum = 0;
    int max_value = -1;
    int min_value = 1 << 30;
    unsigned unsigned_sum = 0;
    float float_count = 0.0f;
    double double_sum = 0.0;
    int cas_count = 0;
};

__global__ void atomic_updates(AtomicTotals* totals) {
    const unsigned id = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(&totals->count, 1);
    atomicAdd(&totals->id_sum, static_cast<unsigned long long>(id));
    atomicMax(&totals->max_value, static_cast<int>((id * 7u) % 10007u));
    atomicMin(&totals->min_value, static_cast<int>(id) + 5);
    atomicAdd(&totals->unsigned_sum, 2u);
    atomicAdd(&totals->float_count, 1.0f);
    atomicAdd(&totals->double_sum, 0.25);
    // The retry loop every CAS-based atomic on a GPU uses.
    int seen = totals->cas_count;
    for (;;) {
        const int previous = atomicCAS(&totals->cas_count, seen, seen + 1);
        if (previous == seen) break;
        seen = previous;
    }
}

__global__ void rotate_in_dynamic_shared(const double* in, double* out, unsigned long long* misaligned) {
    PNEUMA_DYNAMIC_SHARED(double, buffer);
    const unsigned n = blockDim.x;
    const unsigned t = threadIdx.x;
    if (t == 0 && reinterpret_cast<std::uintptr_t>(buffer) % 16 != 0) atomicAdd(misaligned, 1ull);
    buffer[t] = in[blockIdx.x * n + t];
    __syncthreads();
    out[blockIdx.x * n + t] = buffer[(t + 1) % n];
}

struct ThreadRecord {
    unsigned block[3];
    unsigned thread[3];
    unsigned grid_dims[3];
    unsigned block_dims[3];
    int writes;
};

__global__ void record_indices(ThreadRecord* records) {
    const unsigned block_linear = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned slot = block_linear * kern::threads_per_block() + kern::linear_thread_index();
    ThreadRecord& record = records[slot];
    record.block[0] = blockIdx.x;
    record.block[1] = blockIdx.y;
    record.block[2] = blockIdx.z;
    record.thread[0] = threadIdx.x;
    record.thread[1] = threadIdx.y;
    record.thread[2] = threadIdx.z;
    record.grid_dims[0] = gridDim.x;
    record.grid_dims[1] = gridDim.y;
    record.grid_dims[2] = gridDim.z;
    record.block_dims[0] = blockDim.x;
    record.block_dims[1] = blockDim.y;
    record.block_dims[2] = blockDim.z;
    atomicAdd(&record.writes, 1);
}

__global__ void some_threads_exit_before_barrier(int* out) {
    if (blockIdx.x == 1 && threadIdx.x >= 10) return;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

__global__ void barriers_at_different_sites(int* out) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

__global__ void one_thread_waits_at_extra_barrier(int* out) {
    __syncthreads();
    if (threadIdx.x == 0) __syncthreads();
    out[threadIdx.x] = 1;
}

// Half the warp shuffles with a full mask while the other half waits at a barrier.
__global__ void shuffle_against_barrier(int* out) {
    if (threadIdx.x < 16) {
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
    } else {
        __syncthreads();
    }
}

__global__ void shuffle_without_own_lane(int* out) { out[threadIdx.x] = __shfl_sync(0x1u, 7, 0); }

std::atomic<int> live_trackers{0};

struct LiveTracker {
    LiveTracker() { ++live_trackers; }
    ~LiveTracker() { --live_trackers; }
    LiveTracker(const LiveTracker&) = delete;
    LiveTracker& operator=(const LiveTracker&) = delete;
};

// The throwing thread leaves the others waiting at the barrier: they must be unwound, not leaked.
__global__ void throw_in_one_thread(int* out, unsigned throwing_block, unsigned throwing_thread) {
    const LiveTracker tracker;
    if (blockIdx.x >= throwing_block && threadIdx.x == throwing_thread) {
        throw std::runtime_error("boom from block " + std::to_string(blockIdx.x));
    }
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

__global__ void empty_kernel() {}

__global__ void launches_a_kernel() { PNEUMA_LAUNCH(empty_kernel, 1, 1, 0, nullptr); }

__global__ void too_much_static_shared(double* out) {
    PNEUMA_SHARED(double, big, 7000);  // 56000 bytes, over 48 KiB
    big[threadIdx.x] = 1.0;
    out[threadIdx.x] = big[threadIdx.x];
}

__global__ void barriers_and_reduction(float* out) {
    PNEUMA_SHARED(float, tile, 1024);
    const unsigned t = threadIdx.x;
    const unsigned n = blockDim.x;
    tile[t] = static_cast<float>(t);
    __syncthreads();
    float value = tile[n - 1 - t];
    __syncthreads();
    tile[t] = value * 2.0f;
    __syncthreads();
    value = tile[(t + 1) % n];
    out[t] = kern::block_reduce_sum(value);
}

std::vector<int> iota_plus_one(std::size_t count) {
    std::vector<int> values(count);
    std::iota(values.begin(), values.end(), 1);
    return values;
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulator: __syncthreads is a real barrier (shared-memory reversal)") {
    for (const unsigned threads : {1u, 31u, 100u, 1024u}) {
        CAPTURE(threads);
        const unsigned blocks = 3;
        std::vector<int> in(blocks * threads);
        std::iota(in.begin(), in.end(), 0);
        std::vector<int> out(in.size(), -7);
        PNEUMA_LAUNCH(reverse_in_shared, blocks, threads, 0, nullptr, in.data(), out.data());
        for (unsigned b = 0; b < blocks; ++b) {
            for (unsigned t = 0; t < threads; ++t) {
                REQUIRE(out[b * threads + t] == in[b * threads + (threads - 1 - t)]);
            }
        }
    }
}

TEST_CASE("emulator: tree reduction in shared memory over 1-D and 2-D blocks") {
    for (const Dim3 block : {Dim3(256), Dim3(16, 16), Dim3(4, 8, 8)}) {
        const unsigned threads = block.x * block.y * block.z;
        const unsigned blocks = 5;
        const std::vector<int> in = iota_plus_one(blocks * threads);
        std::vector<int> sums(blocks, 0);
        PNEUMA_LAUNCH(tree_sum_in_shared, blocks, block, 0, nullptr, in.data(), sums.data());
        for (unsigned b = 0; b < blocks; ++b) {
            const long long first = static_cast<long long>(b) * threads + 1;
            const long long last = first + threads - 1;
            CHECK(sums[b] == (first + last) * threads / 2);
        }
    }
}

TEST_CASE("emulator: xor butterfly gives every lane its segment's sum") {
    struct Case {
        unsigned threads;
        int width;
    };
    for (const Case c : {Case{48, 16}, Case{96, 32}, Case{40, 8}, Case{7, 1}}) {
        CAPTURE(c.threads);
        CAPTURE(c.width);
        const std::vector<int> in = iota_plus_one(c.threads);
        std::vector<int> out(c.threads, 0);
        PNEUMA_LAUNCH(xor_butterfly, 1, c.threads, 0, nullptr, in.data(), out.data(), c.width);
        for (unsigned t = 0; t < c.threads; ++t) {
            const unsigned first = t / static_cast<unsigned>(c.width) * static_cast<unsigned>(c.width);
            int expected = 0;
            for (unsigned i = first; i < first + static_cast<unsigned>(c.width); ++i) expected += in[i];
            REQUIRE(out[t] == expected);
        }
    }
}

TEST_CASE("emulator: guarded down-reduction handles a partial last warp") {
    for (const unsigned threads : {1u, 13u, 32u, 45u, 100u}) {
        CAPTURE(threads);
        const std::vector<int> in = iota_plus_one(threads);
        const unsigned warps = (threads + 31) / 32;
        std::vector<int> sums(warps, 0);
        PNEUMA_LAUNCH(guarded_down_reduction, 1, threads, 0, nullptr, in.data(), sums.data());
        for (unsigned w = 0; w < warps; ++w) {
            const unsigned end = std::min(threads, (w + 1) * 32);
            CHECK(sums[w] == std::accumulate(in.begin() + w * 32, in.begin() + end, 0));
        }
    }
}

TEST_CASE("emulator: index broadcast and up-shuffle inclusive scan") {
    const unsigned threads = 40;  // the second warp has 8 lanes
    const std::vector<int> in = iota_plus_one(threads);
    std::vector<int> broadcast(threads, 0);
    std::vector<int> scan(threads, 0);
    PNEUMA_LAUNCH(broadcast_and_scan, 1, threads, 0, nullptr, in.data(), broadcast.data(), scan.data());
    for (unsigned t = 0; t < threads; ++t) {
        const unsigned warp_start = t / 32 * 32;
        CHECK(broadcast[t] == in[warp_start + 3]);
        CHECK(scan[t] == std::accumulate(in.begin() + warp_start, in.begin() + t + 1, 0));
    }
}

TEST_CASE("emulator: shuffles past the warp's end read NaN - past the width their own value") {
    std::vector<float> past_end(8, 0.0f);
    std::vector<float> within_width(8, 0.0f);
    PNEUMA_LAUNCH(shuffle_edges, 1, 8, 0, nullptr, past_end.data(), within_width.data());
    for (unsigned t = 0; t < 8; ++t) {
        CAPTURE(t);
        if (t < 4) {
            CHECK(past_end[t] == static_cast<float>(t + 5));
        } else {
            CHECK(std::isnan(past_end[t]));  // lanes 8..11 do not exist
        }
        CHECK(within_width[t] == static_cast<float>(t < 7 ? t + 2 : t + 1));
    }
}

TEST_CASE("emulator: ballot - any and all") {
    const unsigned threads = 40;
    std::vector<unsigned> ballots(threads, 0);
    std::vector<int> any_results(threads, -1);
    std::vector<int> all_results(threads, -1);
    PNEUMA_LAUNCH(votes, 1, threads, 0, nullptr, ballots.data(), any_results.data(), all_results.data());
    for (unsigned t = 0; t < threads; ++t) {
        const unsigned warp_start = t / 32 * 32;
        unsigned expected = 0;
        for (unsigned u = warp_start; u < std::min(threads, warp_start + 32); ++u) {
            if (u % 3 == 0) expected |= 1u << (u - warp_start);
        }
        CHECK(ballots[t] == expected);
        CHECK(any_results[t] == (warp_start == 32 ? 1 : 0));
        CHECK(all_results[t] == (warp_start == 0 ? 1 : 0));
    }
}

TEST_CASE("emulator: block reductions for block sizes 1 to 1024") {
    for (const Dim3 block : {Dim3(1), Dim3(31), Dim3(32), Dim3(33), Dim3(256), Dim3(1024), Dim3(5, 3, 3), Dim3(8, 4, 2)}) {
        const unsigned n = block.x * block.y * block.z;
        CAPTURE(n);
        const unsigned blocks = 2;
        std::vector<int> int_sums(blocks * n, 0);
        std::vector<int> int_maxes(blocks * n, 0);
        std::vector<double> double_sums(blocks * n, 0.0);
        std::vector<float> float_maxes(blocks * n, 0.0f);
        PNEUMA_LAUNCH(block_reductions, blocks, block, 0, nullptr, int_sums.data(), int_maxes.data(),
                      double_sums.data(), float_maxes.data());
        const int expected_sum = static_cast<int>(n * (n + 1) / 2 + n);
        const double expected_double_sum = 0.25 * n * (n - 1);  // exact in binary
        for (unsigned i = 0; i < blocks * n; ++i) {
            REQUIRE(int_sums[i] == expected_sum);
            REQUIRE(int_maxes[i] == static_cast<int>(n) - 1);
            REQUIRE(double_sums[i] == expected_double_sum);
            REQUIRE(float_maxes[i] == -1.0f);
        }
    }
}

TEST_CASE("emulator: warp reductions over all or only the first lanes") {
    std::vector<int> sums(32, 0);
    std::vector<int> maxes(32, 0);
    PNEUMA_LAUNCH(warp_reductions, 1, 32, 0, nullptr, sums.data(), maxes.data(), 10);
    for (unsigned t = 0; t < 32; ++t) {
        CHECK(sums[t] == 55);  // 1 + ... + 10
        CHECK(maxes[t] == 31);
    }
    PNEUMA_LAUNCH(warp_reductions, 1, 32, 0, nullptr, sums.data(), maxes.data(), 32);
    CHECK(sums[17] == 528);
}

TEST_CASE("emulator: atomics are exact across many blocks and OS threads") {
    for (const unsigned workers : {1u, 4u}) {
        CAPTURE(workers);
        const ScopedOptions scoped(with_workers(workers));
        const unsigned blocks = 300;
        const unsigned threads = 128;
        const unsigned total = blocks * threads;
        AtomicTotals totals;
        PNEUMA_LAUNCH(atomic_updates, blocks, threads, 0, nullptr, &totals);
        CHECK(totals.count == static_cast<int>(total));
        CHECK(totals.id_sum == static_cast<unsigned long long>(total) * (total - 1) / 2);
        CHECK(totals.max_value == 10006);
        CHECK(totals.min_value == 5);
        CHECK(totals.unsigned_sum == 2 * total);
        CHECK(totals.float_count == static_cast<float>(total));
        CHECK(totals.double_sum == 0.25 * total);
        CHECK(totals.cas_count == static_cast<int>(total));
    }
}

TEST_CASE("emulator: dynamic shared memory") {
    const unsigned blocks = 4;
    for (const unsigned threads : {1u, 33u, 512u}) {
        CAPTURE(threads);
        std::vector<double> in(blocks * threads);
        for (std::size_t i = 0; i < in.size(); ++i) in[i] = 0.5 * static_cast<double>(i);
        std::vector<double> out(in.size(), 0.0);
        unsigned long long misaligned = 0;
        PNEUMA_LAUNCH(rotate_in_dynamic_shared, blocks, threads, threads * sizeof(double), nullptr, in.data(),
                      out.data(), &misaligned);
        CHECK(misaligned == 0);
        for (unsigned b = 0; b < blocks; ++b) {
            for (unsigned t = 0; t < threads; ++t) {
                REQUIRE(out[b * threads + t] == in[b * threads + (t + 1) % threads]);
            }
        }
    }
    std::vector<double> big(64);
    unsigned long long misaligned = 0;
    const std::string message = emulation_error_of([&] {
        PNEUMA_LAUNCH(rotate_in_dynamic_shared, 1, 64, 64 * 1024, nullptr, big.data(), big.data(), &misaligned);
    });
    CHECK(contains(message, "dynamic shared memory"));
}

TEST_CASE("emulator: multi-dimensional grid and block indices") {
    const Dim3 grid(3, 2, 2);
    const Dim3 block(4, 3, 2);
    const unsigned threads = block.x * block.y * block.z;
    std::vector<ThreadRecord> records(grid.x * grid.y * grid.z * threads, ThreadRecord{});
    PNEUMA_LAUNCH(record_indices, grid, block, 0, nullptr, records.data());
    unsigned slot = 0;
    for (unsigned bz = 0; bz < grid.z; ++bz) {
        for (unsigned by = 0; by < grid.y; ++by) {
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                for (unsigned tz = 0; tz < block.z; ++tz) {
                    for (unsigned ty = 0; ty < block.y; ++ty) {
                        for (unsigned tx = 0; tx < block.x; ++tx, ++slot) {
                            const ThreadRecord& r = records[slot];
                            REQUIRE(r.writes == 1);
                            CHECK((r.block[0] == bx && r.block[1] == by && r.block[2] == bz));
                            CHECK((r.thread[0] == tx && r.thread[1] == ty && r.thread[2] == tz));
                            CHECK((r.grid_dims[0] == 3 && r.grid_dims[1] == 2 && r.grid_dims[2] == 2));
                            CHECK((r.block_dims[0] == 4 && r.block_dims[1] == 3 && r.block_dims[2] == 2));
                        }
                    }
                }
            }
        }
    }
}

TEST_CASE("emulator: threads that exit before a barrier others wait at are reported") {
    std::vector<int> out(3 * 64, 0);
    const std::string message = emulation_error_of(
        [&] { PNEUMA_LAUNCH(some_threads_exit_before_barrier, 3, 64, 0, nullptr, out.data()); });
    CAPTURE(message);
    CHECK(contains(message, "some_threads_exit_before_barrier"));
    CHECK(contains(message, "grid (3,1,1)"));
    CHECK(contains(message, "block (64,1,1)"));
    CHECK(contains(message, "block (1,0,0)"));
    CHECK(contains(message, "10 wait at __syncthreads()"));
    CHECK(contains(message, "54 exited"));
}

TEST_CASE("emulator: threads at different __syncthreads calls are reported") {
    std::vector<int> out(32, 0);
    const std::string message =
        emulation_error_of([&] { PNEUMA_LAUNCH(barriers_at_different_sites, 1, 32, 0, nullptr, out.data()); });
    CAPTURE(message);
    CHECK(contains(message, "different __syncthreads() calls"));
}

TEST_CASE("emulator: a thread left alone at a barrier is reported") {
    std::vector<int> out(64, 0);
    const std::string message =
        emulation_error_of([&] { PNEUMA_LAUNCH(one_thread_waits_at_extra_barrier, 1, 64, 0, nullptr, out.data()); });
    CAPTURE(message);
    CHECK(contains(message, "1 wait at __syncthreads()"));
    CHECK(contains(message, "63 exited"));
}

TEST_CASE("emulator: an incomplete warp shuffle is reported") {
    std::vector<int> out(32, 0);
    std::string message =
        emulation_error_of([&] { PNEUMA_LAUNCH(shuffle_against_barrier, 1, 32, 0, nullptr, out.data()); });
    CAPTURE(message);
    CHECK(contains(message, "16 wait in a warp shuffle"));
    CHECK(contains(message, "for lanes 0xffff0000"));

    message = emulation_error_of([&] { PNEUMA_LAUNCH(shuffle_without_own_lane, 1, 2, 0, nullptr, out.data()); });
    CHECK(contains(message, "does not name the lane itself"));
}

TEST_CASE("emulator: a kernel thread's exception propagates and every thread unwinds") {
    for (const unsigned workers : {1u, 3u}) {
        CAPTURE(workers);
        const ScopedOptions scoped(with_workers(workers));
        std::vector<int> out(8 * 64, 0);
        bool caught = false;
        try {
            PNEUMA_LAUNCH(throw_in_one_thread, 8, 64, 0, nullptr, out.data(), 2u, 7u);
        } catch (const std::runtime_error& error) {
            caught = true;
            CHECK(std::string(error.what()) == "boom from block 2");  // the lowest failing block
        }
        CHECK(caught);
        CHECK(live_trackers.load() == 0);
        CHECK(std::count(out.begin() + 2 * 64, out.begin() + 3 * 64, 1) == 0);

        // The emulator is usable again afterwards.
        std::fill(out.begin(), out.end(), 0);
        PNEUMA_LAUNCH(throw_in_one_thread, 8, 64, 0, nullptr, out.data(), 100u, 0u);
        CHECK(std::count(out.begin(), out.end(), 1) == 8 * 64);
        CHECK(live_trackers.load() == 0);
    }
}

TEST_CASE("emulator: invalid launches and misuse are rejected") {
    CHECK(contains(emulation_error_of([] { PNEUMA_LAUNCH(empty_kernel, 1, 1025, 0, nullptr); }), "1025 threads"));
    CHECK(contains(emulation_error_of([] { PNEUMA_LAUNCH(empty_kernel, 1, Dim3(32, 32, 2), 0, nullptr); }),
                   "2048 threads"));
    CHECK(contains(emulation_error_of([] { PNEUMA_LAUNCH(empty_kernel, 1, Dim3(1, 1, 65), 0, nullptr); }),
                   "block dimension"));
    CHECK(contains(emulation_error_of([] { PNEUMA_LAUNCH(empty_kernel, 0, 32, 0, nullptr); }), "zero"));
    CHECK(contains(emulation_error_of([] { PNEUMA_LAUNCH(launches_a_kernel, 1, 1, 0, nullptr); }),
                   "dynamic parallelism"));
    std::vector<double> out(4);
    CHECK(contains(emulation_error_of([&] { PNEUMA_LAUNCH(too_much_static_shared, 1, 4, 0, nullptr, out.data()); }),
                   "static shared memory"));
    CHECK_THROWS_AS(static_cast<void>(threadIdx), EmulationError);
    CHECK_FALSE(pneuma::emu::in_kernel());
}

TEST_CASE("emulator: a 1024-thread block with barriers runs in milliseconds") {
    std::vector<float> out(1024, 0.0f);
    PNEUMA_LAUNCH(barriers_and_reduction, 1, 1024, 0, nullptr, out.data());  // warm the stack pool
    const auto start = std::chrono::steady_clock::now();
    PNEUMA_LAUNCH(barriers_and_reduction, 1, 1024, 0, nullptr, out.data());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE("1024-thread block, 3 barriers and a block reduction: " << seconds * 1e3 << " ms");
    CHECK(out[0] == 2.0f * 1023.0f * 1024.0f / 2.0f);
    CHECK(out[1023] == out[0]);
#if defined(__SANITIZE_ADDRESS__)
    const double limit_seconds = 5.0;  // ASan with detect_stack_use_after_return gives every fiber a fake stack
#else
    const double limit_seconds = 1.0;  // generous for a loaded CI machine; it takes a few ms
#endif
    CHECK(seconds < limit_seconds);
}

TEST_CASE("emulator: launches from several host threads at once") {
    const ScopedOptions scoped(with_workers(2));
    constexpr int kHostThreads = 3;
    std::vector<std::vector<float>> results(kHostThreads, std::vector<float>(256, 0.0f));
    {
        std::vector<std::jthread> host_threads;
        for (int h = 0; h < kHostThreads; ++h) {
            host_threads.emplace_back([&results, h] {
                for (int repeat = 0; repeat < 5; ++repeat) {
                    PNEUMA_LAUNCH(barriers_and_reduction, 1, 256, 0, nullptr, results[static_cast<std::size_t>(h)].data());
                }
            });
        }
    }
    for (const std::vector<float>& out : results) {
        CHECK(out[0] == 255.0f * 256.0f);
        CHECK(out[255] == out[0]);
    }
}

}  // TEST_SUITE
