// Counter-based random numbers (Philox-4x32-10): a value is a pure function of
// (seed, layer, global row, global column), so each rank generates only its own shard and the
// global matrix is the same for every number of ranks and every grid.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace shardnet {

/// Where a random value sits in the model. `stream` separates independent uses of the same
/// coordinates (weights, biases, dropout, data shuffles).
struct random_key {
    std::uint64_t seed = 0;
    std::uint32_t layer = 0;
    std::uint32_t stream = 0;
};

namespace detail {

/// Philox-4x32 with 10 rounds (Salmon et al., SC'11), the generator of cuRAND and JAX.
inline std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> ctr,
                                               std::array<std::uint32_t, 2> key) {
    constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
    constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        const std::uint64_t p0 = std::uint64_t{m0} * ctr[0];
        const std::uint64_t p1 = std::uint64_t{m1} * ctr[2];
        ctr = {
            static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<std::uint32_t>(p1),
            static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<std::uint32_t>(p0)};
        key[0] += w0;
        key[1] += w1;
    }
    return ctr;
}

inline std::array<std::uint32_t, 4> random_bits(const random_key& k, std::uint64_t row,
                                                std::uint64_t col) {
    // row and column are each folded into one counter word pair-wise so indices past 2^32
    // stay distinct.
    return philox4x32(
        {static_cast<std::uint32_t>(col), static_cast<std::uint32_t>(row),
         k.layer ^ static_cast<std::uint32_t>(row >> 32) * 0x85EBCA6Bu,
         k.stream ^ static_cast<std::uint32_t>(col >> 32) * 0xC2B2AE35u},
        {static_cast<std::uint32_t>(k.seed), static_cast<std::uint32_t>(k.seed >> 32)});
}

/// 53 random bits as a double in [0, 1).
inline double to_unit(std::uint32_t hi, std::uint32_t lo) {
    const std::uint64_t bits = (std::uint64_t{hi} << 21) ^ (lo >> 11);
    return static_cast<double>(bits & ((std::uint64_t{1} << 53) - 1)) * 0x1.0p-53;
}

}  // namespace detail

/// Uniform in [0, 1), a pure function of the key and the global coordinates.
inline double uniform_at(const random_key& k, std::uint64_t row, std::uint64_t col) {
    const auto w = detail::random_bits(k, row, col);
    return detail::to_unit(w[0], w[1]);
}

/// Standard normal (Box-Muller on the four words), a pure function of key and coordinates.
inline double normal_at(const random_key& k, std::uint64_t row, std::uint64_t col) {
    const auto w = detail::random_bits(k, row, col);
    const double u1 = 1.0 - detail::to_unit(w[0], w[1]);  // (0, 1]: log is finite
    const double u2 = detail::to_unit(w[2], w[3]);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace shardnet
