// Packing of bfloat16 GEMM operands into pair panels: consecutive steps of the depth (k) side by
// side in one 32-bit word, the layout vdpbf16ps multiplies (two products per fp32 lane).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#if defined(__SSE2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "shardnet/core/bfloat16.hpp"
#include "shardnet/kernels/gemm_pack.hpp"

namespace shardnet::detail {

/// Two bfloat16 as one 32-bit word, `low` in the low half: little-endian memory order, the order
/// vdpbf16ps pairs them in (and the widening micro-kernel unpacks them in).
inline std::uint32_t bf16_pair(bfloat16 low, bfloat16 high) noexcept {
    return static_cast<std::uint32_t>(low.bits) | static_cast<std::uint32_t>(high.bits) << 16;
}

/// Number of pairs a depth takes: the last pair of an odd depth is padded with +0.
inline constexpr std::size_t pair_count(std::size_t depth) noexcept {
    return (depth + 1) / 2;
}

#if defined(__AVX512F__)
/// out[w] = the pair (even[w], odd[w]) for w < 16: two rows of B as stored (op(B) = B) side by
/// side, as vdpbf16ps multiplies them. Zero-extension, shift and or.
SHARDNET_ALWAYS_INLINE void pair_sixteen(const bfloat16* even, const bfloat16* odd,
                                         std::uint32_t* out) noexcept {
    // Zero-masked forms, for the reason given at widen_bf16_bits.
    const __m512i low = _mm512_maskz_cvtepu16_epi32(
        0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(even)));
    const __m512i high = widen_bf16_bits(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(odd)));
    _mm512_storeu_si512(out, _mm512_or_si512(low, high));
}
#endif

/// Packs `count` lines of `depth` values, x(w, p) = *x.at(w, p), into pair panels of W lines:
/// panel s holds pair (x(s·W + w, 2q), x(s·W + w, 2q + 1)) at dest[s·W·pairs + q·W + w] with
/// pairs = pair_count(depth). Lines past `count` and the odd depth's last high half are +0, so
/// the micro-kernel always runs full tiles and the padding adds exact zeros.
///
/// One function packs both operands: op(A) as is (lines = rows of C, W = MR), and op(B)
/// transposed (lines = columns of C, W = NR). The two fast cases are the two storage orders:
/// - depth contiguous (x.col_stride == 1: A as stored, or B stored transposed): a pair is one
///   unaligned 32-bit word of the source, so the pack is a transpose of 32-bit words: 16 x 16
///   register blocks (transpose_16x16_words) on full panels of 16k lines with AVX-512, 4 x 4
///   blocks otherwise and for the pairs those leave (see transpose_block_copy: 2.5x a scalar
///   copy for float). The 16 x 16 blocks measured on Zen 5 (float FMA peak 282-293 GFLOP/s,
///   2026-12-02; gemm_bf16 with and without, alternating in one process, medians): dY·Wᵀ at
///   m = 256, n = 4096, k = 1024 and 4096 +5-6%, pack_pairs<64> from 15.6% to 9.7% of that
///   GEMM's samples (perf). Walking the depth outside the line groups measured 2-3 points less;
///   prefetching the next group, within noise;
/// - lines contiguous (x.row_stride == 1: Aᵀ, or B as stored): a step of q interleaves two
///   source rows, 16 words per AVX-512 zero-extension, shift and or.
/// For the 6-row tile's op(A) (W = 6), which neither case fitted and the scalar loop packed: A as
/// stored through the float pack's six-row interleave of 32-bit words (interleave_six_rows, when
/// the pairs are aligned words), Aᵀ six values of each row a step, by masked loads and a masked
/// store. Measured on Zen 5 (float FMA peak 225-250 GFLOP/s, 2026-12-03; gemm_bf16 with and
/// without, alternating in one process, 9 rounds, medians, same bits): pack_pairs<6> from 5.1% to
/// 2.4% of dY·Wᵀ at m = 256, n = 1024, k = 4096 (perf), that GEMM +1.5-1.7%; the bf16 step's
/// other shapes 0.6-1.9% faster or within noise (X·W m = 256).
template <std::size_t W>
void pack_pairs(std::size_t count, std::size_t depth, strided_operand<bfloat16> x,
                std::uint32_t* dest) {
    const std::size_t pairs = pair_count(depth);
    const std::size_t full_pairs = depth / 2;
    for (std::size_t s0 = 0; s0 < count; s0 += W) {
        const std::size_t lines = std::min(W, count - s0);
        std::size_t q_done = 0;  // pairs of every line already written by a fast case
#if defined(__AVX512F__)
        if (x.col_stride == 1 && lines == W && W % 16 == 0) {
            q_done = full_pairs / 16 * 16;
            for (std::size_t w = 0; w < W; w += 16)
                for (std::size_t q = 0; q < q_done; q += 16)
                    transpose_16x16_words(x.at(s0 + w, 2 * q), x.row_stride, dest + q * W + w, W);
        }
#endif
#if defined(__SSE2__)
        if (x.col_stride == 1 && lines == W && W % 4 == 0) {
            const std::size_t q_first = q_done;
            q_done = full_pairs / 4 * 4;
            for (std::size_t w = 0; w < W; w += 4) {
                const bfloat16* src = x.at(s0 + w, 0);
                for (std::size_t q = q_first; q < q_done; q += 4) {
                    // Four lines, four pairs each (8 values, 16 bytes), transposed as 32-bit words.
                    const __m128i r0 = _mm_loadu_si128(
                        reinterpret_cast<const __m128i*>(src + 0 * x.row_stride + 2 * q));
                    const __m128i r1 = _mm_loadu_si128(
                        reinterpret_cast<const __m128i*>(src + 1 * x.row_stride + 2 * q));
                    const __m128i r2 = _mm_loadu_si128(
                        reinterpret_cast<const __m128i*>(src + 2 * x.row_stride + 2 * q));
                    const __m128i r3 = _mm_loadu_si128(
                        reinterpret_cast<const __m128i*>(src + 3 * x.row_stride + 2 * q));
                    const __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
                    const __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);
                    std::uint32_t* out = dest + q * W + w;
                    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi64(t0, t2));
                    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + W),
                                     _mm_unpackhi_epi64(t0, t2));
                    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * W),
                                     _mm_unpacklo_epi64(t1, t3));
                    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 3 * W),
                                     _mm_unpackhi_epi64(t1, t3));
                }
            }
        }
