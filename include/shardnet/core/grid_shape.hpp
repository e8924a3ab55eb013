// The shape of a model-parallel group seen as a grid of rows x cols ranks, and a rank's place
// in it. 1D model parallelism is the grid 1 x P.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "shardnet/core/error.hpp"

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

/// "RxC" (2x2, 1x4) as a grid of R rows and C columns, R and C at least 1; what command lines
/// call a model grid. `option` names the option in the message.
/// @throws error naming the expected form and what was got.
inline grid_shape parse_grid_shape(std::string_view text, std::string_view option) {
    auto number = [&](std::string_view part) -> std::size_t {
        std::size_t value = 0;
        const bool digits = !part.empty() && part.size() <= 6 &&
                            part.find_first_not_of("0123456789") == std::string_view::npos;
        for (const char ch : digits ? part : std::string_view{})
            value = value * 10 + static_cast<std::size_t>(ch - '0');
        if (value == 0)
            throw error(detail::concat(option,
                                       ": expected RxC with R and C whole numbers of at "
                                       "least 1 (2x2, 1x4), got '",
                                       text, "'"));
        return value;
    };
    const auto x = text.find('x');
    if (x == std::string_view::npos) number({});  // throws the message above
    return {number(text.substr(0, x)), number(text.substr(x + 1))};
}

}  // namespace shardnet
