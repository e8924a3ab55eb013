// The shape of a model-parallel group seen as a grid of rows x cols ranks, and a rank's place
// in it. 1D model parallelism is the grid 1 x P.
#pragma once

#include <cstddef>

namespace shardnet {

/// A grid of rows x cols ranks, numbered row-major: the rank at (row, col) is row * cols + col.
struct grid_shape {
    std::size_t rows = 1;
    std::size_t cols = 1;

    constexpr std::size_t size() const { return rows * cols; }
    friend constexpr bool operator==(grid_shape, grid_shape) = default;
};

/// A rank's row and column in a grid_shape.
struct grid_position {
    std::size_t row = 0;
    std::size_t col = 0;

    friend constexpr bool operator==(grid_position, grid_position) = default;
};

/// The position of model rank `rank` (row-major). @pre rank < grid.size()
constexpr grid_position position_of_rank(grid_shape grid, std::size_t rank) {
    return {rank / grid.cols, rank % grid.cols};
}

/// The model rank at `p` (row-major).
constexpr std::size_t rank_of_position(grid_shape grid, grid_position p) {
    return p.row * grid.cols + p.col;
}

}  // namespace shardnet
