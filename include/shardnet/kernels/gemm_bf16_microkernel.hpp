// The bfloat16 GEMM micro-kernels: one MR x NR fp32 tile of C from pair panels
// (gemm_bf16_pack.hpp), by vdpbf16ps where the target has AVX512-BF16, by widening to float and FMA
// anywhere else.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "shardnet/core/bfloat16.hpp"
#include "shardnet/kernels/gemm_microkernel.hpp"
#include "shardnet/kernels/simd.hpp"

namespace shardnet::detail {

/// The low bfloat16 of each pair moved to the high half: `words << 16`. On AVX-512 through the
/// zero-masked shift, because xsimd 8.1's `<<` calls GCC 12's unmasked one, which starts from
/// `_mm512_undefined_epi32` and raises a false -Wmaybe-uninitialized in every caller.
template <class Arch>
xsimd::batch<std::uint32_t, Arch> low_half_up(const xsimd::batch<std::uint32_t, Arch>& words) {
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
        return _mm512_maskz_slli_epi32(0xffff, words, 16);
    else
#endif
        return words << 16;
}

/// The portable micro-kernel on Arch: each pair of bfloat16 widened to two floats (a shift and a
/// mask: exact), then two FMAs, low half first. Correct on any target xsimd supports; about half
/// the speed of the float GEMM (twice the instructions per product), which is fine for a
/// fallback. It reads the same pair panels as the AVX512-BF16 kernel, so the packing is tested
/// on every CPU.
template <class Arch>
struct bf16_widening_kernel {
    using arch_type = Arch;
    using batch = xsimd::batch<float, Arch>;
    using word_batch = xsimd::batch<std::uint32_t, Arch>;
    static constexpr std::size_t width = batch::size;  ///< fp32 lanes (columns) per vector
    /// Vector registers the kernel needs besides its MR x NV accumulators.
    static constexpr std::size_t extra_registers(std::size_t nv) { return 2 * nv + 2; }

    /// C tile = alpha · Σ_q (a pairs of row i) · (b pairs of column j) + beta · C over `pairs`
    /// steps; `a` packed by pack_pairs<MR>, `b` by pack_pairs<NV·width>, aligned.
    /// side_job(q) runs before step q for every q multiple of SideJob::every, as in the float
    /// micro-kernel.
    template <std::size_t MR, std::size_t NV, class SideJob = no_side_job>
    static void run(std::size_t pairs, const std::uint32_t* a, const std::uint32_t* b, float alpha,
                    float beta, float* c, std::size_t ldc, std::size_t rows, std::size_t cols,
                    const SideJob& side_job = {}) {
        constexpr std::size_t NR = NV * width;
        batch acc[MR][NV];
        static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
            static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE { acc[i][v] = batch(0.0f); });
        });
        const word_batch high_mask(0xffff0000u);
        const std::size_t c_prefetch_from = c_prefetch_start(pairs);
        for (std::size_t q = 0; q < pairs; ++q) {
            prefetch_c_tile<NV, width>(q, c_prefetch_from, c, ldc, rows, cols);
            if constexpr (!std::is_same_v<SideJob, no_side_job>)
                if (q % SideJob::every == 0) side_job(q);
            batch low[NV], high[NV];
            static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                const word_batch words = word_batch::load_aligned(b + v * width);
                low[v] = xsimd::bitwise_cast<batch>(low_half_up(words));
                high[v] = xsimd::bitwise_cast<batch>(words & high_mask);
            });
            static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
                const batch a_low(std::bit_cast<float>(a[i] << 16));
                const batch a_high(std::bit_cast<float>(a[i] & 0xffff0000u));
                static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                    acc[i][v] = xsimd::fma(a_low, low[v], acc[i][v]);
                    acc[i][v] = xsimd::fma(a_high, high[v], acc[i][v]);
                });
            });
            a += MR;
            b += NR;
        }
        merge_tile<MR, NV>(acc, alpha, beta, c, ldc, rows, cols);
    }
};

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
/// The AVX512-BF16 micro-kernel: one vdpbf16ps per (row, vector of 16 columns, pair of k),
/// i.e. 32 multiply-adds per instruction, twice an fp32 FMA's 16 (on Zen 4 and Zen 5 it issues
/// at the same rate as vfmadd231ps zmm, so its peak is twice the float peak). A row's pair is
/// broadcast as one 32-bit word to all 16 lanes. Products of two bfloat16 are exact in fp32;
/// the instruction adds them into the accumulator rounding to nearest even, but flushes
/// subnormal inputs and results to zero (|values| < 2^-126), which the portable kernel does not.
/// Like the float kernel it fetches its C tile over its last steps (prefetch_c_tile, a step
/// being a pair here). Measured on Zen 5 (float FMA peak 282-293 GFLOP/s, 2026-12-02; gemm_bf16
/// with and without, alternating in one process, medians of 2 runs) on the bf16 step of
/// 1024-4096-4096-1024 at batch 256: dY·Wᵀ m = 256, n = k = 4096 +7-8%, X·W m = 256, n = 1024,
/// k = 4096 +5-6% (C read again by each of 4 KC blocks), the other five shapes within ±2%; their
/// sum +1.5-1.9%.
struct bf16_dot_kernel {
    using arch_type = xsimd::avx512f;
    using batch = xsimd::batch<float, xsimd::avx512f>;
    static constexpr std::size_t width = 16;
    /// One row of B per vector, one broadcast of A.
    static constexpr std::size_t extra_registers(std::size_t nv) { return nv + 1; }

    /// side_job(q) runs before step q for every q multiple of SideJob::every, as in the float
    /// micro-kernel.
    template <std::size_t MR, std::size_t NV, class SideJob = no_side_job>
    static void run(std::size_t pairs, const std::uint32_t* a, const std::uint32_t* b, float alpha,
                    float beta, float* c, std::size_t ldc, std::size_t rows, std::size_t cols,
                    const SideJob& side_job = {}) {
        constexpr std::size_t NR = NV * width;
        __m512 acc[MR][NV];
        static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
            static_for<NV>([&](auto v)
                               SHARDNET_LAMBDA_ALWAYS_INLINE { acc[i][v] = _mm512_setzero_ps(); });
        });
        const std::size_t c_prefetch_from = c_prefetch_start(pairs);
        for (std::size_t q = 0; q < pairs; ++q) {
            prefetch_c_tile<NV, width>(q, c_prefetch_from, c, ldc, rows, cols);
            if constexpr (!std::is_same_v<SideJob, no_side_job>)
                if (q % SideJob::every == 0) side_job(q);
            __m512bh row[NV];
            static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                row[v] = (__m512bh)_mm512_load_si512(b + v * width);
            });
            static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
                const __m512bh broadcast = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[i]));
                static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                    acc[i][v] = _mm512_dpbf16_ps(acc[i][v], broadcast, row[v]);
                });
            });
            a += MR;
            b += NR;
        }
        batch tile[MR][NV];
        static_for<MR>([&](auto i) SHARDNET_LAMBDA_ALWAYS_INLINE {
            static_for<NV>([&](auto v)
                               SHARDNET_LAMBDA_ALWAYS_INLINE { tile[i][v] = batch(acc[i][v]); });
        });
        merge_tile<MR, NV>(tile, alpha, beta, c, ldc, rows, cols);
    }
};
#endif

}  // namespace shardnet::detail