#endif
#if defined(__AVX512F__)
        if constexpr (W == 6)
            if (x.col_stride == 1 && lines == W && x.row_stride % 2 == 0 &&
                reinterpret_cast<std::uintptr_t>(x.at(s0, 0)) % 4 == 0) {
                // op(A) = A on the 6-row tile, its pairs 32-bit words 4-byte aligned: the float
                // pack's interleave of six rows, sixteen pairs at a time.
                q_done = full_pairs / 16 * 16;
                const float* words = reinterpret_cast<const float*>(x.at(s0, 0));
                for (std::size_t q = 0; q < q_done; q += 16)
                    interleave_six_rows(words + q, x.row_stride / 2,
                                        reinterpret_cast<float*>(dest + q * W));
            }
#if defined(__AVX512BW__) && defined(__AVX512VL__)
        if constexpr (W == 6)
            if (x.row_stride == 1 && lines == W) {
                // op(A) = Aᵀ on the 6-row tile: a step of q is six values of each of two rows of
                // A; masked 128-bit loads, widened in a 256-bit register, a masked store.
                q_done = full_pairs;
                for (std::size_t q = 0; q < full_pairs; ++q) {
                    const __m256i low =
                        _mm256_cvtepu16_epi32(_mm_maskz_loadu_epi16(0x3f, x.at(s0, 2 * q)));
                    const __m256i high = _mm256_slli_epi32(
                        _mm256_cvtepu16_epi32(_mm_maskz_loadu_epi16(0x3f, x.at(s0, 2 * q + 1))),
                        16);
                    _mm256_mask_storeu_epi32(dest + q * W, 0x3f, _mm256_or_si256(low, high));
                }
            }
#endif
        if (x.row_stride == 1 && lines == W && W % 16 == 0) {
            q_done = full_pairs;
            for (std::size_t q = 0; q < full_pairs; ++q) {
                const bfloat16* even = x.at(s0, 2 * q);
                const bfloat16* odd = x.at(s0, 2 * q + 1);
                for (std::size_t w = 0; w < W; w += 16)
                    pair_sixteen(even + w, odd + w, dest + q * W + w);
            }
        }
