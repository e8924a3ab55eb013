// Small xsimd 8.1 helpers shared by the kernels, so that an xsimd upgrade is one edit here and
// architecture facts (register count, alignment) are asked in one place.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <xsimd/xsimd.hpp>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace shardnet::detail {

/// Sum of the lanes of a batch. xsimd 8 calls it `hadd`; xsimd 9 renamed it `reduce_add`.
template <class T, class Arch>
T horizontal_sum(const xsimd::batch<T, Arch>& x) noexcept {
    if constexpr (std::is_same_v<T, double> && std::is_base_of_v<xsimd::avx512f, Arch>) {
        // xsimd 8.1's hadd here inlines GCC 12's _mm512_extractf64x4_pd, whose `__Y = __Y`
        // idiom raises a false -Wmaybe-uninitialized in every caller (not silenceable around
        // this function). Eight lanes through the stack cost the same few cycles.
        alignas(64) double lanes[8];
        x.store_aligned(lanes);
        return ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) +
               ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
    } else {
        return xsimd::hadd(x);
    }
}

/// Architectural vector registers of Arch: the register budget of a micro-kernel.
/// AVX-512 has 32 (zmm0-31); SSE and AVX/AVX2 have 16. Unknown architectures get the
/// conservative 16: a too-small tile is slower, a too-large one spills on every FMA.
template <class Arch>
inline constexpr std::size_t vector_register_count =
    std::is_base_of_v<xsimd::avx512f, Arch> ? 32 : 16;

/// Force inlining where the compiler's own choice would cost registers: a call that is not
/// inlined takes the address of the accumulators it reaches, which then live in memory (see
/// merge_tile, kernels/gemm_microkernel.hpp). SHARDNET_LAMBDA_ALWAYS_INLINE goes after a lambda's
/// parameter list.
#if defined(__GNUC__)
#define SHARDNET_ALWAYS_INLINE inline __attribute__((always_inline))
#define SHARDNET_LAMBDA_ALWAYS_INLINE __attribute__((always_inline))
#else
#define SHARDNET_ALWAYS_INLINE inline
#define SHARDNET_LAMBDA_ALWAYS_INLINE
#endif

/// Calls f(std::integral_constant<std::size_t, I>{}) for I = 0 .. N-1, fully unrolled. The
/// micro-kernel uses it so that its accumulators are indexed by constants and stay in
/// registers whatever the compiler's unrolling heuristics decide.
template <std::size_t N, class F>
SHARDNET_ALWAYS_INLINE void static_for(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) SHARDNET_LAMBDA_ALWAYS_INLINE {
        (f(std::integral_constant<std::size_t, I>{}), ...);
    }
    (std::make_index_sequence<N>{});
}

/// Side of the square blocks transpose_block_copy moves: one 128-bit register of T, the widest
/// true two-source interleave xsimd 8.1 offers (its AVX and AVX-512 zip_lo/zip_hi interleave
/// within 128-bit lanes only). 1 (plain scalar copy) without SSE2.
template <class T>
inline constexpr std::size_t transpose_block = XSIMD_WITH_SSE2 ? 16 / sizeof(T) : 1;

/// dst[c·ld_dst + r] = src[r·ld_src + c] for r, c < transpose_block<T>: the inner step of the
/// transposing packs. In registers it costs ~1 instruction per element where a scalar
/// transpose costs a load and a store each (measured 2.5x faster on Zen 4). Always inlined: it
/// runs inside micro-kernel loops as a side job (transposing_pack_step).
template <class T>
SHARDNET_ALWAYS_INLINE void transpose_block_copy(const T* src, std::size_t ld_src, T* dst,
                                                 std::size_t ld_dst) {
#if XSIMD_WITH_SSE2
    using lane = xsimd::batch<T, xsimd::sse2>;
    if constexpr (lane::size == 4) {
        using pair = xsimd::batch<double, xsimd::sse2>;
        const lane r0 = lane::load_unaligned(src), r1 = lane::load_unaligned(src + ld_src);
        const lane r2 = lane::load_unaligned(src + 2 * ld_src);
        const lane r3 = lane::load_unaligned(src + 3 * ld_src);
        // Interleave floats, then pairs of floats (as doubles): the classic 4x4 transpose.
        const pair t0 = xsimd::bitwise_cast<pair>(xsimd::zip_lo(r0, r1));
        const pair t1 = xsimd::bitwise_cast<pair>(xsimd::zip_hi(r0, r1));
        const pair t2 = xsimd::bitwise_cast<pair>(xsimd::zip_lo(r2, r3));
        const pair t3 = xsimd::bitwise_cast<pair>(xsimd::zip_hi(r2, r3));
        xsimd::bitwise_cast<lane>(xsimd::zip_lo(t0, t2)).store_unaligned(dst);
        xsimd::bitwise_cast<lane>(xsimd::zip_hi(t0, t2)).store_unaligned(dst + ld_dst);
        xsimd::bitwise_cast<lane>(xsimd::zip_lo(t1, t3)).store_unaligned(dst + 2 * ld_dst);
        xsimd::bitwise_cast<lane>(xsimd::zip_hi(t1, t3)).store_unaligned(dst + 3 * ld_dst);
    } else {
        const lane r0 = lane::load_unaligned(src), r1 = lane::load_unaligned(src + ld_src);
        xsimd::zip_lo(r0, r1).store_unaligned(dst);
        xsimd::zip_hi(r0, r1).store_unaligned(dst + ld_dst);
    }
#else
    dst[0] = src[0];
    (void)ld_src;
    (void)ld_dst;
#endif
}

