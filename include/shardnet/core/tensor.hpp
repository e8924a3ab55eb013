// Tensor aliases over xtensor. Matrices are row-major batch x features; hot loops take raw
// pointers from them (data(), shape()), never expressions.
#pragma once

#include <cstddef>
#include <xtensor/xtensor.hpp>

namespace shardnet {

/// A row-major matrix. With XTENSOR_USE_XSIMD (exported by the package) its storage is aligned.
template <class T>
using matrix = xt::xtensor<T, 2, xt::layout_type::row_major>;

/// A dense vector (biases, per-row statistics).
template <class T>
using vector = xt::xtensor<T, 1, xt::layout_type::row_major>;

namespace detail {
/// Resizes only when the shape changes, so steady-state steps do not allocate.
template <class T>
void ensure_shape(matrix<T>& m, std::size_t rows, std::size_t cols) {
    if (m.shape(0) != rows || m.shape(1) != cols) m.resize({rows, cols});
}
template <class T>
void ensure_shape(vector<T>& v, std::size_t n) {
    if (v.shape(0) != n) v.resize({n});
}
}  // namespace detail

}  // namespace shardnet
