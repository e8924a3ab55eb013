// The GEMM micro-kernel: one MR x NR tile of C accumulated in vector registers from a packed
// micro-panel of op(A) and one of op(B) (packed, or read in place), then merged into C as
// alpha·tile + beta·C.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "shardnet/kernels/simd.hpp"

namespace shardnet::detail {

/// The micro-kernel's default side job: none. A side job is work with no dependence on the
/// FMA chain that the micro-kernel interleaves with it, side_job(p) once every `every` steps
/// of p, so that it runs on the load, store and shuffle ports the FMAs leave idle (see
/// transposing_pack_step).
struct no_side_job {
    static constexpr std::size_t every = 1;
    void operator()(std::size_t) const noexcept {}
};

/// C[0:rows, 0:cols] = alpha · acc + beta · C for an MR x (NV batches) tile of accumulators
/// (the float and the bfloat16 micro-kernels' last step): a full tile straight from registers,
/// an edge tile (the ragged right or bottom border of C) through a small buffer, so the hot
/// loop is the same for every tile. beta == 0 never reads C.
/// Always inlined: called out of line, it takes the accumulators' address, and a micro-kernel
/// with a side job (transposing_pack_step, also a call) must then store and reload all of them
/// around every side job, inside the depth loop: measured 22-30% slower for dY·Wᵀ at M = 32,
/// 64, K = N = 4096 (Zen 5) when this was a plain function. The lambdas of its static_for steps
/// likewise: g++ 12 had left them out of line in the 6 x 4 kernels of train_mlp, bench_gemm and
/// bench_mlp, so every micro-tile stored its 24 accumulators after the depth loop for them.
/// Inlined, bench_gemm (Zen 5, float FMA peak 237-255 GFLOP/s, 2026-12-02; 3 alternating runs
/// of each binary, medians) ran Xᵀ·dY with k = 32 +23-24% (K = N = 1024, 4096) and k = 64
/// +11-21%, where a micro-tile is only k steps deep; +3-7% on most other shapes.
template <std::size_t MR, std::size_t NV, class Batch, class T = typename Batch::value_type>
SHARDNET_ALWAYS_INLINE void merge_tile(const Batch (&acc)[MR][NV], T alpha, T beta, T* c,
                                       std::size_t ldc, std::size_t rows, std::size_t cols) {
    constexpr std::size_t width = Batch::size;
    constexpr std::size_t NR = NV * width;
    const Batch alpha_v(alpha);
    const Batch beta_v(beta);
    if (rows == MR && cols == NR) {
        static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
            static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                T* out = c + i * ldc + v * width;
                if (beta == T(0))
                    (alpha_v * acc[i][v]).store_unaligned(out);
                else
                    xsimd::fma(alpha_v, acc[i][v], beta_v * Batch::load_unaligned(out))
                        .store_unaligned(out);
            });
        });
        return;
    }
    // An edge tile goes through the buffer by the same vector expression as a full tile, C's
    // values copied in first: each element of C then gets the same roundings whether a full or
    // an edge tile covers it, which the tiles' bitwise agreement needs (gemm_blocking.hpp; a
    // scalar alpha·acc + beta·C here gave other last bits for alpha, beta that do not round
    // exactly). The rest of the buffer is zeroed, never read from C.
    alignas(64) T tile[MR * NR];
    if (beta != T(0)) {
        std::fill_n(tile, MR * NR, T(0));
        for (std::size_t i = 0; i < rows; ++i)
            std::copy_n(c + i * ldc, cols, tile + i * NR);
    }
    static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
        static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
            T* t = tile + i * NR + v * width;
            if (beta == T(0))
                (alpha_v * acc[i][v]).store_aligned(t);
            else
                xsimd::fma(alpha_v, acc[i][v], beta_v * Batch::load_aligned(t)).store_aligned(t);
        });
    });
    for (std::size_t i = 0; i < rows; ++i)
        std::copy_n(tile + i * NR, cols, c + i * ldc);
}

/// Micro-kernels fetch their C tile for writing over their last c_prefetch_lead steps of the
/// depth, one cache line a step (prefetch_c_tile, called with every step). The tile's rows are ldc
/// apart and, past the first MC block or KC block, usually no longer cached: fetched by the merge
/// itself, their misses stalled the end of every micro-tile. Measured for the float kernel on Zen 5
/// (float FMA peak 243-260 GFLOP/s, 2026-12-02) in a round-robin against OpenBLAS: +2-5% at M =
/// 1024, K = N = 2048 and 4096 (X·W 0.96-0.98 -> 0.99-1.00x, dY·Wᵀ 0.94-0.95 -> 0.97-0.98x), Xᵀ·dY
/// with k = 32, m = n = 4096 0.92 -> 1.03x, within noise at M <= 256. In bench_gemm (one binary,
/// with and without, 6 alternations, medians): Xᵀ·dY at bench M = 32 (k = 32) 89 -> 145 GFLOP/s at
/// K = N = 4096 and 113 -> 167 at 1024, M = 64 137-158 -> 185, X·W M = 64 156 -> 174; there a
/// micro-tile is only k steps deep, and its merge into C was most of it. (A prefetch at the start
/// of the tile, tried before, measured within noise: 12,000 cycles ahead of the merge at k = 1024.)
/// For the bfloat16 kernel (a step: one pair of the depth) see gemm_bf16_microkernel.hpp.
inline constexpr std::size_t c_prefetch_lead = 200;