/// Whether transpose_16x16_words exists for T: 32-bit values on AVX-512.
template <class T>
#if defined(__AVX512F__)
inline constexpr bool wide_transpose = sizeof(T) == 4;
#else
inline constexpr bool wide_transpose = false;
#endif

#if defined(__AVX512F__)
/// dest[j·dest_stride + i] = 32-bit word j of line i, for 16 lines of 16 words: line i at
/// source + i·source_stride (S: float, or bfloat16 read as pairs), dest of D (float, or pair
/// words), strides in elements of each, any alignment. A 16 x 16 transpose in four rounds of
/// 16 shuffles, each line read and each row of dest written as one 64-byte vector.
/// Why, where transpose_block_copy's 4 x 4 blocks also work: a transposing pack in 4 x 4 blocks
/// writes 16 bytes of each row of a 64-column strip per pass over the depth, 16 passes, so each
/// cache line of the strip (256 KiB of float at KC = 1024: out of L1) is fetched again by each
/// of the 4 passes that write into it; in 16 x 16 blocks, 4 passes each write whole lines. Measured
/// on Zen 5 (float FMA peak 282-293 GFLOP/s, 2026-12-02), alternating with the 4 x 4 pack in one
/// process: float dY·Wᵀ at M = 1024, K = N = 1024..4096 (several MC blocks: pack_b of every strip)
/// +2-4%, at M = 2048 +1-2%; bfloat16, see pack_pairs.
template <class S, class D>
SHARDNET_ALWAYS_INLINE void transpose_16x16_words(const S* source, std::size_t source_stride,
                                                  D* dest, std::size_t dest_stride) noexcept {
    static_assert(sizeof(D) == 4 && (sizeof(S) == 4 || sizeof(S) == 2));
    // Zero-masked forms throughout: the unmasked ones start from GCC 12's
    // `_mm512_undefined_epi32`, whose `__Y = __Y` raises a false -Wmaybe-uninitialized.
    constexpr __mmask16 words = 0xffff;
    constexpr __mmask8 quads = 0xff;
    __m512i r[16], t[16];
    for (int i = 0; i < 16; ++i)
        r[i] = _mm512_loadu_si512(source + i * source_stride);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_maskz_unpacklo_epi32(words, r[i], r[i + 1]);
        t[i + 1] = _mm512_maskz_unpackhi_epi32(words, r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_maskz_unpacklo_epi64(quads, t[i], t[i + 2]);
        r[i + 1] = _mm512_maskz_unpackhi_epi64(quads, t[i], t[i + 2]);
        r[i + 2] = _mm512_maskz_unpacklo_epi64(quads, t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_maskz_unpackhi_epi64(quads, t[i + 1], t[i + 3]);
    }
    // r[4b + c] now holds words c, c + 4, c + 8, c + 12 (one per 128-bit lane) of lines 4b ..
    // 4b + 3; two rounds of lane shuffles gather each word's four lanes.
    for (int c = 0; c < 4; ++c) {
        t[c] = _mm512_maskz_shuffle_i32x4(words, r[c], r[4 + c], 0x88);      // lanes 0, 2 of each
        t[4 + c] = _mm512_maskz_shuffle_i32x4(words, r[c], r[4 + c], 0xdd);  // lanes 1, 3
        t[8 + c] = _mm512_maskz_shuffle_i32x4(words, r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_maskz_shuffle_i32x4(words, r[8 + c], r[12 + c], 0xdd);
    }
    for (int c = 0; c < 4; ++c) {
        _mm512_storeu_si512(dest + c * dest_stride,
                            _mm512_maskz_shuffle_i32x4(words, t[c], t[8 + c], 0x88));
        _mm512_storeu_si512(dest + (c + 8) * dest_stride,
                            _mm512_maskz_shuffle_i32x4(words, t[c], t[8 + c], 0xdd));
        _mm512_storeu_si512(dest + (c + 4) * dest_stride,
                            _mm512_maskz_shuffle_i32x4(words, t[4 + c], t[12 + c], 0x88));
        _mm512_storeu_si512(dest + (c + 12) * dest_stride,
                            _mm512_maskz_shuffle_i32x4(words, t[4 + c], t[12 + c], 0xdd));
    }
}
#endif

#if defined(__AVX512F__)
/// dest[p·6 + i] = source[i·stride + p] for i < 6, p < 16: sixteen steps of six rows of float
/// interleaved as a 6-row panel of op(A) holds them (pack_a for a 6-row tile), each row read as
/// one vector and the 96 values written as six. Each output vector draws its values from the six
/// rows through three two-row permutes and two blends (permutation tables below).
/// Why: 6 is not a multiple of transpose_block_copy's 4, and the element by element copy it left
/// (a load, a store and a bound check per value) was 2.1-2.2% of a float GEMM on the 6 x 4 tile
/// (perf samples, X·W and dY·Wᵀ, M = 256, K = N = 2048, Zen 5, float FMA peak 223-232 GFLOP/s,
/// 2026-12-03), 1.55% with it.
SHARDNET_ALWAYS_INLINE void interleave_six_rows(const float* source, std::size_t stride,
                                                float* dest) noexcept {
    // For output vector k and row pair q (rows 2q, 2q + 1), lane e holds value g = 16k + e of
    // the panel, i.e. step g / 6 of row g % 6: index g / 6 into the pair's first row, 16 + g / 6
    // into its second, for the lanes whose row belongs to the pair (others are blended away).
    struct tables {
        alignas(64) std::int32_t index[6][3][16];
        __mmask16 mask[6][3];
    };
    static constexpr tables t = [] {
        tables r{};
        for (int k = 0; k < 6; ++k)
            for (int e = 0; e < 16; ++e) {
                const int g = 16 * k + e, row = g % 6, q = row / 2;
                r.index[k][q][e] = (row % 2) * 16 + g / 6;
                r.mask[k][q] = static_cast<__mmask16>(r.mask[k][q] | (1u << e));
            }
        return r;
    }();
    __m512 rows[6];
    for (int i = 0; i < 6; ++i)
        rows[i] = _mm512_loadu_ps(source + i * stride);
    for (int k = 0; k < 6; ++k) {
        __m512 out = _mm512_permutex2var_ps(rows[0], _mm512_load_si512(t.index[k][0]), rows[1]);
        out = _mm512_mask_blend_ps(
            t.mask[k][1], out,
            _mm512_permutex2var_ps(rows[2], _mm512_load_si512(t.index[k][1]), rows[3]));
        out = _mm512_mask_blend_ps(
            t.mask[k][2], out,
            _mm512_permutex2var_ps(rows[4], _mm512_load_si512(t.index[k][2]), rows[5]));
        _mm512_storeu_ps(dest + 16 * k, out);
    }
}
#endif

/// Hint that `address` will be read soon. Only where the hardware prefetchers are known to
/// lose track (many short strided streams); a no-op on compilers without the builtin.
/// Call it from plain code or loops, never from a lambda (static_for's included): g++ 12 counts a
/// function whose only effect is a prefetch as free of side effects ("const") and deletes the
/// calls to it, so a prefetch in a lambda it has not inlined yet silently disappears (found
/// 2026-12-02: the micro-kernel's prefetches of C and of in-place op(B) were gone, the latter
/// costing double X·W at M = 32 20% on Zen 5, FMA peak 114 GFLOP/s double). Always inlined for the
/// same reason.
SHARDNET_ALWAYS_INLINE void prefetch(const void* address) noexcept {
#if defined(__GNUC__)
    __builtin_prefetch(address);
#else
    (void)address;
#endif
}

/// prefetch() of every cache line that the Bytes bytes from `first` touch: one a 64-byte step,
/// and the line of the last byte, which a row that does not start on a line boundary spans
/// beyond its steps (a duplicate of the last step's when it does). std::vector's storage, for
/// one, starts 16 bytes into a line once glibc maps it, so rows of ld a multiple of 16 floats
/// never start on one. Prefetching only each 64-byte step missed that last line of every row:
/// measured on Zen 4 (float FMA peak 112-118 GFLOP/s, 2026-12-03, 7-11 alternating rounds
/// against that), float X·W with A, B and C in std::vector, where op(B) is copied a strip ahead
/// (copying_pack_step): 1.23-1.45x as fast at M = 128 .. 1024, K = N = 2048, 1.05-1.13x at
/// M = 64 .. 1024, K = N = 4096, 2.1x at M = 32, K = N = 4096; at K = N = 1024 1.10-1.19x in one
/// session of rounds and within noise in another (the old code's speed there depended on where
/// the rows fell); Xᵀ·dY 1.10-1.23x on some shapes; double X·W 1.02-1.04x. Aligned rows within
/// noise (0.99-1.01x). Prefetching exactly the lines touched, in a loop whose count depends on
/// the address, cost aligned rows 3-4%.
template <std::size_t Bytes>
SHARDNET_ALWAYS_INLINE void prefetch_lines(const void* first) noexcept {
    const char* const bytes = static_cast<const char*>(first);
    for (std::size_t offset = 0; offset < Bytes; offset += 64)
        prefetch(bytes + offset);
    prefetch(bytes + Bytes - 1);
}

/// Hint that `address` will be written soon: the line is fetched for ownership (prefetchw on
/// x86-64), so the store that follows finds it writable. The same rules as prefetch().
SHARDNET_ALWAYS_INLINE void prefetch_for_write(const void* address) noexcept {
#if defined(__GNUC__)
    __builtin_prefetch(address, 1, 3);
#else
    (void)address;
#endif
}

}  // namespace shardnet::detail
