// Layout conversions between adjacent layers, each with its backward twin. A conversion
// gathers the activation over the ranks that hold its other blocks (all-gather) and keeps the
// block the next layer takes (a local slice); its backward twin gathers the gradient of the
// new layout and keeps the slice of the old one. Equal blocks convert for free, so a layout
// change that splits nothing differently on this grid costs nothing.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/grid_shape.hpp"
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

/// All-gathers column blocks of a batch x n activation held as balanced shards over `group`:
/// its rank r holds batch x table.range(r).size(). The gathered blocks arrive rank after rank
/// and are interleaved back into rows.
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

/// Converts a batch x `features` activation from layout `from` to layout `to` on a model grid,
/// and its gradient back. Built once per pair of adjacent layers; a step allocates nothing once
/// the batch size holds.
template <class T>
class layout_conversion {
  public:
    /// @throws error if either layout holds partial sums: a partial sum cannot feed a layer.
    layout_conversion(layout from, layout to, std::size_t features, grid_shape grid,
                      grid_position at)
        : from_(checked(from, "from")),
          to_(checked(to, "to")),
          from_block_(feature_block(from, features, grid, at)),
          to_block_(feature_block(to, features, grid, at)),
          from_table_(features, parts_splitting(from, grid)),
          to_table_(features, parts_splitting(to, grid)),
          identity_(same_blocks(from, to, features, grid)) {}

    /// Whether no rank of the grid changes its block: the conversion does nothing.
    bool is_identity() const { return identity_; }
    layout from() const { return from_; }
    layout to() const { return to_; }

    /// Collective over the ranks holding the other blocks of `from` when anything is gathered.
    /// x is of T, or bfloat16 (a bf16 mixed-precision network's activations, gathered as their
    /// 16 bits: half the bytes, and the same values the next layer would round them to).
    template <communicator Comm, class U>
    requires std::same_as<U, T> || std::same_as<U, bfloat16>
    const matrix<U>& forward(Comm& group, const matrix<U>& x) {
        if constexpr (std::is_same_v<U, T>)
            return identity_ ? x : convert(group, from_, from_table_, to_block_, x, forward_);
        else
            return identity_ ? x : convert(group, from_, from_table_, to_block_, x, forward_low_);
    }

    /// The backward twin: from a gradient in `to`, the gradient in `from`.
    template <communicator Comm>
    const matrix<T>& backward(Comm& group, const matrix<T>& dy) {
        return identity_ ? dy : convert(group, to_, to_table_, from_block_, dy, backward_);
    }

    /// Elements all-gathered per pass of a batch (forward, backward) and over how many ranks.
    std::size_t forward_gather(std::size_t batch) const {
        return !identity_ && from_table_.parts() > 1 ? batch * from_table_.total() : 0;
    }
    std::size_t backward_gather(std::size_t batch) const {
        return !identity_ && to_table_.parts() > 1 ? batch * to_table_.total() : 0;
    }
    std::size_t forward_group() const { return from_table_.parts(); }
    std::size_t backward_group() const { return to_table_.parts(); }

    std::string describe() const {
        if (identity_) return "none";
        std::string d(to_string(from_));
        d += " -> ";
        d += to_string(to_);
        d += forward_gather(1) ? " (all-gather" : " (own slice";
        d += backward_gather(1) ? "; backward: all-gather)" : "; backward: own slice)";
        return d;
    }

  private:
    static layout checked(layout l, const char* which) {
        if (l.has_partial())
            throw error(detail::concat("layout_conversion: cannot convert ", which, " a '",
                                       to_string(l),
                                       "' layout; a partial sum must be reduced by its layer"));
        return l;
    }

    /// How many blocks a layout has on this grid (the size of the group that gathers them).
    static std::size_t parts_splitting(layout l, grid_shape grid) {
        return (l.split_over_rows() ? grid.rows : 1) * (l.split_over_cols() ? grid.cols : 1);
    }

    static bool same_blocks(layout from, layout to, std::size_t n, grid_shape grid) {
        for (std::size_t q = 0; q < grid.size(); ++q)
            if (feature_block(from, n, grid, position_of_rank(grid, q)) !=
                feature_block(to, n, grid, position_of_rank(grid, q)))
                return false;
        return true;
    }

    /// The buffers of one direction (and element type) of the conversion.
    template <class U>
    struct staging {
        std::vector<U> blocks;
        matrix<U> gathered, out;
    };

    /// Gathers `x` (blocks of `held` over the grid) whole when it is split, then keeps `keep`.
    template <communicator Comm, class U>
    const matrix<U>& convert(Comm& group, layout held, const shard_table& table, shard_range keep,
                             const matrix<U>& x, staging<U>& s) {
        const matrix<U>* whole = &x;
        if (auto* over = group_splitting(group, held)) {
            // Keeping every feature (to replicated): gather straight into the result, with no
            // second copy on the step's path.
            if (keep.size() == table.total()) {
                detail::gather_columns(*over, x, table, counts_, s.blocks, s.out);
                return s.out;
            }
            detail::gather_columns(*over, x, table, counts_, s.blocks, s.gathered);
            whole = &s.gathered;
        }
        detail::take_columns(*whole, keep, s.out);
        return s.out;
    }

    layout from_, to_;
    shard_range from_block_, to_block_;
    shard_table from_table_, to_table_;
    bool identity_;
    std::vector<std::size_t> counts_;
    staging<T> forward_, backward_;
    staging<bfloat16> forward_low_;
};

}  // namespace shardnet