#endif
        // Whatever the fast cases left: the ragged panel, the last pairs, other strides.
        const bfloat16 zero{0};
        for (std::size_t q = q_done; q < pairs; ++q) {
            std::uint32_t* out = dest + q * W;
            const bool has_high = 2 * q + 1 < depth;
            for (std::size_t w = 0; w < lines; ++w)
                out[w] =
                    bf16_pair(*x.at(s0 + w, 2 * q), has_high ? *x.at(s0 + w, 2 * q + 1) : zero);
        }
        for (std::size_t q = 0; q < pairs; ++q)
            for (std::size_t w = lines; w < W; ++w)
                dest[q * W + w] = 0;
        dest += W * pairs;
    }
}

#if defined(__AVX512F__)
/// Side job for op(B) = B (B stored k x n): pairs the next full strip of op(B) as pack_pairs<NR>
/// would, a unit being one pair of its steps (two rows of B, NR values each, side by side), each
/// micro-tile its share (strip_share). Each call also prefetches the rows of the units it will
/// pair `lead` calls later; gemm_bf16_blocked prefetches the first tile's (prefetch_start).
/// Why: pairing a strip after the one before it had ended (pack_pairs<64>) took 6-7% of gemm_bf16
/// at the bf16 step's X·W shapes. As side jobs, as the float GEMM's copying_pack_step, measured on
/// Zen 5 (float FMA peak 225-250 GFLOP/s, 2026-12-03; gemm_bf16 with and without, alternating in
/// one process, 11 rounds, medians): X·W at m = 256 +2-3.5% (n, k = 1024 .. 4096), m = 130 +8%,
/// m = 64 +20%, m = 1024 within noise; Xᵀ·dY with k = 256 (a strip 128 pairs deep) 4-6% slower,
/// hence only for blocks at least interleaved_min_depth deep (gemm_bf16.hpp). Rows of B that do
/// not start on a cache line (n = 4095) lost 2.6%, when only each 64-byte step of a row was
/// prefetched; with the row's last line as well (prefetch_lines), rows 16 bytes into a line ran
/// 1.0-1.02x as fast as before, 1.14x at m = 64, n = k = 4096 (Zen 4, float FMA peak 112-118
/// GFLOP/s, 2026-12-03, 7 rounds).
template <std::size_t NR>
struct interleaving_pack_step {
    static_assert(NR % 16 == 0, "interleaving_pack_step: NR must be a multiple of 16");
    static constexpr std::size_t every = 8;
    static constexpr std::size_t lead = 16;  // calls between a unit's prefetch and its pairing

    const bfloat16* source;  // element (p, j) of the strip of op(B) at source[p·ld + j]
    std::size_t ld;
    std::size_t depth;    // values (the strip holds pair_count(depth) pairs)
    std::uint32_t* dest;  // pair q of column j at dest[q·NR + j]
    strip_share share;    // in units (pairs)

    /// Prefetches the rows of units [from, to).
    static void prefetch_units(const bfloat16* source, std::size_t ld, std::size_t depth,
                               std::size_t from, std::size_t to) noexcept {
        for (std::size_t row = 2 * from; row < std::min(2 * to, depth); ++row)
            prefetch_lines<NR * sizeof(bfloat16)>(source + row * ld);
    }
    /// The first micro-tile's first units, before it starts.
    static void prefetch_start(const bfloat16* source, std::size_t ld, std::size_t depth,
                               const strip_share& first_tile) noexcept {
        prefetch_units(source, ld, depth, 0,
                       std::min(first_tile.last, first_tile.first + lead * first_tile.per_call));
    }

    // Always inlined, for the reason transposing_pack_step's is (gemm_pack.hpp).
    SHARDNET_ALWAYS_INLINE void operator()(std::size_t q) const noexcept {
        const std::size_t from = share.from(q, every), to = share.to(q, every);
        if (from >= to) return;
        const std::size_t ahead = lead * share.per_call;
        prefetch_units(source, ld, depth, from + ahead, to + ahead);
        for (std::size_t u = from; u < to; ++u) {
            const bfloat16* even = source + 2 * u * ld;
            std::uint32_t* out = dest + u * NR;
            if (2 * u + 1 < depth) [[likely]] {
                static_for<NR / 16>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                    pair_sixteen(even + v * 16, even + ld + v * 16, out + v * 16);
                });
            } else {  // the odd depth's last pair: its high half is +0
                for (std::size_t j = 0; j < NR; ++j)
                    out[j] = bf16_pair(even[j], bfloat16{0});
            }
        }
    }
};
#endif

}  // namespace shardnet::detail
