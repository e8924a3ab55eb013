// Small xsimd 8.1 helpers shared by the kernels, so that an xsimd upgrade is one edit here and
// architecture facts (register count, alignment) are asked in one place.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <xsimd/xsimd.hpp>

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
