// The GEMM micro-kernel: one MR x NR tile of C accumulated in vector registers from packed
// micro-panels of op(A) and op(B), then merged into C as alpha·tile + beta·C.
#pragma once

#include <algorithm>
#include <cstddef>
#include <xsimd/xsimd.hpp>

#include "shardnet/kernels/simd.hpp"

namespace shardnet::detail {

/// C[0:rows, 0:cols] = alpha · Σ_p a[p·MR + i] · b[p·NR + j] + beta · C, for the packed
/// micro-panels `a` (depth x MR, from pack_a) and `b` (depth x NR, aligned, from pack_b).
/// rows <= MR and cols <= NR: a full tile is stored straight from registers, an edge tile
/// (the ragged right or bottom border of C) through a small buffer, so the hot loop is the
/// same for every tile. beta == 0 never reads C, so NaN or garbage there cannot propagate.
template <class T, class Arch, std::size_t MR, std::size_t NV>
void micro_kernel(std::size_t depth, const T* a, const T* b, T alpha, T beta, T* c, std::size_t ldc,
                  std::size_t rows, std::size_t cols) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t width = batch::size;
    constexpr std::size_t NR = NV * width;

    batch acc[MR][NV];
    static_for<MR>([&](auto i) { static_for<NV>([&](auto v) { acc[i][v] = batch(T(0)); }); });

    for (std::size_t p = 0; p < depth; ++p) {
        batch row[NV];
        static_for<NV>([&](auto v) { row[v] = batch::load_aligned(b + v * width); });
        static_for<MR>([&](auto i) {
            const batch broadcast(a[i]);
            static_for<NV>([&](auto v) { acc[i][v] = xsimd::fma(broadcast, row[v], acc[i][v]); });
        });
        a += MR;
        b += NR;
    }

    const batch alpha_v(alpha);
    const batch beta_v(beta);
    if (rows == MR && cols == NR) {
        static_for<MR>([&](auto i) {
            static_for<NV>([&](auto v) {
                T* out = c + i * ldc + v * width;
                if (beta == T(0))
                    (alpha_v * acc[i][v]).store_unaligned(out);
                else
                    xsimd::fma(alpha_v, acc[i][v], beta_v * batch::load_unaligned(out))
                        .store_unaligned(out);
            });
        });
        return;
    }

    alignas(64) T tile[MR * NR];
    static_for<MR>([&](auto i) {
        static_for<NV>(
            [&](auto v) { (alpha_v * acc[i][v]).store_aligned(tile + i * NR + v * width); });
    });
    for (std::size_t i = 0; i < rows; ++i) {
        T* out = c + i * ldc;
        const T* in = tile + i * NR;
        if (beta == T(0))
            for (std::size_t j = 0; j < cols; ++j)
                out[j] = in[j];
        else
            for (std::size_t j = 0; j < cols; ++j)
                out[j] = in[j] + beta * out[j];
    }
}

}  // namespace shardnet::detail
