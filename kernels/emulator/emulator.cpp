#include "emulator.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define PNEUMA_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PNEUMA_EMU_ASAN 1
#endif
#endif

#if defined(PNEUMA_EMU_ASAN)
#include <sanitizer/common_interface_defs.h>
// For code that runs while a stack switch is half done, or whose frame never returns: with
// detect_stack_use_after_return its frame would live on a fake stack that the switch saves away
// or releases underneath it.
#define PNEUMA_EMU_NO_ASAN __attribute__((no_sanitize_address))
#else
#define PNEUMA_EMU_NO_ASAN
#endif

namespace pneuma::emu {
namespace {

constexpr unsigned kWarpSize = 32;
constexpr unsigned kAllLanes = 0xffffffffu;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDimX = 1024;
constexpr unsigned kMaxBlockDimY = 1024;
constexpr unsigned kMaxBlockDimZ = 64;
constexpr unsigned kMaxGridDimX = 2147483647u;
constexpr unsigned kMaxGridDimYZ = 65535;
constexpr std::size_t kMaxStaticSharedBytes = 48 * 1024;
constexpr std::size_t kDynamicSharedAlignment = 16;
constexpr unsigned char kUninitialisedByte = 0xff;  // NaN in every float/double built from it
constexpr std::uint64_t kUndefinedShuffleBits = ~std::uint64_t{0};

// ---------------------------------------------------------------------------------------------
// Options

std::mutex options_mutex;
Options current_options;

unsigned default_worker_threads() {
    return std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
}

// ---------------------------------------------------------------------------------------------
// Text for error messages

std::string to_string(const Dim3& d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

std::string to_string(const Uint3& d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

std::string to_string(const std::source_location& site) {
    return std::string(site.file_name()) + ":" + std::to_string(site.line()) + ":" + std::to_string(site.column());
}

std::string hex_mask(unsigned mask) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", mask);
    return text;
}

// ---------------------------------------------------------------------------------------------
// AddressSanitizer must be told whenever execution moves to another stack, or it reports false
// stack-buffer overflows and loses track of fake stacks.

struct StackBounds {
    const void* bottom = nullptr;
    std::size_t size = 0;
};

PNEUMA_EMU_NO_ASAN inline void before_stack_switch([[maybe_unused]] void** fake_stack_save, [[maybe_unused]] StackBounds target) {
#if defined(PNEUMA_EMU_ASAN)
    __sanitizer_start_switch_fiber(fake_stack_save, target.bottom, target.size);
#endif
}

PNEUMA_EMU_NO_ASAN inline void after_stack_switch([[maybe_unused]] void* fake_stack_save, [[maybe_unused]] StackBounds* previous) {
#if defined(PNEUMA_EMU_ASAN)
    const void* bottom = nullptr;
    std::size_t size = 0;
    __sanitizer_finish_switch_fiber(fake_stack_save, &bottom, &size);
    if (previous != nullptr) *previous = StackBounds{bottom, size};
#endif
}

// ---------------------------------------------------------------------------------------------
// Fiber stacks: anonymous mappings with a guard page below, so that an overflow faults instead of
// silently overwriting a neighbour's stack.

class FiberStack {
public:
    explicit FiberStack(std::size_t usable_bytes) {
        const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        usable_bytes_ = (usable_bytes + page - 1) / page * page;
        mapping_bytes_ = usable_bytes_ + page;
        mapping_ = ::mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (mapping_ == MAP_FAILED) {
            throw std::system_error(errno, std::generic_category(), "pneuma::emu: cannot map a fiber stack");
        }
        if (::mprotect(mapping_, page, PROT_NONE) != 0) {
            const int error = errno;
            ::munmap(mapping_, mapping_bytes_);
            throw std::system_error(error, std::generic_category(), "pneuma::emu: cannot protect a fiber stack");
        }
        bottom_ = static_cast<char*>(mapping_) + page;
    }
    FiberStack(FiberStack&& other) noexcept
        : mapping_(std::exchange(other.mapping_, nullptr)),
          mapping_bytes_(other.mapping_bytes_),
          usable_bytes_(other.usable_bytes_),
          bottom_(other.bottom_) {}
    FiberStack& operator=(FiberStack&& other) noexcept {
        if (this != &other) {
            release();
            mapping_ = std::exchange(other.mapping_, nullptr);
            mapping_bytes_ = other.mapping_bytes_;
            usable_bytes_ = other.usable_bytes_;
            bottom_ = other.bottom_;
        }
        return *this;
    }
    FiberStack(const FiberStack&) = delete;
    FiberStack& operator=(const FiberStack&) = delete;
    ~FiberStack() { release(); }

    void* bottom() const { return bottom_; }
    std::size_t size() const { return usable_bytes_; }

private:
    void release() {
        if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
        mapping_ = nullptr;
    }

    void* mapping_ = nullptr;
    std::size_t mapping_bytes_ = 0;
    std::size_t usable_bytes_ = 0;
    void* bottom_ = nullptr;
};

// Mapping a thousand stacks per launch would dominate the cost of small launches, so stacks are
// kept for the next launch.
class StackPool {
public:
    std::vector<FiberStack> acquire(std::size_t count, std::size_t usable_bytes) {
        std::vector<FiberStack> stacks;
        stacks.reserve(count);
        {
            std::lock_guard lock(mutex_);
            if (usable_bytes != stack_bytes_) {
                free_.clear();
                stack_bytes_ = usable_bytes;
            }
            while (stacks.size() < count && !free_.empty()) {
                stacks.push_back(std::move(free_.back()));
                free_.pop_back();
            }
        }
        while (stacks.size() < count) stacks.emplace_back(usable_bytes);
        return stacks;
    }

    void release(std::vector<FiberStack>& stacks, std::size_t usable_bytes) {
        std::lock_guard lock(mutex_);
        if (usable_bytes != stack_bytes_) return;  // options changed meanwhile: let them unmap
        for (FiberStack& stack : stacks) free_.push_back(std::move(stack));
        stacks.clear();
    }

private:
    std::mutex mutex_;
    std::size_t stack_bytes_ = 0;
    std::vector<FiberStack> free_;
};

StackPool& stack_pool() {
    static StackPool pool;
    return pool;
}

// ---------------------------------------------------------------------------------------------
// Shared memory buffers

class AlignedBuffer {
public:
    AlignedBuffer(std::size_t bytes, std::size_t alignment)
        : data_(::operator new(bytes, std::align_val_t(alignment))), alignment_(alignment) {
        std::memset(data_, kUninitialisedByte, bytes);
    }
    AlignedBuffer(AlignedBuffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), alignment_(other.alignment_) {}
    AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
        if (this != &other) {
            release();
            data_ = std::exchange(other.data_, nullptr);
            alignment_ = other.alignment_;
        }
        return *this;
    }
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer() { release(); }

    void* data() const { return data_; }

private:
    void release() {
        if (data_ != nullptr) ::operator delete(data_, std::align_val_t(alignment_));
        data_ = nullptr;
    }

    void* data_ = nullptr;
    std::size_t alignment_ = 1;
};

struct StaticSharedBuffer {
    const void* site_key;
    AlignedBuffer buffer;
};

// ---------------------------------------------------------------------------------------------
// The launch, the emulated threads, their warps

struct LaunchConfig {
    LaunchSite site;
    Dim3 grid;
    Dim3 block;
    std::size_t dynamic_shared_bytes = 0;
    detail::KernelBody body = nullptr;
    const void* closure = nullptr;
    unsigned threads_per_block = 0;
    std::uint64_t block_count = 0;

