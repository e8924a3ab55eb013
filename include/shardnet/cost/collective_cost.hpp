// What a collective costs in the alpha-beta-gamma model: the textbook formula of each
// algorithm (Thakur, Rabenseifner and Gropp, "Optimization of collective communication
// operations in MPICH", IJHPCA 2005) and the algorithm MPICH picks at each message size.
#pragma once

#include <bit>
#include <cstddef>
#include <string_view>

#include "shardnet/cost/machine.hpp"

namespace shardnet::cost {

/// The algorithms the formulas below describe.
enum class collective_algorithm {
    none,                ///< one rank, or nothing to send: free
    recursive_doubling,  ///< lg p rounds, partners at distance 1, 2, 4, ...
    bruck,               ///< recursive doubling's all-gather for p not a power of two
    rabenseifner,        ///< all-reduce as reduce-scatter (halving) + all-gather (doubling)
    ring,                ///< p - 1 rounds to the neighbour
};

inline constexpr std::string_view to_string(collective_algorithm a) {
    switch (a) {
        case collective_algorithm::none:
            return "none";
        case collective_algorithm::recursive_doubling:
            return "recursive_doubling";
        case collective_algorithm::bruck:
            return "bruck";
        case collective_algorithm::rabenseifner:
            return "rabenseifner";
        case collective_algorithm::ring:
            return "ring";
    }
    return "?";
}

/// A collective's predicted time and the algorithm it assumes.
struct collective_cost {
    double seconds = 0;
    collective_algorithm algorithm = collective_algorithm::none;
};

// MPICH's switch points, as the paper states them (section 4). They are what MPI would do:
// - all-gather: recursive doubling while the gathered total is under 512 KiB and p is a power
//   of two; Bruck under 80 KiB when p is not; the ring otherwise (long messages, and medium
//   ones on p not a power of two), where its p - 1 latencies no longer matter;
// - all-reduce: recursive doubling up to 2 KiB, where latency dominates; Rabenseifner above,
//   whose bandwidth term 2 (p-1)/p n beta is the lower bound, with 2 lg p latencies.
// OpenMPI 4.1's tuned component (what runs on this machine) has other switch points and prefers
// a segmented ring for long all-reduces: the bandwidth term is the same as Rabenseifner's, only
// the latency term (2 (p-1) instead of 2 lg p alphas) differs, which matters at large p and
// small messages; ring_all_reduce gives that figure for comparison.
inline constexpr double all_gather_recursive_doubling_limit_bytes = 512.0 * 1024;
inline constexpr double all_gather_bruck_limit_bytes = 80.0 * 1024;
inline constexpr double all_reduce_recursive_doubling_limit_bytes = 2.0 * 1024;

namespace detail {

inline double lg(std::size_t p) {
    return static_cast<double>(std::bit_width(p) - 1);
}
inline double ceil_lg(std::size_t p) {
    return static_cast<double>(std::bit_width(p - 1));
}
inline bool power_of_two(std::size_t p) {
    return std::has_single_bit(p);
}
inline double fraction(std::size_t p) {  // (p - 1) / p
    return static_cast<double>(p - 1) / static_cast<double>(p);
}
inline double beta(const machine& m) {
    return 1.0 / m.bandwidth_bytes_per_s;
}
inline double gamma(const machine& m) {
    return m.reduce_bytes_per_s > 0 ? 1.0 / m.reduce_bytes_per_s : 0.0;
}

}  // namespace detail

// In every formula p is the group size and n the bytes of the whole buffer: the gathered total
// for an all-gather, the vector reduced for an all-reduce. Each is 0 for p <= 1.

/// All-gather by recursive doubling: lg p alpha + (p-1)/p n beta. On p not a power of two
/// this is Bruck's algorithm, with ceil(lg p) rounds and the same bandwidth term.
inline double recursive_doubling_all_gather(const machine& m, std::size_t p, double n) {
    if (p <= 1) return 0;
    return detail::ceil_lg(p) * m.latency_s + detail::fraction(p) * n * detail::beta(m);
}

/// All-gather on a ring: (p-1) alpha + (p-1)/p n beta.
inline double ring_all_gather(const machine& m, std::size_t p, double n) {
    if (p <= 1) return 0;
    return static_cast<double>(p - 1) * m.latency_s + detail::fraction(p) * n * detail::beta(m);
}

/// The p - p' ranks beyond the largest power of two p' first hand their vector to a partner and
/// get the result back at the end: alpha + n beta + n gamma before, alpha + n beta after.
inline double non_power_of_two_extra(const machine& m, std::size_t p, double n) {
    if (detail::power_of_two(p)) return 0;
    return 2 * m.latency_s + 2 * n * detail::beta(m) + n * detail::gamma(m);
}

/// All-reduce by recursive doubling: lg p alpha + n lg p beta + n lg p gamma (on the largest
/// power of two p' <= p, plus non_power_of_two_extra).
inline double recursive_doubling_all_reduce(const machine& m, std::size_t p, double n) {
    if (p <= 1) return 0;
    const std::size_t q = std::bit_floor(p);
    const double rounds = detail::lg(q);
    return rounds * (m.latency_s + n * detail::beta(m) + n * detail::gamma(m)) +
           non_power_of_two_extra(m, p, n);
}

/// Rabenseifner's all-reduce, a reduce-scatter by recursive halving then an all-gather by
/// recursive doubling: 2 lg p alpha + 2 (p-1)/p n beta + (p-1)/p n gamma (on p' as above,
/// plus non_power_of_two_extra).
inline double rabenseifner_all_reduce(const machine& m, std::size_t p, double n) {
    if (p <= 1) return 0;
    const std::size_t q = std::bit_floor(p);
    return 2 * detail::lg(q) * m.latency_s + 2 * detail::fraction(q) * n * detail::beta(m) +
           detail::fraction(q) * n * detail::gamma(m) + non_power_of_two_extra(m, p, n);
}

/// All-reduce on a ring (reduce-scatter ring + all-gather ring):
/// 2 (p-1) alpha + 2 (p-1)/p n beta + (p-1)/p n gamma.
inline double ring_all_reduce(const machine& m, std::size_t p, double n) {
    if (p <= 1) return 0;
    return 2 * static_cast<double>(p - 1) * m.latency_s +
           2 * detail::fraction(p) * n * detail::beta(m) +
           detail::fraction(p) * n * detail::gamma(m);
}

/// An all-gather of `bytes` in total over p ranks, with the algorithm MPICH picks for it.
inline collective_cost all_gather_cost(const machine& m, std::size_t p, double bytes) {
    if (p <= 1 || bytes <= 0) return {};
    if (detail::power_of_two(p) && bytes < all_gather_recursive_doubling_limit_bytes)
        return {recursive_doubling_all_gather(m, p, bytes),
                collective_algorithm::recursive_doubling};
    if (!detail::power_of_two(p) && bytes < all_gather_bruck_limit_bytes)
        return {recursive_doubling_all_gather(m, p, bytes), collective_algorithm::bruck};
    return {ring_all_gather(m, p, bytes), collective_algorithm::ring};
}

/// An all-reduce of a vector of `bytes` over p ranks, with the algorithm MPICH picks for it.
inline collective_cost all_reduce_cost(const machine& m, std::size_t p, double bytes) {
    if (p <= 1 || bytes <= 0) return {};
    if (bytes <= all_reduce_recursive_doubling_limit_bytes)
        return {recursive_doubling_all_reduce(m, p, bytes),
                collective_algorithm::recursive_doubling};
    return {rabenseifner_all_reduce(m, p, bytes), collective_algorithm::rabenseifner};
}

}  // namespace shardnet::cost
