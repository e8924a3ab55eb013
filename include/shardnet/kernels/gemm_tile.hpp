// Which register tile the AVX-512 GEMM runs on this CPU, chosen once per process. Cores differ
// in how many 512-bit FMAs they retire per cycle (Zen 4 and Intel client parts: one, as two
// 256-bit halves; Zen 5 and two-FMA-unit Xeons: two), and the tile that keeps the FMA pipes fed
// differs with them (kernels/gemm_blocking.hpp). Both tiles give bitwise identical results, so
// the choice changes speed only, never a number.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "shardnet/core/error.hpp"
#include "shardnet/kernels/simd.hpp"

namespace shardnet {

/// The AVX-512 register tiles of the float and double GEMM (and of gemm_bf16's vdpbf16ps kernel).
enum class gemm_tile {
    narrow,  ///< 16 x 1 vector: 16 accumulators, enough for one 512-bit FMA per cycle
    wide,    ///< 6 x 4 vectors: 24 accumulators and 10 loads per 24 FMAs, for two per cycle
};

inline constexpr std::string_view to_string(gemm_tile t) {
    return t == gemm_tile::wide ? "6x4" : "16x1";
}

/// What the choice was made from, for benchmarks and bug reports.
struct gemm_tile_choice {
    gemm_tile tile = gemm_tile::narrow;       ///< float and double
    gemm_tile bf16_tile = gemm_tile::narrow;  ///< gemm_bf16's vdpbf16ps kernel (bf16_tile_for)
    /// Whether gemm_bf16 runs small shapes on 16 x 1 although bf16_tile is 6 x 4 (Zen 4).
    bool bf16_narrow_when_small = false;
    /// Whether the micro-tiles of the float GEMM's MC blocks after the first fetch the next
    /// packed strip of op(B) into cache (multiply_block_b_packed in kernels/gemm.hpp): on Zen 5
    /// and cores that retire two 512-bit FMAs per cycle, not on Zen 4 (measured on both).
    bool fetch_packed_strips = false;
    std::string cpu;       ///< vendor and family, as cpuid gives them ("AuthenticAMD family 26")
    std::string reason;    ///< "SHARDNET_GEMM_TILE", "cpuid", or "calibration"
    double fma_ratio = 0;  ///< 512-bit over 256-bit FMA throughput, when calibrated (else 0)

