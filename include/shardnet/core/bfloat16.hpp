// bfloat16: the upper half of an IEEE float (8-bit exponent, 7-bit mantissa), a storage type for
// weights and activations whose arithmetic runs in float. Conversions, one value and in bulk.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "shardnet/core/element_type.hpp"

namespace shardnet {

/// A bfloat16 value, stored as its 16 bits: sign, 8 exponent bits, 7 mantissa bits, i.e. the
/// upper half of the float with the same sign and exponent. Only storage and conversions: g++ 12
/// has no arithmetic `__bf16`, and sums of bf16 values must be computed in float anyway.
///
/// Trivially copyable and standard layout, 2 bytes: arrays of it can be sent as MPI_UINT16_T
/// or written to files byte for byte. Default construction leaves `bits` indeterminate, as for
/// float; `bfloat16{}` is +0.
struct bfloat16 {
    std::uint16_t bits;

    /// The value with these bits.
    static constexpr bfloat16 from_bits(std::uint16_t b) noexcept { return bfloat16{b}; }
};

static_assert(sizeof(bfloat16) == 2 && alignof(bfloat16) == 2);
static_assert(std::is_trivially_copyable_v<bfloat16> && std::is_standard_layout_v<bfloat16>);

/// bfloat16 is a storage type (core/element_type.hpp): products and sums of it are computed in
/// float. It is deliberately not an element_type, so dense<bfloat16>, gemm<bfloat16> and the
/// checkpoint writer still refuse it with their own messages instead of failing deep inside.
template <>
struct element_traits<bfloat16> {
    static constexpr std::string_view name = "bfloat16";
    using accumulator = float;
};

/// `value` rounded to the nearest bfloat16, ties to even (IEEE 754 roundTiesToEven), including
/// subnormal inputs and results (no flush to zero); finite values too large round to ±infinity,
/// as IEEE rounding does. A NaN stays a NaN with the same sign and upper payload bits, made
/// quiet: the same bits as the AVX512-BF16 instruction vcvtneps2bf16 gives.
constexpr bfloat16 to_bfloat16(float value) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(value);
    // Branch-free, so that a loop of it vectorizes.
    const std::uint32_t quiet_nan = (u >> 16) | 0x0040u;
    // Adding 0x7fff plus the lowest kept bit carries into the kept half exactly when the
    // dropped half is above one half, or equal to it with an odd kept half. A carry out of
    // the mantissa increments the exponent, which is again right (up to infinity).
    const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const bool is_nan = (u & 0x7fffffffu) > 0x7f800000u;
    return bfloat16{static_cast<std::uint16_t>(is_nan ? quiet_nan : rounded)};
}

/// The float equal to `value`: exact, every bfloat16 is a float.
constexpr float to_float(bfloat16 value) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(value.bits) << 16);
}

namespace detail {

/// Whether the translation unit may use AVX512-BF16 (vcvtneps2bf16, vdpbf16ps) and AVX512BW.
/// Every CPU with AVX512-BF16 also has AVX512BW (Cooper Lake, Sapphire Rapids, Zen 4, Zen 5).
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512F__)
inline constexpr bool has_avx512_bf16 = true;
#else
inline constexpr bool has_avx512_bf16 = false;
#endif

#if defined(__AVX512F__)
/// 16 bfloat16 bit patterns to the bits of the 16 equal floats: zero-extend, shift. Through the
/// zero-masked intrinsics: the unmasked ones start from GCC 12's `_mm512_undefined_epi32`, whose
/// `__Y = __Y` raises a false -Wmaybe-uninitialized in every caller (see kernels/simd.hpp).
inline __m512i widen_bf16_bits(__m256i narrow) noexcept {
    constexpr __mmask16 all = 0xffff;
    return _mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, narrow), 16);
}
#endif

/// The portable bulk conversion, one value at a time (branch-free: compilers vectorize it).
inline void to_bfloat16_portable(const float* source, bfloat16* dest, std::size_t count) noexcept {
    for (std::size_t i = 0; i < count; ++i)
        dest[i] = to_bfloat16(source[i]);
}

}  // namespace detail

/// dest[i] = to_bfloat16(source[i]) for i < count: the same bits as the scalar conversion for
/// every input. With AVX512-BF16, 16 values per vcvtneps2bf16, which flushes subnormal inputs to
/// zero: a block of 16 that holds one is redone by the scalar conversion (rare in practice).
/// @pre source[0, count) and dest[0, count) do not overlap.
inline void to_bfloat16(const float* source, bfloat16* dest, std::size_t count) noexcept {
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
    const __m512i exponent_mask = _mm512_set1_epi32(0x7f800000);
    const __m512i magnitude_mask = _mm512_set1_epi32(0x7fffffff);
    std::size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512 x = _mm512_loadu_ps(source + i);
        const __m512i bits = _mm512_castps_si512(x);
        // Subnormal: exponent zero, magnitude not zero.
        const __mmask16 subnormal = _mm512_mask_test_epi32_mask(
            _mm512_testn_epi32_mask(bits, exponent_mask), bits, magnitude_mask);
        if (subnormal != 0) {
            detail::to_bfloat16_portable(source + i, dest + i, 16);
            continue;
        }
        const __m256bh narrow = _mm512_cvtneps_pbh(x);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dest + i), (__m256i)narrow);
    }
    detail::to_bfloat16_portable(source + i, dest + i, count - i);
#else
    detail::to_bfloat16_portable(source, dest, count);
#endif
}

/// dest[i] = to_float(source[i]) for i < count (exact).
/// @pre source[0, count) and dest[0, count) do not overlap.
inline void to_float(const bfloat16* source, float* dest, std::size_t count) noexcept {
    std::size_t i = 0;
#if defined(__AVX512F__)
    // Widening is a zero-extension and a shift: 16 values per step, whatever the optimization
    // level (a plain loop is vectorized only from -O3 by g++ 12).
    for (; i + 16 <= count; i += 16) {
        const __m256i narrow = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(source + i));
        const __m512i wide = detail::widen_bf16_bits(narrow);
        _mm512_storeu_ps(dest + i, _mm512_castsi512_ps(wide));
    }
#endif
    for (; i < count; ++i)
        dest[i] = to_float(source[i]);
}

}  // namespace shardnet
