// The fixed-point grid on which sums come out the same bits in any order and grouping (the
// reproducible sums over ranks, the exact gradient norm, the sharded loss's statistics), and the
// passes that put whole arrays onto it and back, in xsimd batches.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <xsimd/xsimd.hpp>

#include "shardnet/core/error.hpp"
#include "shardnet/kernels/batch_pass.hpp"

// GCC 12 reports a false -Wmaybe-uninitialized inside avx512fintrin.h (the `__Y = __Y` idiom)
// wherever xsimd's abs and nearbyint are inlined for AVX-512; the values are fully initialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace shardnet {

/// A fixed-point grid on which up to `terms` values of magnitude at most `bound` sum exactly in an
/// int64, in any order and grouping: v sits at round(v · 2^scale), the largest scale with
/// terms · bound · 2^scale below 2^61. Its step is about terms · bound · 2^-61; values are
/// resolved to it (finer than double's rounding only for the largest). The power of two is
/// applied as two factors, each within double's range for any finite bound.
class fixed_point_grid {
  public:
    /// @pre bound is finite and >= 0; terms >= 1.
    fixed_point_grid(double bound, std::size_t terms) {
        SHARDNET_ASSERT(std::isfinite(bound) && bound >= 0 && terms >= 1);
        int bound_exponent = 0;
        std::frexp(bound, &bound_exponent);  // bound < 2^bound_exponent
        int term_bits = 0;
        while ((std::size_t{1} << term_bits) < terms)
            ++term_bits;
        const int scale = 61 - term_bits - bound_exponent;
        up_1_ = std::ldexp(1.0, scale / 2);
        up_2_ = std::ldexp(1.0, scale - scale / 2);
        down_1_ = 1.0 / up_1_;
        down_2_ = 1.0 / up_2_;
    }
    std::int64_t to_grid(double v) const {
        return static_cast<std::int64_t>(std::nearbyint(v * up_1_ * up_2_));
    }
    /// to_grid of every lane, the same bits: the same two products, rounded to nearest even
    /// (xsimd::nearbyint; not nearbyint_as_int, whose generic fallback rounds halves away from
    /// zero), then converted exactly, the value being integral.
    template <class Arch>
    xsimd::batch<std::int64_t, Arch> to_grid(const xsimd::batch<double, Arch>& v) const {
        return xsimd::batch_cast<std::int64_t>(xsimd::nearbyint(v * up_1_ * up_2_));
    }
    double from_grid(std::int64_t q) const { return static_cast<double>(q) * down_1_ * down_2_; }
    /// from_grid of every lane, the same bits (the conversion rounds to nearest even, as the
    /// scalar one does).
    template <class Arch>
    xsimd::batch<double, Arch> from_grid(const xsimd::batch<std::int64_t, Arch>& q) const {
        return xsimd::batch_cast<double>(q) * down_1_ * down_2_;
    }

  private:
    double up_1_ = 1, up_2_ = 1, down_1_ = 1, down_2_ = 1;
};

namespace detail {

/// The largest |x[i]| over n values, +inf if any is inf or NaN (0 for n = 0): what sets a grid's
/// bound. Exact, so the same whatever the batch width or where the array is cut (the padded
/// tail's zeros change neither the largest nor the check).
template <class T>
T largest_magnitude(const T* x, std::size_t n) {
    using batch = xsimd::batch<T>;
    batch top(T(0));
    finite_watch<T> watch;
    T* const arrays[1] = {const_cast<T*>(x)};  // never written: `written` is 0
    for_each_batch(n, arrays, 0u, [&](T* const* at, std::size_t, std::size_t) {
        const batch v = batch::load_unaligned(at[0]);
        watch.see(v);
        top = xsimd::max(top, xsimd::abs(v));
    });
    if (!watch.all_finite()) return std::numeric_limits<T>::infinity();
    alignas(64) T lanes[batch::size];
    top.store_aligned(lanes);
    return *std::max_element(lanes, lanes + batch::size);
}

// The two passes below end in scalar loops, not for_each_batch's padded batch: on the grid the
// scalar and batch forms are the same bits by construction (to_grid, from_grid), so the tail
// needs no copy to agree with the body.

/// sums[i] = Σ over q < count of grid.to_grid(parts[q·stride + i]), for i < n: the chunks' slabs
/// laid one after another `stride` apart, each element's chunks added in the integers. The
/// same bits as that scalar loop (to_grid's batch form is).
/// @pre every value finite and within the grid's bound.
template <class T>
void add_onto_grid(const T* parts, std::size_t stride, std::size_t count, std::size_t n,
                   const fixed_point_grid& grid, std::int64_t* sums) {
    using wide = xsimd::batch<double>;
    using lanes = xsimd::batch<std::int64_t>;
    std::size_t i = 0;
    for (; i + wide::size <= n; i += wide::size) {
        lanes total(std::int64_t(0));
        for (std::size_t q = 0; q < count; ++q)  // float: widened exactly
            total += grid.to_grid(wide::load_unaligned(parts + q * stride + i));
        total.store_unaligned(sums + i);
    }
    for (; i < n; ++i) {
        std::int64_t total = 0;
        for (std::size_t q = 0; q < count; ++q)
            total += grid.to_grid(static_cast<double>(parts[q * stride + i]));
        sums[i] = total;
    }
}

/// out[i] = T(grid.from_grid(sums[i])) for i < n, the same bits as that scalar loop.
template <class T>
void from_grid_values(const std::int64_t* sums, std::size_t n, const fixed_point_grid& grid,
                      T* out) {
    using lanes = xsimd::batch<std::int64_t>;
    std::size_t i = 0;
    for (; i + lanes::size <= n; i += lanes::size)
        grid.from_grid(lanes::load_unaligned(sums + i)).store_unaligned(out + i);  // to T
    for (; i < n; ++i)
        out[i] = static_cast<T>(grid.from_grid(sums[i]));
}

}  // namespace detail
}  // namespace shardnet

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
