// Balanced block shards: the one table that init, GEMM, all-gatherv and checkpoints share,
// so that uneven splits cannot drift apart between them.
#pragma once

#include <cstddef>
#include <vector>

#include "shardnet/core/error.hpp"

namespace shardnet {

/// A half-open range [begin, end) of global indices owned by one rank. May be empty.
struct shard_range {
    std::size_t begin = 0;
    std::size_t end = 0;

    constexpr std::size_t size() const { return end - begin; }
    constexpr bool empty() const { return begin == end; }
    constexpr bool contains(std::size_t global) const { return global >= begin && global < end; }
    /// @pre contains(global)
    constexpr std::size_t to_local(std::size_t global) const { return global - begin; }
    /// @pre local < size()
    constexpr std::size_t to_global(std::size_t local) const { return begin + local; }
    friend constexpr bool operator==(shard_range, shard_range) = default;
};

/// The block of n features that part `index` of `parts` owns: the first n % parts parts get
/// n / parts + 1, the rest n / parts. No divisibility requirement; parts > n gives empty
/// shards to the last parts.
/// @pre index < parts
constexpr shard_range balanced_shard(std::size_t n, std::size_t parts, std::size_t index) {
    SHARDNET_ASSERT(parts > 0 && index < parts);
    const std::size_t base = n / parts;
    const std::size_t extra = n % parts;
    const std::size_t begin = index * base + (index < extra ? index : extra);
    return {begin, begin + base + (index < extra ? 1 : 0)};
}

/// The owner of a global index under balanced_shard.
/// @pre global < n
constexpr std::size_t shard_owner(std::size_t n, std::size_t parts, std::size_t global) {
    SHARDNET_ASSERT(parts > 0 && global < n);
    const std::size_t base = n / parts;
    const std::size_t extra = n % parts;
    const std::size_t big = extra * (base + 1);  // indices held by the larger shards
    return global < big ? global / (base + 1) : extra + (global - big) / base;
}

/// Every part's range at once, as counts and displacements for varying-count collectives.
class shard_table {
  public:
    shard_table(std::size_t n, std::size_t parts) : n_(n) {
        SHARDNET_ASSERT(parts > 0);
        counts_.reserve(parts);
        offsets_.reserve(parts);
        for (std::size_t p = 0; p < parts; ++p) {
            const shard_range r = balanced_shard(n, parts, p);
            offsets_.push_back(r.begin);
            counts_.push_back(r.size());
        }
    }

    std::size_t total() const { return n_; }
    std::size_t parts() const { return counts_.size(); }
    shard_range range(std::size_t part) const {
        return {offsets_[part], offsets_[part] + counts_[part]};
    }
    const std::vector<std::size_t>& counts() const { return counts_; }
    const std::vector<std::size_t>& offsets() const { return offsets_; }

  private:
    std::size_t n_;
    std::vector<std::size_t> counts_;
    std::vector<std::size_t> offsets_;
};

}  // namespace shardnet
