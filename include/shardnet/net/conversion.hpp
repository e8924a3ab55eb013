// Layout conversions between adjacent layers, each with its backward twin:
// sharded -> replicated is an all-gather (backward: keep own slice), replicated -> sharded is a
// local slice (backward: all-gather). Equal layouts convert for free.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"

namespace shardnet {

namespace detail {

/// dst (batch x block.size()) = columns [block) of src (batch x n).
template <class T>
void take_columns(const matrix<T>& src, shard_range block, matrix<T>& dst) {
    ensure_shape(dst, src.shape(0), block.size());
    for (std::size_t i = 0; i < src.shape(0); ++i)
        std::copy_n(&src(i, 0) + block.begin, block.size(), dst.data() + i * block.size());
}

/// All-gathers column blocks of a batch x n activation held as balanced shards: rank r holds
/// batch x table.range(r).size(). The gathered blocks arrive rank after rank and are
/// interleaved back into rows.
template <class T, communicator Comm>
void gather_columns(Comm& group, const matrix<T>& local, const shard_table& table,
                    std::vector<std::size_t>& counts, std::vector<T>& blocks, matrix<T>& out) {
    const std::size_t batch = local.shape(0), n = table.total();
    counts.resize(table.parts());
    for (std::size_t p = 0; p < table.parts(); ++p)
        counts[p] = batch * table.counts()[p];
    blocks.resize(batch * n);
    group.all_gather(local.data(), blocks.data(), counts);
    ensure_shape(out, batch, n);
    const T* block = blocks.data();
    for (std::size_t p = 0; p < table.parts(); ++p) {
        const shard_range cols = table.range(p);
        for (std::size_t i = 0; i < batch; ++i)
            std::copy_n(block + i * cols.size(), cols.size(), &out(i, 0) + cols.begin);
        block += counts[p];
    }
}

}  // namespace detail

/// Converts a batch x `features` activation from layout From to layout To and back.
template <class T, layout From, layout To>
class layout_conversion {
    static_assert(From != layout::partial,
                  "shardnet: a partial sum cannot feed the next layer directly; end the layer "
                  "with a partition whose output is reduced (row_split gives replicated)");
    static_assert(To != layout::partial, "shardnet: no layer takes a partial-sum input");

  public:
    layout_conversion(std::size_t features, std::size_t parts, std::size_t part)
        : table_(features, parts), part_(part) {}

    static constexpr bool is_identity = From == To;

    /// Collective over the model-parallel group when an all-gather is needed.
    template <communicator Comm>
    const matrix<T>& forward(Comm& group, const matrix<T>& x) {
        if constexpr (From == To) {
            return x;
        } else if constexpr (From == layout::sharded) {
            detail::gather_columns(group, x, table_, counts_, blocks_, converted_);
            return converted_;
        } else {
            detail::take_columns(x, table_.range(part_), converted_);
            return converted_;
        }
    }

    template <communicator Comm>
    const matrix<T>& backward(Comm& group, const matrix<T>& dy) {
        if constexpr (From == To) {
            return dy;
        } else if constexpr (From == layout::sharded) {
            detail::take_columns(dy, table_.range(part_), converted_grad_);
            return converted_grad_;
        } else {
            detail::gather_columns(group, dy, table_, counts_, blocks_, converted_grad_);
            return converted_grad_;
        }
    }

    /// Elements all-gathered per pass of a batch: forward, backward.
    std::size_t forward_gather(std::size_t batch) const {
        return From == layout::sharded && To == layout::replicated && table_.parts() > 1
                   ? batch * table_.total()
                   : 0;
    }
    std::size_t backward_gather(std::size_t batch) const {
        return From == layout::replicated && To == layout::sharded && table_.parts() > 1
                   ? batch * table_.total()
                   : 0;
    }
    std::string describe() const {
        if constexpr (From == To)
            return "none";
        else if constexpr (From == layout::sharded)
            return "all-gather (backward: own slice)";
        else
            return "own slice (backward: all-gather)";
    }

  private:
    shard_table table_;
    std::size_t part_;
    std::vector<std::size_t> counts_;
    std::vector<T> blocks_;
    matrix<T> converted_, converted_grad_;
};

}  // namespace shardnet
