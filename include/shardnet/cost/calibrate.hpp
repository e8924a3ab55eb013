// Calibration: measures the machine at hand with the library's own GEMM and communicator, so
// that the cost model predicts this machine rather than a guess. Everything it measures runs on
// every rank at once, as in training (ranks share memory bandwidth), and the slowest rank's
// figure is kept.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/precision.hpp"
#include "shardnet/cost/collective_cost.hpp"
#include "shardnet/cost/machine.hpp"
#include "shardnet/kernels/gemm.hpp"
#include "shardnet/kernels/gemm_bf16.hpp"
#include "shardnet/train/optimizer_update.hpp"

namespace shardnet::cost {

/// A GEMM to measure: fp32 operands (shardnet::gemm<float>) or bf16 ones (gemm_bf16).
struct gemm_shape {
    gemm_kind kind = gemm_kind::forward;
    std::size_t m = 0, n = 0, k = 0;
    precision operands = precision::fp32;
    friend bool operator==(const gemm_shape&, const gemm_shape&) = default;
};

/// How long calibration may take, and what it measures.
struct calibration_options {
    double gemm_budget_s = 30;  ///< shared by all GEMM shapes
    double collective_budget_s = 20;
    double memory_budget_s = 2;
    std::size_t max_message_bytes = 16u << 20;  ///< largest collective measured
    std::size_t memory_pass_bytes = 64u << 20;  ///< per array of the optimizer-like pass
};

/// What calibration found, besides the machine description.
struct calibration_report {
    bool collectives_measured = false;  ///< false on one rank: nothing to measure between ranks
    std::size_t world_size = 1;
    double seconds = 0;  ///< how long it took
    /// Each measured collective: kind ("all_reduce", "all_gather"), bytes, median seconds.
    struct sample {
        std::string kind;
        double bytes = 0, seconds = 0;
    };
    std::vector<sample> samples;
};

namespace detail {

using clock = std::chrono::steady_clock;
inline double since(clock::time_point t) {
    return std::chrono::duration<double>(clock::now() - t).count();
}

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

/// Repeats `run` (which every rank enters together) until `budget_s` has passed or 50 runs;
/// returns the median of the runs, the slowest rank's (all ranks agree on it, so all leave the
/// loop together). At least one run: a shape that takes longer than its share is measured once
/// rather than overrunning the budget.
template <class Comm, class Run>
double timed_median(Comm& world, double budget_s, Run&& run) {
    run();  // warm: page faults, packing buffers, MPI connections
    std::vector<double> times;
    const auto start = clock::now();
    for (int i = 0; i < 50; ++i) {
        world.barrier();
        const auto t = clock::now();
        run();
        double elapsed = since(t);
        world.all_reduce(&elapsed, 1, reduce_op::max);
        times.push_back(elapsed);
        double spent = since(start);
        world.all_reduce(&spent, 1, reduce_op::max);
        if (spent > budget_s) break;
    }
    return median(times);
}

using aligned_floats = std::vector<float, xsimd::aligned_allocator<float>>;

inline double gemm_flops(const gemm_shape& s) {
    return 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
}

}  // namespace detail

/// Measures `m`'s GEMM table at `shapes` (duplicates measured once), the element-wise memory
/// rate, and, on more than one rank, the latency, bandwidth and reduction rate between the
/// ranks of `world`, fitted to the formulas of collective_cost.hpp. On one rank the network
/// figures of `m` are kept as they are (there is nothing to measure: a one-rank step has no
/// collective), and report.collectives_measured says so.
/// Collective over `world`; every rank must pass the same shapes and options.
/// @post m.gemm_table holds one row per distinct shape, with positive finite rates.
template <communicator Comm>
calibration_report calibrate(Comm& world, machine& m, std::vector<gemm_shape> shapes,
                             const calibration_options& options = {}) {
    using namespace detail;
    const auto start = clock::now();
    calibration_report report;
    report.world_size = world.size();

    std::vector<gemm_shape> distinct;
    for (const auto& s : shapes)
        if (s.m && s.n && s.k && std::find(distinct.begin(), distinct.end(), s) == distinct.end())
            distinct.push_back(s);
    m.gemm_table.clear();
    auto measure = [&](const gemm_shape& s, double budget_s) {
        // Operands stored as the layer stores them: x is m x k (k x m for dW), w k x n (n x k
        // for dx).
        const bool ta = s.kind == gemm_kind::weight_gradient;
        const bool tb = s.kind == gemm_kind::input_gradient;
        const transpose op_a = ta ? transpose::yes : transpose::no;
        const transpose op_b = tb ? transpose::yes : transpose::no;
        aligned_floats c(s.m * s.n, 0.0f);
        double t = 0;
        if (s.operands == precision::bf16) {
            std::vector<bfloat16, xsimd::aligned_allocator<bfloat16>> a(s.m * s.k,
                                                                        to_bfloat16(0.5f)),
                b(s.k * s.n, to_bfloat16(0.25f));
            t = timed_median(world, budget_s, [&] {
                gemm_bf16(op_a, op_b, s.m, s.n, s.k, 1.0f, a.data(), ta ? s.m : s.k, b.data(),
                          tb ? s.k : s.n, 0.0f, c.data(), s.n);
            });
        } else {
            aligned_floats a(s.m * s.k, 0.5f), b(s.k * s.n, 0.25f);
            t = timed_median(world, budget_s, [&] {
                gemm<float>(op_a, op_b, s.m, s.n, s.k, 1.0f, a.data(), ta ? s.m : s.k, b.data(),
                            tb ? s.k : s.n, 0.0f, c.data(), s.n);
            });
        }
        return gemm_flops(s) / std::max(t, 1e-9) / 1e9;
    };
    // A first guess of the rate, from a product that takes milliseconds, sizes the proxies below.
    const double guess =
        distinct.empty() ? 0.0 : measure({gemm_kind::forward, 256, 256, 256, precision::fp32}, 0.0);
    for (std::size_t i = 0; i < distinct.size(); ++i) {
        const gemm_shape& s = distinct[i];
        // What is left of the budget, shared by the shapes left: one slow shape does not starve
        // the others, nor make the whole overrun.
        // Time spent as the slowest rank counts it: every rank must give timed_median the same
        // budget (and choose the same proxy), or some leave its loop while others wait in its
        // barrier, a hang (seen on 3 oversubscribed ranks).
        double spent = since(start);
        world.all_reduce(&spent, 1, reduce_op::max);
        const double per_shape =
            std::max(0.0, options.gemm_budget_s - spent) / static_cast<double>(distinct.size() - i);
        // A shape whose run (warm-up and median of at least one) would not fit in its share is
        // measured on a proxy: its largest extent halved until a run takes a quarter of the
        // share, never below 256. At those sizes the rate no longer depends on the size (the
        // blocking's panels are full), and the budget holds. The table keeps the real shape.
        gemm_shape proxy = s;
        while (gemm_flops(proxy) / (guess * 1e9) > per_shape / 4) {
            std::size_t& largest = proxy.m >= proxy.n && proxy.m >= proxy.k ? proxy.m
                                   : proxy.n >= proxy.k                     ? proxy.n
                                                                            : proxy.k;
            if (largest < 512) break;
            largest /= 2;
        }
        m.gemm_table.push_back({s.kind, s.m, s.n, s.k, measure(proxy, per_shape), s.operands});
    }

    {  // The library's own optimizer pass (SGD with momentum, train/optimizer_update.hpp):
        // reads w, g, v, writes v, w: 20 bytes per element.
        const std::size_t n = std::max<std::size_t>(options.memory_pass_bytes / 4, 1024);
        aligned_floats w(n, 1.0f), g(n, 1e-3f), v(n, 0.0f);
        const shardnet::detail::sgd_coefficients<float> k{.rate = 1e-3f,
                                                          .decay = 0.0f,
                                                          .scale = 1.0f,
                                                          .momentum = 0.9f,
                                                          .nesterov = false,
                                                          .first = false};
        const double t = timed_median(world, options.memory_budget_s, [&] {
            shardnet::detail::sgd_update(w.data(), g.data(), v.data(), n, k);
        });
        m.memory_bytes_per_s = 20.0 * static_cast<double>(n) / std::max(t, 1e-9);
    }

    if (world.size() > 1) {
        report.collectives_measured = true;
        const std::size_t p = world.size();
        std::vector<std::size_t> sizes;
        for (std::size_t bytes = 64; bytes <= options.max_message_bytes; bytes *= 4)
            sizes.push_back(bytes);
        const double per_size = options.collective_budget_s /
                                static_cast<double>(2 * std::max<std::size_t>(1, sizes.size()));
        // alpha and beta from the all-gathers (no arithmetic): least squares of
        // t = c_alpha alpha + c_beta beta, with the coefficients of the algorithm MPICH would
        // use at that size (collective_cost.hpp).
        double saa = 0, sab = 0, sbb = 0, sat = 0, sbt = 0;
        std::vector<std::pair<double, double>> reduce_samples;
        for (std::size_t bytes : sizes) {
            const std::size_t total = bytes / 4 / p * p;
            if (total == 0) continue;
            aligned_floats in(total / p, 1.0f), out(total, 0.0f);
            const double t = timed_median(
                world, per_size, [&] { world.all_gather(in.data(), total / p, out.data()); });
            const double n = static_cast<double>(total * 4);
            report.samples.push_back({"all_gather", n, t});
            machine unit;
            unit.latency_s = 1, unit.bandwidth_bytes_per_s = 1e300;
            const double ca = all_gather_cost(unit, p, n).seconds;
            unit.latency_s = 0, unit.bandwidth_bytes_per_s = 1;
            const double cb = all_gather_cost(unit, p, n).seconds;
            // Relative least squares (each sample divided by its time), so that the small
            // messages, which carry the latency, weigh as much as the large ones.
            const double wgt = 1.0 / (t * t);
            saa += wgt * ca * ca, sab += wgt * ca * cb, sbb += wgt * cb * cb;
            sat += wgt * ca * t, sbt += wgt * cb * t;

            aligned_floats data(total, 1.0f);
            const double r = timed_median(
                world, per_size, [&] { world.all_reduce(data.data(), total, reduce_op::sum); });
            report.samples.push_back({"all_reduce", n, r});
            reduce_samples.push_back({n, r});
        }
        const double det = saa * sbb - sab * sab;
        double alpha = det != 0 ? (sat * sbb - sbt * sab) / det : 0;
        double beta = det != 0 ? (saa * sbt - sab * sat) / det : 0;
        if (!(alpha > 0) || !std::isfinite(alpha)) alpha = 1e-7;  // below what the fit resolves
        if (!(beta > 0) || !std::isfinite(beta)) beta = 1e-11;
        m.latency_s = alpha;
        m.bandwidth_bytes_per_s = 1.0 / beta;
        // gamma: what the all-reduces of 64 KiB and more take beyond their alpha-beta terms,
        // per byte of their gamma coefficient (median over the sizes).
        std::vector<double> gammas;
        for (const auto& [n, t] : reduce_samples) {
            if (n < 65536) continue;
            machine no_gamma = m;
            no_gamma.reduce_bytes_per_s = 0;
            machine unit_gamma = m;
            unit_gamma.latency_s = 0, unit_gamma.bandwidth_bytes_per_s = 1e300;
            unit_gamma.reduce_bytes_per_s = 1;
            const double cg = all_reduce_cost(unit_gamma, p, n).seconds;
            if (cg > 0) gammas.push_back((t - all_reduce_cost(no_gamma, p, n).seconds) / cg);
        }
        const double gamma = median(gammas);
        m.reduce_bytes_per_s = gamma > 0 ? 1.0 / gamma : 0.0;
    }
    report.seconds = since(start);
    return report;
}

}  // namespace shardnet::cost