/// The first step at which prefetch_c_tile fetches a line, for a micro-kernel `depth` steps deep.
inline constexpr std::size_t c_prefetch_start(std::size_t depth) noexcept {
    return depth > c_prefetch_lead ? depth - c_prefetch_lead : 0;
}

/// Step p's part of fetching the C tile (rows x cols at c, NV vectors of `width` values a row):
/// from step `from` (c_prefetch_start) on, one line a step. The float kernel compiles to the same
/// instructions as when this was written out in its loop.
template <std::size_t NV, std::size_t width, class T>
SHARDNET_ALWAYS_INLINE void prefetch_c_tile(std::size_t p, std::size_t from, T* c, std::size_t ldc,
                                            std::size_t rows, std::size_t cols) noexcept {
    if (p >= from) [[unlikely]]  // one compare a step, the line's address only in the last ones
        if (const std::size_t q = p - from, i = q / NV, v = q % NV; i < rows && v * width < cols)
            prefetch_for_write(c + i * ldc + v * width);
}

/// C[0:rows, 0:cols] = alpha · Σ_p a[p·MR + i] · b[p·b_stride + j] + beta · C, for the packed
/// micro-panel `a` (depth x MR, from pack_a) and a micro-panel `b` of depth x NR values whose
/// steps of p are b_stride apart: packed by pack_b (BInPlace == false: b_stride == NR,
/// aligned), or op(B) itself read in place (BInPlace == true: b_stride = ldb, any alignment,
/// all NR columns must exist). In place, `prefetch_ahead` > 0 also prefetches the row of op(B)
/// that many elements to the right at each step (the strips the next calls will read).
/// rows <= MR and cols <= NR: a full tile is stored straight from registers, an edge tile
/// (the ragged right or bottom border of C) through a small buffer, so the hot loop is the
/// same for every tile. beta == 0 never reads C, so NaN or garbage there cannot propagate.
/// side_job(p) runs before step p for every p multiple of SideJob::every.
/// Not better, measured on Zen 5 (float FMA peak 225-252 GFLOP/s, 2026-12-03, alternating rounds
/// against this kernel): prefetching the packed op(A) panel 64 or 128 steps ahead, non-temporal
/// or not, so that it would leave L2 to the strips of op(B) (0.99-1.01x at M = 256, 1024, K = N =
/// 2048, 4096); a ragged last tile of 1-2 or 3-4 rows on a 2- or 4-row kernel instead of the 6-row
/// one (X·W: 0.99-1.06x at M = 32, 64, within noise at 96 .. 1024, for two more instantiations of
/// every kernel).
/// Everything it calls, its static_for steps included, is always inlined: a call left in the
/// depth loop makes it store and reload every accumulator around the call. The test
/// micro_kernels_inlined (tests/micro_kernels_inlined.sh) checks the built examples for any.
template <class T, class Arch, std::size_t MR, std::size_t NV, bool BInPlace = false,
          class SideJob = no_side_job>
void micro_kernel(std::size_t depth, const T* a, const T* b, T alpha, T beta, T* c, std::size_t ldc,
                  std::size_t rows, std::size_t cols,
                  std::size_t b_stride = NV * xsimd::batch<T, Arch>::size,
                  std::size_t prefetch_ahead = 0, const SideJob& side_job = {}) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t width = batch::size;
    constexpr std::size_t NR = NV * width;
    constexpr std::size_t line = 64 / sizeof(T);

    batch acc[MR][NV];
    static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
        static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE { acc[i][v] = batch(T(0)); });
    });
    const std::size_t c_prefetch_from = c_prefetch_start(depth);

    for (std::size_t p = 0; p < depth; ++p) {
        prefetch_c_tile<NV, width>(p, c_prefetch_from, c, ldc, rows, cols);
        if constexpr (!std::is_same_v<SideJob, no_side_job>)
            if (p % SideJob::every == 0) side_job(p);
        batch row[NV];
        if constexpr (BInPlace) {
            static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                row[v] = batch::load_unaligned(b + v * width);
            });
            if (prefetch_ahead != 0)  // a plain loop, not static_for: see prefetch()
                for (std::size_t l = 0; l < NR; l += line)
                    prefetch(b + prefetch_ahead + l);
        } else {
            static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                row[v] = batch::load_aligned(b + v * width);
            });
        }
        static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
            const batch broadcast(a[i]);
            static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                acc[i][v] = xsimd::fma(broadcast, row[v], acc[i][v]);
            });
        });
        a += MR;
        b += b_stride;
    }

    merge_tile<MR, NV>(acc, alpha, beta, c, ldc, rows, cols);
}

}  // namespace shardnet::detail