    /// The tile gemm_bf16 runs an m x n product of depth k on: bf16_tile, but with
    /// bf16_narrow_when_small, 16 x 1 for a few rows (m <= 16; up to 32 where 16 x 1 pads no
    /// more rows than 6 x 4 does) or a shallow depth (k <= 32). Measured on Zen 4 (float FMA
    /// peak 114-118 GFLOP/s, 2026-12-04, bench_gemm --type bf16 with each tile forced, K = N =
    /// 2048 and 4096): 16 x 1 ran 1.27-1.55x 6 x 4 at m = 8 and 16 (X·W, dY·Wᵀ), 1.11-1.26x at
    /// m = 32, 1.04-1.75x for Xᵀ·dY at k = 8 .. 40; 6 x 4 stayed ahead or even at m = 24, 40, 48
    /// and 64 (up to 1.5x at m = 48 and 64, X·W, K = N = 2048) and for Xᵀ·dY from k = 48.
    gemm_tile bf16_tile_for(std::size_t m, std::size_t k) const {
        if (!bf16_narrow_when_small || bf16_tile == gemm_tile::narrow) return bf16_tile;
        const std::size_t narrow_pad = (16 - m % 16) % 16, wide_pad = (6 - m % 6) % 6;
        const bool few_rows =
            m <= bf16_narrow_rows || (m <= bf16_narrow_padded_rows && narrow_pad <= wide_pad);
        return few_rows || k <= bf16_narrow_depth ? gemm_tile::narrow : bf16_tile;
    }
    /// bf16_tile_for's limits: rows always on 16 x 1, rows on it where it pads no more, depth.
    static constexpr std::size_t bf16_narrow_rows = 16, bf16_narrow_padded_rows = 32,
                                 bf16_narrow_depth = 32;
};

namespace detail {

/// "AuthenticAMD family 26" from cpuid leaves 0 and 1; family is base + extended family.
inline std::string cpu_vendor_family(std::string* vendor_out = nullptr,
                                     unsigned* family_out = nullptr) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return "unknown";
    char vendor[13] = {};
    for (int i = 0; i < 4; ++i) {
        vendor[i] = static_cast<char>(ebx >> (8 * i));
        vendor[4 + i] = static_cast<char>(edx >> (8 * i));
        vendor[8 + i] = static_cast<char>(ecx >> (8 * i));
    }
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return vendor;
    unsigned family = (eax >> 8) & 0xfu;
    if (family == 0xfu) family += (eax >> 20) & 0xffu;
    if (vendor_out) *vendor_out = vendor;
    if (family_out) *family_out = family;
    return std::string(vendor) + " family " + std::to_string(family);
#else
    (void)vendor_out;
    (void)family_out;
    return "not x86";
#endif
}

/// 512-bit over 256-bit FMA throughput (FLOP/s over FLOP/s), register only, 16 independent
/// chains each; best of several short runs of each, alternating, so that a burst of load
/// elsewhere does not decide it. About 2 ms. Independent of the clock: about 2 where 512-bit
/// FMAs run at full width, about 1 where they are split in two 256-bit halves. 0 without
/// AVX-512.
#if defined(__AVX512F__)
/// FMA lanes per second of Vector (__m512 or __m256) over 16 independent chains. The inputs
/// come through volatiles, so the compiler can neither fold the chains nor drop them.
template <class Vector, class Fma, class Broadcast>
double fma_lanes_per_second(Fma fma, Broadcast broadcast, double lanes) {
    using clock = std::chrono::steady_clock;
    constexpr int chains = 16;
    constexpr long steps = 20000;
    volatile float seed = 1e-3f, scale = 0.9999f, shift = 1e-4f;
    Vector acc[chains];
    for (auto& a : acc)
        a = broadcast(seed);
    const Vector x = broadcast(scale), y = broadcast(shift);
    const auto start = clock::now();
    for (long s = 0; s < steps; ++s)
        static_for<chains>([&](auto i) { acc[i] = fma(acc[i], x, y); });  // all in registers
    const double seconds = std::chrono::duration<double>(clock::now() - start).count();
    float sum = 0;
    for (const auto& a : acc) {
        float first;
        std::memcpy(&first, &a, sizeof first);
        sum += first;
    }
    volatile float sink = sum;
    (void)sink;
    return lanes * chains * static_cast<double>(steps) / std::max(seconds, 1e-9);
}
#endif

/// 512-bit over 256-bit FMA throughput, register only; best of 8 short runs of each,
/// alternating, so that a burst of load elsewhere does not decide it. About 2 ms. Independent
/// of the clock: about 2 where 512-bit FMAs run at full width, about 1 where each is split in
/// two 256-bit halves. 0 without AVX-512.
inline double fma_width_ratio() {
#if defined(__AVX512F__)
    double wide = 0, narrow = 0;
    for (int round = 0; round < 8; ++round) {
        wide = std::max(wide,
                        fma_lanes_per_second<__m512>(
                            [](__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); },
                            [](float v) { return _mm512_set1_ps(v); }, 16.0));
        narrow = std::max(narrow,
                          fma_lanes_per_second<__m256>(
                              [](__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); },
                              [](float v) { return _mm256_set1_ps(v); }, 8.0));
    }
    return narrow > 0 ? wide / narrow : 0.0;
#else
    return 0.0;
#endif
}

