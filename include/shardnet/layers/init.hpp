// Weight initialization by global index: each rank fills only its shard, yet the global matrix
// is the same for every P and grid, and the scale comes from the global fan-in and fan-out.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shardnet/core/random.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"

namespace shardnet {

/// How a weight matrix of global shape fan_in x fan_out is drawn.
enum class init_scheme {
    xavier_uniform,  ///< U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)
    xavier_normal,   ///< N(0, 2 / (fan_in + fan_out))
    he_uniform,      ///< U(-a, a), a = sqrt(6 / fan_in) (He et al., for ReLU)
    he_normal,       ///< N(0, 2 / fan_in)
    zeros,
};

constexpr std::string_view to_string(init_scheme s) {
    switch (s) {
        case init_scheme::xavier_uniform:
            return "xavier_uniform";
        case init_scheme::xavier_normal:
            return "xavier_normal";
        case init_scheme::he_uniform:
            return "he_uniform";
        case init_scheme::he_normal:
            return "he_normal";
        case init_scheme::zeros:
            return "zeros";
    }
    return "?";
}

/// The value of global entry (row, col) of a fan_in x fan_out matrix under `scheme`: a pure
/// function of its arguments.
inline double initial_value(init_scheme scheme, const random_key& key, std::size_t fan_in,
                            std::size_t fan_out, std::size_t row, std::size_t col) {
    const double in = static_cast<double>(fan_in), out = static_cast<double>(fan_out);
    switch (scheme) {
        case init_scheme::xavier_uniform:
            return std::sqrt(6.0 / (in + out)) * (2.0 * uniform_at(key, row, col) - 1.0);
        case init_scheme::xavier_normal:
            return std::sqrt(2.0 / (in + out)) * normal_at(key, row, col);
        case init_scheme::he_uniform:
            return std::sqrt(6.0 / in) * (2.0 * uniform_at(key, row, col) - 1.0);
        case init_scheme::he_normal:
            return std::sqrt(2.0 / in) * normal_at(key, row, col);
        case init_scheme::zeros:
            return 0.0;
    }
    return 0.0;
}

/// Fills `shard` (rows.size() x cols.size()) with the block [rows) x [cols) of the global
/// fan_in x fan_out matrix.
template <class T>
void initialize_shard(matrix<T>& shard, init_scheme scheme, const random_key& key,
                      std::size_t fan_in, std::size_t fan_out, shard_range rows, shard_range cols) {
    shard.resize({rows.size(), cols.size()});
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < cols.size(); ++j)
            shard(i, j) = static_cast<T>(
                initial_value(scheme, key, fan_in, fan_out, rows.to_global(i), cols.to_global(j)));
}

}  // namespace shardnet
