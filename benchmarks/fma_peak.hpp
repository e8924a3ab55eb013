// The machine's FMA throughput, measured rather than looked up: register-only FMA chains on one
// thread (bench_gemm's "% of peak") and on two threads at once (bench_mlp's yardstick for
// 1 -> 2 rank scaling: two vCPUs may share FMA units, or another job may hold one of them).
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "shardnet/kernels/simd.hpp"

namespace shardnet_bench {

/// One timed run of FMA chains on the calling thread.
struct fma_run {
    std::chrono::steady_clock::time_point start, end;
    double flops = 0;
    int cpu = -1;  ///< where the thread was when it finished (sched_getcpu)

    double seconds() const { return std::chrono::duration<double>(end - start).count(); }
    double gflops() const { return flops / seconds() * 1e-9; }
};

/// `iterations` rounds of 16 independent accumulator chains of xsimd::batch<T> FMAs (more
/// chains than latency x throughput on any current x86 core), all in registers: no memory
/// traffic, so the figure is the FMA units' alone.
/// The inputs come through volatiles, as in gemm_tile.hpp's probe: with constants, g++ 12 proved
/// the float chain starting at 1 a fixed point (1·0.9999 + 1e-4 rounds to 1) and deleted it, so
/// the loop ran 15 FMAs an iteration while the count said 16, and every float peak printed
/// before 2026-12-03 08:00 UTC was 16/15 of the FMAs' (Zen 5: 250 GFLOP/s "peak" where a core
/// at 3.7 GHz, measured by a chain of dependent adds, does 64 x 3.7 = 237). Never inlined: one
/// copy of the loop in every binary, which tests/fma_peak_complete.sh reads.
template <class T>
[[gnu::noinline]] fma_run fma_chains(long iterations) {
    using batch = xsimd::batch<T>;
    constexpr int chains = 16;
    volatile T first = T(1), step = T(1e-3), scale = T(0.9999), shift = T(1e-4);
    batch acc[chains];
    for (int i = 0; i < chains; ++i)
        acc[i] = batch(first + T(i) * step);
    const batch x(static_cast<T>(scale)), y(static_cast<T>(shift));
    fma_run run;
    run.start = std::chrono::steady_clock::now();
    for (long it = 0; it < iterations; ++it)
        for (int i = 0; i < chains; ++i)
            acc[i] = xsimd::fma(acc[i], x, y);
    run.end = std::chrono::steady_clock::now();
    run.cpu = sched_getcpu();
    // The sum keeps the chains alive: without a use the compiler may drop the loop.
    T sum = 0;
    for (int i = 0; i < chains; ++i)
        sum += shardnet::detail::horizontal_sum(acc[i]);
    if (!std::isfinite(static_cast<double>(sum))) std::puts("(impossible)");
    run.flops = 2.0 * static_cast<double>(iterations) * chains * batch::size;
    return run;
}

/// Peak FMA GFLOP/s of one core for T on the default architecture. Best of many short runs:
/// on a shared machine a short window is likelier to be undisturbed.
template <class T>
double fma_peak_gflops(int runs = 40, long iterations = 2'000'000) {
    double best = 0;
    for (int r = 0; r < runs; ++r)
        best = std::max(best, fma_chains<T>(iterations).gflops());
    return best;
}

/// GFLOP/s of one short run of FMA chains (about 1 ms at 200 GFLOP/s), for timing the FMA units
/// in the same window as the work measured against them: a shared host's boost clock moves the
/// peak by 10% from minute to minute (Zen 5: 207 to 230 GFLOP/s float in one hour), so a peak
/// taken once at start-up and a GEMM timed later may not be at the same clock.
template <class T>
double fma_gflops_now(long iterations = 400'000) {
    return fma_chains<T>(iterations).gflops();
}

/// What two threads get from the FMA units against one.
struct fma_scaling {
    double one_thread_gflops = 0;   ///< best single-thread run
    double two_threads_gflops = 0;  ///< best run of both threads together, summed
    double median_ratio = 0;        ///< median over rounds of two-thread / one-thread
    bool distinct_cpus = false;     ///< the two threads ended every round on different CPUs

    double ratio() const { return two_threads_gflops / one_thread_gflops; }
};

namespace detail {
/// Pins the calling thread to `cpu`, or to any CPU but `cpu` (`except`), preferring the CPUs in
/// `allowed` (the process's own set). Explicit placement, as mpiexec binds ranks: left to
/// itself the scheduler often wakes the second thread on the first one's CPU when the other
/// CPU is busy, and under `mpiexec -n 1` (bound to one core, OpenMPI's default for up to 2
/// ranks) the second thread could not leave that core at all.
inline void pin(int cpu, bool except, const cpu_set_t& allowed) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (!except) {
        CPU_SET(cpu, &set);
    } else {
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (c != cpu && CPU_ISSET(c, &allowed)) CPU_SET(c, &set);
        if (CPU_COUNT(&set) == 0)
            for (int c = 0; c < CPU_SETSIZE; ++c)
                if (c != cpu) CPU_SET(c, &set);
    }
    // Fails (and changes nothing) when no CPU of `set` is online or allowed: then both threads
    // may share one CPU, which distinct_cpus reports.
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}
}  // namespace detail

/// Runs FMA chains on the calling thread alone, then on it and a second thread at once,
/// alternating round by round so that load from elsewhere hits both alike. A two-thread
/// round counts both threads' flops over the wall time from the first start to the last end.
/// The calling thread is pinned to its current CPU meanwhile, the second thread to another.
/// Starts one std::thread; call it where nothing else of this process computes.
/// @pre rounds > 0
template <class T>
fma_scaling measure_fma_scaling(int rounds = 20, long iterations = 2'000'000) {
    cpu_set_t process;
    CPU_ZERO(&process);
    pthread_getaffinity_np(pthread_self(), sizeof(process), &process);
    const int main_cpu = sched_getcpu();  // -1 if unknown: then neither thread is pinned
    if (main_cpu >= 0) detail::pin(main_cpu, false, process);
    std::barrier sync(2);
    std::vector<fma_run> helper_runs(static_cast<std::size_t>(rounds));
    std::thread helper([&] {
        if (main_cpu >= 0) detail::pin(main_cpu, true, process);
        for (auto& run : helper_runs) {
            sync.arrive_and_wait();  // start together
            run = fma_chains<T>(iterations);
            sync.arrive_and_wait();  // the main thread reads `run` after this
        }
    });
    fma_scaling result;
    result.distinct_cpus = true;
    std::vector<double> ratios;
    for (int r = 0; r < rounds; ++r) {
        const fma_run alone = fma_chains<T>(iterations);
        sync.arrive_and_wait();
        const fma_run together = fma_chains<T>(iterations);
        sync.arrive_and_wait();
        const fma_run& other = helper_runs[static_cast<std::size_t>(r)];
        const double wall = std::chrono::duration<double>(std::max(together.end, other.end) -
                                                          std::min(together.start, other.start))
                                .count();
        const double both = (together.flops + other.flops) / wall * 1e-9;
        result.one_thread_gflops = std::max(result.one_thread_gflops, alone.gflops());
        result.two_threads_gflops = std::max(result.two_threads_gflops, both);
        result.distinct_cpus = result.distinct_cpus && together.cpu != other.cpu;
        ratios.push_back(both / alone.gflops());
    }
    helper.join();
    pthread_setaffinity_np(pthread_self(), sizeof(process), &process);
    std::sort(ratios.begin(), ratios.end());
    result.median_ratio = ratios[ratios.size() / 2];
    return result;
}

}  // namespace shardnet_bench
