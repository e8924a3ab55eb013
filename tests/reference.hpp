// Plain double-precision references (naive loops) and helpers shared by the tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "shardnet/core/random.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"

namespace shardnet::test {

/// A row-major rows x cols matrix of doubles, as plain as it gets.
struct dmatrix {
    std::size_t rows = 0, cols = 0;
    std::vector<double> v;
    dmatrix() = default;
    dmatrix(std::size_t r, std::size_t c) : rows(r), cols(c), v(r * c, 0.0) {}
    double& operator()(std::size_t i, std::size_t j) { return v[i * cols + j]; }
    double operator()(std::size_t i, std::size_t j) const { return v[i * cols + j]; }
    double max_abs() const {
        double m = 0;
        for (double x : v)
            m = std::max(m, std::abs(x));
        return m;
    }
};

/// Deterministic values in [-1, 1) from the project's own counter-based generator.
inline dmatrix random_dmatrix(std::size_t rows, std::size_t cols, std::uint32_t stream) {
    dmatrix m(rows, cols);
    const random_key key{12345, 999, stream};
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j)
            m(i, j) = 2.0 * uniform_at(key, i, j) - 1.0;
    return m;
}

inline dmatrix multiply(const dmatrix& a, const dmatrix& b) {
    dmatrix c(a.rows, b.cols);
    for (std::size_t i = 0; i < a.rows; ++i)
        for (std::size_t j = 0; j < b.cols; ++j) {
            double s = 0;
            for (std::size_t l = 0; l < a.cols; ++l)
                s += a(i, l) * b(l, j);
            c(i, j) = s;
        }
    return c;
}

inline dmatrix transposed(const dmatrix& a) {
    dmatrix t(a.cols, a.rows);
    for (std::size_t i = 0; i < a.rows; ++i)
        for (std::size_t j = 0; j < a.cols; ++j)
            t(j, i) = a(i, j);
    return t;
}

/// The block [rows) x [cols) of a global matrix, converted to T.
template <class T>
matrix<T> block_of(const dmatrix& m, shard_range rows, shard_range cols) {
    matrix<T> out = matrix<T>::from_shape({rows.size(), cols.size()});
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < cols.size(); ++j)
            out(i, j) = static_cast<T>(m(rows.to_global(i), cols.to_global(j)));
    return out;
}

template <class T>
dmatrix to_dmatrix(const matrix<T>& m) {
    dmatrix d(m.shape(0), m.shape(1));
    for (std::size_t i = 0; i < d.rows; ++i)
        for (std::size_t j = 0; j < d.cols; ++j)
            d(i, j) = static_cast<double>(m(i, j));
    return d;
}

/// Largest |got - expected| over the block of `expected` that `got` should equal.
template <class T>
double max_error(const matrix<T>& got, const dmatrix& expected, shard_range rows,
                 shard_range cols) {
    if (got.shape(0) != rows.size() || got.shape(1) != cols.size())
        return std::numeric_limits<double>::infinity();
    double worst = 0;
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < cols.size(); ++j)
            worst = std::max(worst, std::abs(static_cast<double>(got(i, j)) -
                                             expected(rows.to_global(i), cols.to_global(j))));
    return worst;
}

/// Rounding-error bound of a product with inner dimension k whose factors are bounded by
/// max_a and max_b, computed in T: each of the k products and k additions rounds once, so
/// |error| <= 2 k eps sum|a_l b_l| <= 2 k^2 eps max_a max_b. A doubled margin covers the
/// activation (|derivative| <= 1.2 for the built-in ones) and the bias addition.
template <class T>
double product_tolerance(std::size_t k, double max_a, double max_b) {
    const double eps = std::numeric_limits<T>::epsilon();
    const double kk = static_cast<double>(std::max<std::size_t>(k, 1));
    return 4.0 * kk * kk * eps * std::max(max_a, 1.0) * std::max(max_b, 1.0) + 4.0 * eps;
}

}  // namespace shardnet::test
