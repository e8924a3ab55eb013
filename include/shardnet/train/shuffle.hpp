// The order in which an epoch visits the samples: a Fisher-Yates shuffle driven by the
// counter-based generator, so every rank computes the same order from (seed, epoch) alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "shardnet/core/random.hpp"

namespace shardnet {

/// Fills `order` with a permutation of 0..n-1 that depends only on seed and epoch.
inline void epoch_order(std::size_t n, std::uint64_t seed, std::size_t epoch,
                        std::vector<std::size_t>& order) {
    order.resize(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    const random_key key{seed, static_cast<std::uint32_t>(epoch), 0x5F1E5EEDu};
    for (std::size_t i = n; i > 1; --i) {
        const auto j = static_cast<std::size_t>(uniform_at(key, i, 0) * static_cast<double>(i));
        std::swap(order[i - 1], order[j < i ? j : i - 1]);
    }
}

}  // namespace shardnet