    std::string describe() const {
        std::string text = "kernel " + std::string(site.kernel_name);
        if (site.file != nullptr && site.file[0] != '\0') {
            text += " launched at " + std::string(site.file) + ":" + std::to_string(site.line);
        }
        return text + " with grid " + to_string(grid) + ", block " + to_string(block) +
               ", dynamic shared memory " + std::to_string(dynamic_shared_bytes) + " bytes";
    }
};

// Thrown into a suspended thread to unwind its stack once its block cannot finish. Deliberately
// not a std::exception, so that kernel code catching std::exception does not swallow it.
struct ThreadCancelled {};

enum class ThreadState { NotStarted, Ready, Running, Waiting, Finished };
enum class WaitTarget { Nothing, Barrier, Warp };

struct KernelThread {
    Uint3 index;
    unsigned lane = 0;
    unsigned warp = 0;
    ThreadState state = ThreadState::NotStarted;
    WaitTarget waiting_on = WaitTarget::Nothing;
    bool cancel_requested = false;
    ucontext_t context{};
    FiberStack* stack = nullptr;
    void* asan_fake_stack = nullptr;
};

// One collective warp operation in flight: the lanes named in `mask` deposit their value, and
// all of them read once every live lane of the mask has deposited.
struct WarpExchange {
    unsigned mask = 0;
    unsigned arrived = 0;
    unsigned readers_left = 0;
    bool complete = false;
    std::array<std::uint64_t, kWarpSize> values{};
};

struct WarpState {
    unsigned existing_lanes = 0;  // a partial last warp has fewer than 32
    unsigned exited_lanes = 0;
    std::vector<WarpExchange*> exchanges;  // in flight, owned by the runner's exchange pool
};

struct BarrierState {
    unsigned arrived = 0;
    std::source_location site;
};

bool same_site(const std::source_location& a, const std::source_location& b) {
    return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

Uint3 unflatten(std::uint64_t linear, const Dim3& extent) {
    Uint3 index;
    index.x = static_cast<unsigned>(linear % extent.x);
    linear /= extent.x;
    index.y = static_cast<unsigned>(linear % extent.y);
    index.z = static_cast<unsigned>(linear / extent.y);
    return index;
}

unsigned lanes_mask(unsigned count) {
    return count >= kWarpSize ? kAllLanes : (1u << count) - 1u;
}

class BlockRunner;

thread_local BlockRunner* tls_runner = nullptr;
thread_local KernelThread* tls_thread = nullptr;

// Runs the blocks of one launch, one after another, on the calling OS thread.
class BlockRunner {
public:
    BlockRunner(const LaunchConfig& launch, std::size_t fiber_stack_bytes)
        : launch_(launch),
          fiber_stack_bytes_(fiber_stack_bytes),
          stacks_(stack_pool().acquire(launch.threads_per_block, fiber_stack_bytes)),
          threads_(launch.threads_per_block),
          ready_ring_(launch.threads_per_block),
          warps_((launch.threads_per_block + kWarpSize - 1) / kWarpSize) {
        for (unsigned t = 0; t < threads_.size(); ++t) {
            KernelThread& thread = threads_[t];
            thread.index = unflatten(t, launch.block);
            thread.lane = t % kWarpSize;
            thread.warp = t / kWarpSize;
            thread.stack = &stacks_[t];
            initialise_context(thread.context);
        }
        for (unsigned w = 0; w < warps_.size(); ++w) {
            warps_[w].existing_lanes = lanes_mask(launch.threads_per_block - w * kWarpSize);
        }
    }

    BlockRunner(const BlockRunner&) = delete;
    BlockRunner& operator=(const BlockRunner&) = delete;

    ~BlockRunner() { stack_pool().release(stacks_, fiber_stack_bytes_); }

    const LaunchConfig& launch() const { return launch_; }
    const Uint3& block_index() const { return block_index_; }

    // Runs one block to completion. Returns what ended it abnormally: a kernel thread's own
    // exception or an EmulationError; by then every fiber of the block has unwound.
    std::exception_ptr run(std::uint64_t linear_block) {
        start_block(linear_block);
        BlockRunner* const previous_runner = std::exchange(tls_runner, this);
        run_until_no_thread_is_ready();
        if (!block_error_ && finished_count_ < threads_.size()) {
            block_error_ = std::make_exception_ptr(EmulationError(describe_stalled_block()));
        }
        if (block_error_) {
            cancel_unfinished_threads();
            run_until_no_thread_is_ready();
        }
        tls_runner = previous_runner;
        static_shared_.clear();
        dynamic_shared_.reset();
        return block_error_;
    }

    // ---- Called from kernel threads ----

    void sync_threads(KernelThread& self, const std::source_location& site) {
        if (self.cancel_requested) {
            throw_if_cancelled(self);
            return;
        }
        if (barrier_.arrived == 0) {
            barrier_.site = site;
        } else if (!same_site(site, barrier_.site)) {
            fail(self, "threads of one block wait at different __syncthreads() calls (" + to_string(barrier_.site) +
                           " and " + to_string(site) +
                           "); every thread of a block must reach the same barrier");
        }
        if (++barrier_.arrived == threads_.size()) {
            barrier_.arrived = 0;
            // All other threads are suspended at this barrier: none has finished, or the count
            // could not have been reached.
            for (KernelThread& thread : threads_) {
                if (&thread != &self) make_ready(thread);
            }
            return;
        }
        wait(self, WaitTarget::Barrier);
    }

    std::uint64_t shuffle(KernelThread& self, unsigned mask, std::uint64_t bits, ShuffleMode mode, int operand,
                          int width) {
        if (width <= 0 || width > static_cast<int>(kWarpSize) || !std::has_single_bit(static_cast<unsigned>(width))) {
            fail(self, "warp shuffle width " + std::to_string(width) + " is not a power of two in [1, 32]");
        }
        WarpExchange* exchange = join_exchange(self, mask, bits);
        if (exchange == nullptr) return kUndefinedShuffleBits;
        const unsigned source = source_lane(self.lane, mode, operand, static_cast<unsigned>(width));
        const std::uint64_t result =
            (exchange->arrived >> source) & 1u ? exchange->values[source] : kUndefinedShuffleBits;
        leave_exchange(self, exchange);
        return result;
    }

    unsigned ballot(KernelThread& self, unsigned mask, bool predicate) {
        WarpExchange* exchange = join_exchange(self, mask, predicate ? 1 : 0);
        if (exchange == nullptr) return 0;
        unsigned votes = 0;
        for (unsigned lane = 0; lane < kWarpSize; ++lane) {
            if (((exchange->arrived >> lane) & 1u) && exchange->values[lane] != 0) votes |= 1u << lane;
        }
        leave_exchange(self, exchange);
        return votes;
    }

    void* static_shared(KernelThread& self, const void* site_key, std::size_t bytes, std::size_t alignment) {
        for (StaticSharedBuffer& shared : static_shared_) {
            if (shared.site_key == site_key) return shared.buffer.data();
        }
        if (static_shared_bytes_ + bytes > kMaxStaticSharedBytes) {
            fail(self, "static shared memory of the block would reach " + std::to_string(static_shared_bytes_ + bytes) +
                           " bytes, over the " + std::to_string(kMaxStaticSharedBytes) + "-byte limit");
        }
        static_shared_bytes_ += bytes;
        static_shared_.push_back(StaticSharedBuffer{site_key, AlignedBuffer(bytes, alignment)});
        return static_shared_.back().buffer.data();
    }

    void* dynamic_shared() const { return dynamic_shared_->data(); }

    [[noreturn]] void fail(const KernelThread& self, const std::string& what) const {
        throw EmulationError("pneuma::emu: " + launch_.describe() + ": block " + to_string(block_index_) +
                             ", thread " + to_string(self.index) + ": " + what);
    }

private:
    // makecontext needs a context that getcontext filled once; later blocks reuse it. Kept out of
    // line because getcontext returns twice, which would make the caller's locals unreliable.
    [[gnu::noinline]] static void initialise_context(ucontext_t& context) {
        if (::getcontext(&context) != 0) {
            throw std::system_error(errno, std::generic_category(), "pneuma::emu: getcontext failed");
        }
    }

    void start_block(std::uint64_t linear_block) {
        block_index_ = unflatten(linear_block, launch_.grid);
        barrier_ = BarrierState{};
        for (WarpState& warp : warps_) {
            warp.exited_lanes = 0;
            for (WarpExchange* exchange : warp.exchanges) spare_exchanges_.push_back(exchange);
            warp.exchanges.clear();
        }
        static_shared_.clear();
        static_shared_bytes_ = 0;
        dynamic_shared_.emplace(launch_.dynamic_shared_bytes, kDynamicSharedAlignment);
        block_error_ = nullptr;
        finished_count_ = 0;
        ready_head_ = 0;
        ready_count_ = 0;
        for (KernelThread& thread : threads_) {
            thread.state = ThreadState::NotStarted;
            thread.waiting_on = WaitTarget::Nothing;
            thread.cancel_requested = false;
            thread.asan_fake_stack = nullptr;
            thread.context.uc_stack.ss_sp = thread.stack->bottom();
            thread.context.uc_stack.ss_size = thread.stack->size();
            thread.context.uc_link = nullptr;
            ::makecontext(&thread.context, &BlockRunner::fiber_entry, 0);
            push_ready(thread);
        }
    }

    void push_ready(KernelThread& thread) {
        ready_ring_[(ready_head_ + ready_count_) % ready_ring_.size()] = &thread;
        ++ready_count_;
    }

    KernelThread& pop_ready() {
        KernelThread& thread = *ready_ring_[ready_head_];
        ready_head_ = (ready_head_ + 1) % ready_ring_.size();
        --ready_count_;
        return thread;
    }

    void make_ready(KernelThread& thread) {
        thread.state = ThreadState::Ready;
        thread.waiting_on = WaitTarget::Nothing;
        push_ready(thread);
    }

    void run_until_no_thread_is_ready() {
        while (ready_count_ > 0) {
            KernelThread& thread = pop_ready();
            if (thread.state == ThreadState::NotStarted && block_error_) {
                mark_finished(thread);  // nothing on its stack yet, nothing to unwind
                continue;
            }
            resume(thread);
            if (block_error_ && !cancelling_) cancel_unfinished_threads();
        }
        cancelling_ = false;
    }

    // Waiting threads are woken with cancel_requested set, so that the wait they are suspended in
    // throws ThreadCancelled and their stack unwinds. Threads already in the ready queue see the
    // flag when they resume.
    void cancel_unfinished_threads() {
        cancelling_ = true;
        for (KernelThread& thread : threads_) {
            if (thread.state == ThreadState::Finished) continue;
            thread.cancel_requested = true;
            if (thread.state == ThreadState::Waiting) make_ready(thread);
        }
    }

    void resume(KernelThread& thread) {
        thread.state = ThreadState::Running;
        tls_thread = &thread;
        before_stack_switch(&scheduler_fake_stack_, StackBounds{thread.stack->bottom(), thread.stack->size()});
        ::swapcontext(&scheduler_context_, &thread.context);
        after_stack_switch(scheduler_fake_stack_, nullptr);
        tls_thread = nullptr;
    }

    void wait(KernelThread& self, WaitTarget target) {
        self.state = ThreadState::Waiting;
        self.waiting_on = target;
        before_stack_switch(&self.asan_fake_stack, scheduler_stack_);
        ::swapcontext(&self.context, &scheduler_context_);
        after_stack_switch(self.asan_fake_stack, &scheduler_stack_);
        throw_if_cancelled(self);
    }

    static void throw_if_cancelled(const KernelThread& self) {
        // A destructor that synchronises while its stack unwinds must not throw again.
        if (self.cancel_requested && std::uncaught_exceptions() == 0) throw ThreadCancelled{};
    }

    PNEUMA_EMU_NO_ASAN static void fiber_entry() {
        BlockRunner& runner = *tls_runner;
        KernelThread& self = *tls_thread;
        after_stack_switch(nullptr, &runner.scheduler_stack_);
        runner.run_kernel_thread();
        runner.mark_finished(self);
        // nullptr: this fiber's fake stack can be released, it never runs again.
        before_stack_switch(nullptr, runner.scheduler_stack_);
        ::setcontext(&runner.scheduler_context_);
    }

    void run_kernel_thread() {
        std::exception_ptr error;
        try {
            launch_.body(launch_.closure);
        } catch (const ThreadCancelled&) {
        } catch (...) {
            error = std::current_exception();
        }
        if (error && !block_error_) block_error_ = error;
    }

    void mark_finished(KernelThread& self) {
        self.state = ThreadState::Finished;
        ++finished_count_;
        WarpState& warp = warps_[self.warp];
        warp.exited_lanes |= 1u << self.lane;
        // Exited lanes are no longer waited for, which may complete a collective in flight.
        for (WarpExchange* exchange : warp.exchanges) {
            if (!exchange->complete) try_complete(warp, *exchange, nullptr);
        }
    }

    // Deposits `bits` in the warp's open collective with this mask (starting one if needed) and
    // returns once it is complete; nullptr when the thread is unwinding after cancellation.
    WarpExchange* join_exchange(KernelThread& self, unsigned mask, std::uint64_t bits) {
        if (self.cancel_requested) {
            throw_if_cancelled(self);
            return nullptr;
        }
        const unsigned lane_bit = 1u << self.lane;
        if ((mask & lane_bit) == 0) {
            fail(self, "warp lane " + std::to_string(self.lane) + " calls a warp collective with mask " +
                           hex_mask(mask) + ", which does not name the lane itself");
        }
        WarpState& warp = warps_[self.warp];
        WarpExchange* exchange = nullptr;
        for (WarpExchange* open : warp.exchanges) {
            if (!open->complete && open->mask == mask && (open->arrived & lane_bit) == 0) {
                exchange = open;
                break;
            }
        }
        if (exchange == nullptr) {
            exchange = new_exchange();
            exchange->mask = mask;
            warp.exchanges.push_back(exchange);
        }
        exchange->values[self.lane] = bits;
        exchange->arrived |= lane_bit;
        if (!try_complete(warp, *exchange, &self)) wait(self, WaitTarget::Warp);
        return exchange;
    }

    void leave_exchange(const KernelThread& self, WarpExchange* exchange) {
        if (--exchange->readers_left > 0) return;
        std::vector<WarpExchange*>& open = warps_[self.warp].exchanges;
        open.erase(std::find(open.begin(), open.end(), exchange));
        spare_exchanges_.push_back(exchange);
    }

    bool try_complete(const WarpState& warp, WarpExchange& exchange, const KernelThread* arriving) {
        const unsigned live_members = exchange.mask & warp.existing_lanes & ~warp.exited_lanes;
        if ((live_members & ~exchange.arrived) != 0) return false;
        exchange.complete = true;
        exchange.readers_left = static_cast<unsigned>(std::popcount(exchange.arrived));
        const unsigned first_thread = static_cast<unsigned>(&warp - warps_.data()) * kWarpSize;
        for (unsigned lane = 0; lane < kWarpSize; ++lane) {
            if (((exchange.arrived >> lane) & 1u) == 0) continue;
            KernelThread& member = threads_[first_thread + lane];
            // Members already queued by a cancellation must not be queued twice.
            if (&member != arriving && member.state == ThreadState::Waiting) make_ready(member);
        }
        return true;
    }

    WarpExchange* new_exchange() {
        if (spare_exchanges_.empty()) {
            exchange_storage_.push_back(std::make_unique<WarpExchange>());
            spare_exchanges_.push_back(exchange_storage_.back().get());
        }
        WarpExchange* exchange = spare_exchanges_.back();
        spare_exchanges_.pop_back();
        *exchange = WarpExchange{};
        return exchange;
    }

    // CUDA's rules for which lane a shuffle reads; out-of-segment reads return the caller's value.
    static unsigned source_lane(unsigned lane, ShuffleMode mode, int operand, unsigned width) {
        const unsigned segment_start = lane & ~(width - 1);
        const unsigned lane_in_segment = lane - segment_start;
        switch (mode) {
            case ShuffleMode::Index:
                return segment_start + (static_cast<unsigned>(operand) & (width - 1));
            case ShuffleMode::Up: {
                const unsigned delta = static_cast<unsigned>(operand);
                return delta > lane_in_segment ? lane : lane - delta;
            }
            case ShuffleMode::Down: {
                const unsigned delta = static_cast<unsigned>(operand);
                return delta >= width - lane_in_segment ? lane : lane + delta;
            }
            case ShuffleMode::Xor: {
                const unsigned target = lane ^ static_cast<unsigned>(operand);
                return target >= segment_start + width ? lane : target;
            }
        }
        return lane;
    }

    std::string describe_stalled_block() const {
        unsigned exited = 0;
        unsigned at_barrier = 0;
        unsigned in_warp_collective = 0;
        for (const KernelThread& thread : threads_) {
            exited += thread.state == ThreadState::Finished;
            at_barrier += thread.waiting_on == WaitTarget::Barrier;
            in_warp_collective += thread.waiting_on == WaitTarget::Warp;
        }
        std::string text = "pneuma::emu: " + launch_.describe() + ": block " + to_string(block_index_) +
                           " cannot complete (divergent synchronisation): of its " +
                           std::to_string(threads_.size()) + " threads, " + std::to_string(at_barrier) +
                           " wait at __syncthreads()";
        if (at_barrier > 0) text += " (" + to_string(barrier_.site) + ")";
        text += ", " + std::to_string(in_warp_collective) + " wait in a warp shuffle/vote, " +
                std::to_string(exited) + " exited";
        int reported = 0;
        for (unsigned w = 0; w < warps_.size() && reported < 4; ++w) {
            const WarpState& warp = warps_[w];
            for (const WarpExchange* exchange : warp.exchanges) {
                if (exchange->complete || reported >= 4) continue;
                const unsigned missing = exchange->mask & warp.existing_lanes & ~warp.exited_lanes & ~exchange->arrived;
                text += "; warp " + std::to_string(w) + ": lanes " + hex_mask(exchange->arrived) +
                        " wait in a collective with mask " + hex_mask(exchange->mask) + " for lanes " +
                        hex_mask(missing);
                ++reported;
            }
        }
        return text;
    }

    const LaunchConfig& launch_;
    const std::size_t fiber_stack_bytes_;
    std::vector<FiberStack> stacks_;
    std::vector<KernelThread> threads_;  // never resized: contexts point into themselves
    std::vector<KernelThread*> ready_ring_;
    std::size_t ready_head_ = 0;
    std::size_t ready_count_ = 0;
    std::vector<WarpState> warps_;
    std::vector<std::unique_ptr<WarpExchange>> exchange_storage_;
    std::vector<WarpExchange*> spare_exchanges_;
    BarrierState barrier_;
    std::vector<StaticSharedBuffer> static_shared_;
    std::size_t static_shared_bytes_ = 0;
    std::optional<AlignedBuffer> dynamic_shared_;
    Uint3 block_index_;
    std::size_t finished_count_ = 0;
    std::exception_ptr block_error_;
    bool cancelling_ = false;
    ucontext_t scheduler_context_{};
    StackBounds scheduler_stack_;
    void* scheduler_fake_stack_ = nullptr;
};

KernelThread& current_thread() {
    if (tls_thread == nullptr) {
        throw EmulationError("pneuma::emu: a CUDA built-in or intrinsic was used outside an emulated kernel");
    }
    return *tls_thread;
}

// ---------------------------------------------------------------------------------------------
// The grid: blocks handed out to worker threads

void validate(const LaunchConfig& launch, const Options& opts) {
    const auto reject = [&](const std::string& why) {
        throw EmulationError("pneuma::emu: invalid launch of " + launch.describe() + ": " + why);
    };
    const Dim3& g = launch.grid;
    const Dim3& b = launch.block;
    if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0) reject("a dimension is zero");
    if (g.x > kMaxGridDimX || g.y > kMaxGridDimYZ || g.z > kMaxGridDimYZ) reject("grid dimension over CUDA's limit");
    const std::uint64_t threads = std::uint64_t{b.x} * b.y * b.z;
    if (threads > kMaxThreadsPerBlock) {
        reject(std::to_string(threads) + " threads per block, over the limit of " + std::to_string(kMaxThreadsPerBlock));
    }
    if (b.x > kMaxBlockDimX || b.y > kMaxBlockDimY || b.z > kMaxBlockDimZ) reject("block dimension over CUDA's limit");
    if (launch.dynamic_shared_bytes > opts.max_dynamic_shared_bytes) {
        reject("dynamic shared memory over the limit of " + std::to_string(opts.max_dynamic_shared_bytes) + " bytes");
    }
}

// Keeps the failure of the lowest block, so that which error a launch reports does not depend on
// how blocks were scheduled across workers.
class GridProgress {
public:
    explicit GridProgress(std::uint64_t block_count) : block_count_(block_count) {}