/// The choice, made once: SHARDNET_GEMM_TILE=16x1|6x4 if set and not empty (any other value is
/// an error), for every type; else by cpuid for the cores measured (AMD family 25, Zen 3/4:
/// narrow; 26 and later, Zen 5: wide); else by fma_width_ratio() (wide above 1.5).
/// bf16 (vdpbf16ps) runs on 6 x 4 on both AMD cores measured, Zen 4 included, although Zen 4
/// issues one 512-bit instruction per cycle: there the bf16 training step (bench_mlp --precision
/// bf16, 1024-4096-4096-1024, batch 256) took 188 ms a step on 6 x 4 against 199 on 16 x 1 with 1
/// rank, 101 against 106 with 2 (Zen 4, float FMA peak 112-118 GFLOP/s, 2026-12-03, medians of
/// 4 alternating runs), and gemm_bf16 alone ran 1.03-1.17x faster on 6 x 4 at m = 96-256, K = N =
/// 4096; at m <= 64 either tile wins by shape, 16 x 1 by up to 1.24x, 6 x 4 by up to 1.47x (how
/// many rows each pads: 16 x 1 fits m = 32 and 64, 6 x 4 m = 24 and 48; 7 alternating rounds in
/// one process). On Zen 4 the smallest shapes go back to 16 x 1 (bf16_tile_for, measured
/// 2026-12-04 at m = 8 .. 64); on Zen 5 they were not measured apart. Elsewhere bf16 follows the
/// float choice (unmeasured).
/// fetch_packed_strips: by cpuid (Zen 5 yes, Zen 4 no), else where 512-bit FMAs run at full
/// width. SHARDNET_GEMM_TILE sets the tiles, not this: it belongs to the core.
inline gemm_tile_choice choose_gemm_tile() {
    gemm_tile_choice c;
    std::string_view forced;
    if (const char* value = std::getenv("SHARDNET_GEMM_TILE"); value && *value) {
        forced = value;
        if (forced != "16x1" && forced != "6x4")
            throw error(
                concat("SHARDNET_GEMM_TILE: expected 16x1 or 6x4 (or unset: chosen for "
                       "the CPU), got '",
                       forced, "'"));
    }
    std::string vendor;
    unsigned family = 0;
    c.cpu = cpu_vendor_family(&vendor, &family);
    // The one fact about the core the choices follow: whether it retires two 512-bit FMAs per
    // cycle (Zen 5) or one (Zen 4, or split in two 256-bit halves).
    bool two_fma_pipes = false;
    const bool measured_core = vendor == "AuthenticAMD" && family >= 25;
    if (measured_core) {
        two_fma_pipes = family >= 26;
        c.reason = "cpuid";
    } else {
        c.fma_ratio = fma_width_ratio();
        two_fma_pipes = c.fma_ratio > 1.5;
        c.reason = "calibration";
    }
    c.tile = two_fma_pipes ? gemm_tile::wide : gemm_tile::narrow;
    c.bf16_tile = measured_core ? gemm_tile::wide : c.tile;  // 6 x 4 on both AMD cores measured
    // Small shapes back on 16 x 1 where that was measured (Zen 4; bf16_tile_for).
    c.bf16_narrow_when_small = measured_core && !two_fma_pipes;
    c.fetch_packed_strips = two_fma_pipes;
    // The tiles only: fetch_packed_strips stays the core's, whatever tile runs on it.
    if (!forced.empty()) {
        c.tile = c.bf16_tile = forced == "6x4" ? gemm_tile::wide : gemm_tile::narrow;
        c.bf16_narrow_when_small = false;  // forced means every shape
        c.reason = "SHARDNET_GEMM_TILE";
    }
    return c;
}

}  // namespace detail

/// The tiles shardnet::gemm (float and double) and gemm_bf16 use on AVX-512 in this process, and
/// why. Made on first use (thread-safe), then fixed; set SHARDNET_GEMM_TILE=16x1 or 6x4 before the
/// first GEMM to override both. Results do not depend on them, only speed.
/// @throws error (from the first GEMM) if SHARDNET_GEMM_TILE holds anything else.
inline const gemm_tile_choice& chosen_gemm_tile() {
    static const gemm_tile_choice choice = detail::choose_gemm_tile();
    return choice;
}

}  // namespace shardnet
