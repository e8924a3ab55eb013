// The loop every element-wise pass over a shard runs in (the optimizers' update, the exact
// gradient norm, the reproducible sums' bound), and the non-finite check those passes fold in.
#pragma once

#include <cstddef>
#include <xsimd/xsimd.hpp>

namespace shardnet::detail {

/// Calls body(at, first, count) over n elements in xsimd batches, where at[a] points at the
/// batch's first element in arrays[a] (element `first` of n, `count` of them real: the batch
/// width, or fewer in the last batch); the last partial batch runs on a zero-padded copy. So every
/// element goes through the same instructions whatever its position, and a weight updates bitwise
/// alike on a rank that holds it inside a batch and on one whose shard ends with it (1-rank and
/// P-rank runs must agree exactly). Bodies load and store unaligned: shards start anywhere. Bit a
/// of `written` says whether body stores to arrays[a] (only those get the padded copy back).
template <class T, std::size_t Arrays, class Body>
void for_each_batch(std::size_t n, T* const (&arrays)[Arrays], unsigned written, Body&& body) {
    constexpr std::size_t width = xsimd::batch<T>::size;
    T* at[Arrays];
    std::size_t i = 0;
    for (; i + width <= n; i += width) {
        for (std::size_t a = 0; a < Arrays; ++a)
            at[a] = arrays[a] + i;
        body(at, i, width);
    }
    if (i == n) return;
    alignas(64) T tail[Arrays][width] = {};
    const std::size_t rest = n - i;
    for (std::size_t a = 0; a < Arrays; ++a) {
        for (std::size_t j = 0; j < rest; ++j)
            tail[a][j] = arrays[a][i + j];
        at[a] = tail[a];
    }
    body(at, i, rest);
    for (std::size_t a = 0; a < Arrays; ++a)
        if (written & (1u << a))
            for (std::size_t j = 0; j < rest; ++j)
                arrays[a][i + j] = tail[a][j];
}

/// Whether the gradients seen so far were all finite: g - g is 0 for a finite g and NaN for an
/// infinite or NaN one, and a NaN stays in a sum. Two vector operations per batch, in a pass
/// that waits on memory anyway.
template <class T>
class finite_watch {
  public:
    void see(const xsimd::batch<T>& g) noexcept { sum_ += g - g; }
    bool all_finite() const noexcept {
        alignas(64) T lanes[xsimd::batch<T>::size];
        sum_.store_aligned(lanes);
        for (T lane : lanes)
            if (lane != lane) return false;
        return true;
    }

  private:
    xsimd::batch<T> sum_ = xsimd::batch<T>(T(0));
};

}  // namespace shardnet::detail
