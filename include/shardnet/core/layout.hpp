// What each rank of a model-parallel group holds of a batch x features activation, described
// per grid dimension: "sharded over the grid's columns, replicated over its rows" is one
// layout. Layouts are values usable as template arguments, so sequential<...> checks a
// composition at compile time and the run-time network checks the same values at run time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/shard.hpp"

namespace shardnet {

/// How an activation's features are spread along one dimension of the model grid.
enum class placement : std::uint8_t {
    whole,    ///< ranks along this dimension hold the same features
    split,    ///< ranks along this dimension hold different balanced blocks of the features
    partial,  ///< ranks along this dimension hold full-size partial sums still to be reduced
};

/// A layout: the placement along the grid's rows (between ranks of one grid column) and along
/// its columns (between ranks of one grid row). Split along both means one balanced block per
/// model rank, in model-rank order: the 1D `sharded` layout, whatever the grid's shape.
struct layout {
    placement over_rows = placement::whole;
    placement over_cols = placement::whole;

    /// Every rank holds all features.
    static const layout replicated;
    /// Each model rank holds its balanced block of the features (block index = model rank).
    static const layout sharded;
    /// Every rank holds a full-size partial sum that still needs a reduction over the group.
    static const layout partial;
    /// Ranks of grid row i hold block i of `rows` blocks (replicated along the grid's columns).
    static const layout sharded_over_rows;
    /// Ranks of grid column j hold block j of `cols` blocks (replicated along the grid's rows).
    static const layout sharded_over_cols;

    constexpr bool has_partial() const {
        return over_rows == placement::partial || over_cols == placement::partial;
    }
    constexpr bool split_over_rows() const { return over_rows == placement::split; }
    constexpr bool split_over_cols() const { return over_cols == placement::split; }
    friend constexpr bool operator==(layout, layout) = default;
};

inline constexpr layout layout::replicated{placement::whole, placement::whole};
inline constexpr layout layout::sharded{placement::split, placement::split};
inline constexpr layout layout::partial{placement::partial, placement::partial};
inline constexpr layout layout::sharded_over_rows{placement::split, placement::whole};
inline constexpr layout layout::sharded_over_cols{placement::whole, placement::split};

constexpr std::string_view to_string(layout l) {
    if (l == layout::replicated) return "replicated";
    if (l == layout::sharded) return "sharded";
    if (l == layout::partial) return "partial";
    if (l == layout::sharded_over_rows) return "sharded over grid rows";
    if (l == layout::sharded_over_cols) return "sharded over grid columns";
    return "mixed";
}

/// The features of an n-wide activation in layout l that the rank at `at` of `grid` holds.
/// Partial sums are full-size.
constexpr shard_range feature_block(layout l, std::size_t n, grid_shape grid, grid_position at) {
    if (l.split_over_rows() && l.split_over_cols())
        return balanced_shard(n, grid.size(), rank_of_position(grid, at));
    if (l.split_over_rows()) return balanced_shard(n, grid.rows, at.row);
    if (l.split_over_cols()) return balanced_shard(n, grid.cols, at.col);
    return {0, n};
}

}  // namespace shardnet