    // Next block to run, or block_count once the grid is done or has failed.
    std::uint64_t claim_block() {
        if (failed_.load(std::memory_order_relaxed)) return block_count_;
        return std::min(next_block_.fetch_add(1, std::memory_order_relaxed), block_count_);
    }

    void record_failure(std::uint64_t block, std::exception_ptr error) {
        std::lock_guard lock(mutex_);
        if (!first_error_ || block < first_error_block_) {
            first_error_ = std::move(error);
            first_error_block_ = block;
        }
        failed_.store(true, std::memory_order_relaxed);
    }

    std::exception_ptr first_error() const { return first_error_; }

private:
    const std::uint64_t block_count_;
    std::atomic<std::uint64_t> next_block_{0};
    std::atomic<bool> failed_{false};
    std::mutex mutex_;
    std::exception_ptr first_error_;
    std::uint64_t first_error_block_ = 0;
};

void run_blocks(const LaunchConfig& launch, std::size_t fiber_stack_bytes, GridProgress& progress) {
    try {
        BlockRunner runner(launch, fiber_stack_bytes);
        for (std::uint64_t block = progress.claim_block(); block < launch.block_count; block = progress.claim_block()) {
            if (std::exception_ptr error = runner.run(block)) {
                progress.record_failure(block, std::move(error));
                return;
            }
        }
    } catch (...) {
        progress.record_failure(0, std::current_exception());  // resources, not the kernel
    }
}

}  // namespace

// -------------------------------------------------------------------------------------------------
// Public functions

Options options() {
    std::lock_guard lock(options_mutex);
    return current_options;
}

void set_options(const Options& new_options) {
    if (new_options.fiber_stack_bytes < 16 * 1024) {
        throw std::invalid_argument("pneuma::emu::set_options: fiber stacks need at least 16 KiB");
    }
    std::lock_guard lock(options_mutex);
    current_options = new_options;
}

const Uint3& thread_idx() { return current_thread().index; }

const Uint3& block_idx() {
    current_thread();
    return tls_runner->block_index();
}

const Dim3& block_dim() {
    current_thread();
    return tls_runner->launch().block;
}

const Dim3& grid_dim() {
    current_thread();
    return tls_runner->launch().grid;
}

bool in_kernel() { return tls_thread != nullptr; }

void sync_threads(const std::source_location& site) { tls_runner->sync_threads(current_thread(), site); }

void sync_warp(unsigned mask) {
    KernelThread& self = current_thread();
    tls_runner->ballot(self, mask, false);
}

std::uint64_t shuffle_bits(unsigned mask, std::uint64_t bits, ShuffleMode mode, int operand, int width) {
    KernelThread& self = current_thread();
    return tls_runner->shuffle(self, mask, bits, mode, operand, width);
}

unsigned ballot(unsigned mask, bool predicate) {
    KernelThread& self = current_thread();
    return tls_runner->ballot(self, mask, predicate);
}

void* block_shared(const void* site_key, std::size_t bytes, std::size_t alignment) {
    KernelThread& self = current_thread();
    return tls_runner->static_shared(self, site_key, bytes, alignment);
}

void* dynamic_shared_memory() {
    current_thread();
    return tls_runner->dynamic_shared();
}

namespace detail {

void run_grid(const LaunchSite& site, Dim3 grid, Dim3 block, std::size_t dynamic_shared_bytes, KernelBody body,
              const void* closure) {
    LaunchConfig launch;
    launch.site = site;
    launch.grid = grid;
    launch.block = block;
    launch.dynamic_shared_bytes = dynamic_shared_bytes;
    launch.body = body;
    launch.closure = closure;
    if (tls_runner != nullptr) {
        throw EmulationError("pneuma::emu: " + launch.describe() +
                             ": launched from inside a kernel; dynamic parallelism is not emulated");
    }
    const Options opts = options();
    validate(launch, opts);
    launch.threads_per_block = block.x * block.y * block.z;
    launch.block_count = std::uint64_t{grid.x} * grid.y * grid.z;

    const unsigned wanted_workers = opts.worker_threads == 0 ? default_worker_threads() : opts.worker_threads;
    const std::uint64_t workers = std::min<std::uint64_t>(wanted_workers, launch.block_count);
    GridProgress progress(launch.block_count);
    {
        std::vector<std::jthread> helpers;
        for (std::uint64_t w = 1; w < workers; ++w) {
            try {
                helpers.emplace_back([&] { run_blocks(launch, opts.fiber_stack_bytes, progress); });
            } catch (const std::system_error&) {
                break;  // fewer workers only means a slower launch
            }
        }
        run_blocks(launch, opts.fiber_stack_bytes, progress);
    }
    if (std::exception_ptr error = progress.first_error()) std::rethrow_exception(error);
}

}  // namespace detail
}  // namespace pneuma::emu
