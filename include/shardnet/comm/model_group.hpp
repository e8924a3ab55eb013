// A model-parallel group seen as a rows x cols grid. It is itself a communicator (over all its
// ranks), so everything written for a plain group takes it; 2D partitions and layout
// conversions also reach the ranks of this rank's grid row or grid column through it. The
// sub-communicators are made once, when the group is built: no split ever happens in a step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/async.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/layout.hpp"

namespace shardnet {

/// The ranks of `all` as a grid.rows x grid.cols grid, row-major by rank in `all`.
template <communicator Comm>
class model_group {
  public:
    /// Collective over `all`. A 1 x all.size() grid (1D model parallelism).
    explicit model_group(Comm all) : model_group(std::move(all), grid_shape{0, 0}) {}

    /// Collective over `all`.
    /// @throws error on every rank if grid.rows x grid.cols is not all.size() or ranks disagree
    ///         on the grid. A grid of {0, 0} means 1 x all.size().
    model_group(Comm all, grid_shape grid)
        : all_(std::move(all)),
          grid_(validated(all_, grid)),
          at_(position_of_rank(grid_, all_.rank())),
          row_(all_.split(static_cast<int>(at_.row), static_cast<int>(at_.col))),
          column_(all_.split(static_cast<int>(at_.col), static_cast<int>(at_.row))) {}

    grid_shape grid() const { return grid_; }
    grid_position position() const { return at_; }

    /// Every rank of the group, in model-rank order.
    Comm& all() { return all_; }
    /// The grid.cols ranks of this rank's grid row (same row, ordered by column).
    Comm& row() { return row_; }
    /// The grid.rows ranks of this rank's grid column (same column, ordered by row).
    Comm& column() { return column_; }

    // The communicator concept, over all ranks of the group.
    std::size_t rank() const { return all_.rank(); }
    std::size_t size() const { return all_.size(); }
    void barrier() { all_.barrier(); }
    /// A 1D model_group over the ranks that passed `color`. Collective.
    model_group split(int color, int key) const { return model_group(all_.split(color, key)); }
    template <class T>
    void all_reduce(T* data, std::size_t n, reduce_op op) {
        all_.all_reduce(data, n, op);
    }
    template <class T>
    auto all_reduce_async(T* data, std::size_t n, reduce_op op) {
        return start_all_reduce(all_, data, n, op);
    }
    template <class T>
    void broadcast(T* data, std::size_t n, std::size_t root) {
        all_.broadcast(data, n, root);
    }
    template <class T>
    void all_gather(const T* in, std::size_t n, T* out) {
        all_.all_gather(in, n, out);
    }
    template <class T>
    void all_gather(const T* in, T* out, std::span<const std::size_t> counts) {
        all_.all_gather(in, out, counts);
    }
    template <class T>
    void reduce_scatter(const T* in, T* out, std::span<const std::size_t> counts) {
        all_.reduce_scatter(in, out, counts);
    }

  private:
    static grid_shape validated(Comm& all, grid_shape grid) {
        if (grid == grid_shape{0, 0}) grid = {1, all.size()};
        const value_range rows = range_on_all_ranks(all, static_cast<std::int64_t>(grid.rows));
        const value_range cols = range_on_all_ranks(all, static_cast<std::int64_t>(grid.cols));
        agree_on(all, [&] {
            if (!rows.same() || !cols.same())
                throw error(detail::concat("model_group: ranks disagree on the grid (rows from ",
                                           rows.min, " to ", rows.max, ", columns from ", cols.min,
                                           " to ", cols.max, ")"));
            if (grid.rows == 0 || grid.cols == 0 || grid.size() != all.size())
                throw error(detail::concat("model_group: a ", grid.rows, " x ", grid.cols,
                                           " grid needs ", grid.size(), " ranks, the group has ",
                                           all.size()));
        });
        return grid;
    }

    Comm all_;
    grid_shape grid_;
    grid_position at_;
    Comm row_, column_;
};

namespace detail {
template <class C>
struct is_model_group : std::false_type {};
template <class C>
struct is_model_group<model_group<C>> : std::true_type {};
}  // namespace detail

/// The grid of a group: its own for a model_group, 1 x size() for a plain communicator.
template <communicator Comm>
grid_shape grid_of(const Comm& group) {
    if constexpr (detail::is_model_group<Comm>::value)
        return group.grid();
    else
        return {1, group.size()};
}

/// This rank's place in grid_of(group).
template <communicator Comm>
grid_position position_of(const Comm& group) {
    if constexpr (detail::is_model_group<Comm>::value)
        return group.position();
    else
        return {0, group.rank()};
}

/// The ranks that hold the different blocks of an activation in layout `l` (whose blocks
/// differ along the grid dimensions it is split over), or null when this rank alone holds
/// them (nothing to gather or reduce). A plain communicator is a 1 x size() grid: a layout
/// split only over grid rows then has one block, and no group is needed.
template <communicator Comm>
auto* group_splitting(Comm& group, layout l) {
    const grid_shape grid = grid_of(group);
    const bool rows = l.split_over_rows() && grid.rows > 1;
    const bool cols = l.split_over_cols() && grid.cols > 1;
    if constexpr (detail::is_model_group<Comm>::value) {
        using Inner = std::remove_reference_t<decltype(group.all())>;
        Inner* g = nullptr;
        if (rows && cols)
            g = &group.all();
        else if (rows)
            g = &group.column();
        else if (cols)
            g = &group.row();
        return g;
    } else {
        SHARDNET_ASSERT(!rows);
        return cols ? &group : static_cast<Comm*>(nullptr);
    }
}

}  // namespace shardnet
