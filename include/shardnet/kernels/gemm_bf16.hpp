// The mixed-precision GEMM: bfloat16 operands, fp32 accumulation and result. The BLIS structure
// of shardnet::gemm (kernels/gemm.hpp) over pair panels, with a vdpbf16ps micro-kernel.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/progress.hpp"
#include "shardnet/kernels/gemm.hpp"
#include "shardnet/kernels/gemm_bf16_microkernel.hpp"
#include "shardnet/kernels/gemm_bf16_pack.hpp"
#include "shardnet/kernels/gemm_pack.hpp"
#include "shardnet/kernels/simd.hpp"

namespace shardnet::detail {

/// A complete blocking of the bfloat16 GEMM: Kernel (bf16_dot_kernel or bf16_widening_kernel)
/// on an MR x (NV vectors) tile; MC x KC the packed block of op(A), KC x NC of op(B). KC is a
/// depth in values and must be even, so that blocks start on a pair. Any values that pass the
/// static_asserts are correct (tests use tiny ones to reach every block edge cheaply).
template <class Kernel, std::size_t MR, std::size_t NV, std::size_t MC, std::size_t KC,
          std::size_t NC>
struct gemm_bf16_blocking {
    using kernel = Kernel;
    static constexpr std::size_t mr = MR;
    static constexpr std::size_t nv = NV;
    static constexpr std::size_t nr = NV * Kernel::width;
    static constexpr std::size_t mc = MC;
    static constexpr std::size_t kc = KC;
    static constexpr std::size_t nc = NC;

    static_assert(MR >= 1 && NV >= 1, "gemm_bf16_blocking: MR and NV must be positive");
    static_assert(KC >= 2 && KC % 2 == 0, "gemm_bf16_blocking: KC must be even (whole pairs)");
    static_assert(MC % MR == 0, "gemm_bf16_blocking: MC must be a multiple of MR");
    static_assert(NC % nr == 0, "gemm_bf16_blocking: NC must be a multiple of NR");
    static_assert(MR * NV + Kernel::extra_registers(NV) <=
                      vector_register_count<typename Kernel::arch_type>,
                  "gemm_bf16_blocking: the micro-tile does not fit in the vector registers");
};

/// The blocking gemm_bf16 uses with Kernel and, for vdpbf16ps, the register tile chosen for the
/// core and shape (gemm_tile_choice::bf16_tile_for in kernels/gemm_tile.hpp):
/// - vdpbf16ps, wide: 6 x 4 vectors, on Zen 5, where 16 x 1 waits on its loads: measured on Zen 5
///   (K = N = 2048, round-robin against 16 x 1, 8 x 3, 12 x 2): 1.1-1.6x 16 x 1, 250-360 GFLOP/s
///   (float peak 218: vdpbf16ps's is twice that); and on Zen 4, which issues one 512-bit
///   instruction per cycle, yet runs the bf16 step 4-5% faster on it (float FMA peak 112-118
///   GFLOP/s; gemm_tile.hpp).
/// - vdpbf16ps, narrow: 16 x 1 vector, where the float tile is narrow by calibration (cores not
///   measured) or SHARDNET_GEMM_TILE=16x1.
/// Both KC = 1024 values (512 pairs; a strip of op(B) 32 KiB per vector of columns): the same
/// depth blocks, so both tiles give bitwise identical results. Always packed: op(B) cannot be
/// read in place, vdpbf16ps needs two rows of B interleaved.
/// 6 x 4's MC = 1056 and both tiles' KC = 1024 (were 264 and 512), measured 2026-12-02 on Zen 5
/// (float FMA peak 221-236 GFLOP/s, vdpbf16ps's twice that)
/// (round-robin, K = N = 2048), for the float GEMM's reasons (gemm_blocking.hpp): +7-8% at M =
/// 1024 (320-343 -> 340-369 GFLOP/s), +3-5% for X·W and dY·Wᵀ at M = 256, the same for Xᵀ·dY.
/// 16 x 1 follows for KC (bitwise identity), not measured on its own.
/// - Widening: the float GEMM's register budget minus the unpacked rows of B: 12 x 2 with 32
///   registers, 4 x 2 with 16.
template <class Kernel, gemm_tile Tile = gemm_tile::narrow>
struct default_gemm_bf16_blocking;

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
template <>
struct default_gemm_bf16_blocking<bf16_dot_kernel, gemm_tile::narrow> {
    using type = gemm_bf16_blocking<bf16_dot_kernel, 16, 1, 256, 1024, 4096>;
};
template <>
struct default_gemm_bf16_blocking<bf16_dot_kernel, gemm_tile::wide> {
    using type = gemm_bf16_blocking<bf16_dot_kernel, 6, 4, 1056, 1024, 4096>;
};
#endif

template <class Arch, gemm_tile Tile>
struct default_gemm_bf16_blocking<bf16_widening_kernel<Arch>, Tile> {
    static constexpr bool wide = vector_register_count<Arch> >= 32;
    static constexpr std::size_t width = bf16_widening_kernel<Arch>::width;
    using type = gemm_bf16_blocking<bf16_widening_kernel<Arch>, wide ? 12 : 4, 2, wide ? 240 : 96,
                                    wide ? 512 : 256, 128 * 2 * width>;
};

/// The micro-kernel gemm_bf16<Arch> runs: vdpbf16ps when the translation unit has AVX512-BF16 and
/// Arch is an AVX-512 architecture, the widening kernel on Arch otherwise.
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
template <class Arch>
using default_bf16_kernel = std::conditional_t<std::is_base_of_v<xsimd::avx512f, Arch>,
                                               bf16_dot_kernel, bf16_widening_kernel<Arch>>;
#else
template <class Arch>
using default_bf16_kernel = bf16_widening_kernel<Arch>;
#endif

/// The lines of the strip of op(B) at column `col`, depth `pc`, `depth` values deep, `cols`
/// columns wide, in B's storage (`lines`: op(B)'s columns along the depth): rows of B for op(B)
/// = Bᵀ, steps of the depth for op(B) = B.
inline strip_lines bf16_strip_lines(strided_operand<bfloat16> lines, std::size_t col,
                                    std::size_t pc, std::size_t cols, std::size_t depth) {
    const char* base = reinterpret_cast<const char*>(lines.at(col, pc));
    if (lines.row_stride == 1)  // op(B) = B: `depth` rows of `cols` values
        return {base, lines.col_stride * sizeof(bfloat16), depth, cols * sizeof(bfloat16)};
    return {base, lines.row_stride * sizeof(bfloat16), cols, depth * sizeof(bfloat16)};
}

/// KC blocks at least this many values deep pair each next strip of op(B) = B inside the
/// micro-tiles of the strip before (interleaving_pack_step); shallower ones fetch it and pair it
/// after.
inline constexpr std::size_t interleaved_min_depth = 512;

/// The five BLIS loops (see gemm_blocked in kernels/gemm.hpp) over pair panels: NC columns of C,
/// KC of the depth, MC rows (op(A) block packed once, reused by every strip), NR strips of op(B)
/// (reused from L2/L3 by later MC blocks; with one MC block, two strip buffers in turn). The first
/// MC block packs each strip of op(B) after the strip before it, whose micro-tiles fetch its lines
/// into cache as their side job (fetching_side_job, as the float GEMM's op(B) = Bᵀ): measured on
/// Zen 5 (float FMA peak 265-280 GFLOP/s, 2026-12-03; gemm_bf16 with and without, alternating in
/// one process, 5 rounds, medians) on the bf16 step's shapes: X·W and dY·Wᵀ at m = 256, n = k =
/// 4096 +4% and +3%, the six others within -1.7 .. +0%; train_mlp --precision bf16 (1024-4096-
/// 4096-1024, batch 256) +3% (4 alternating pairs). For op(B) = B with a block at least
/// interleaved_min_depth deep, the micro-tiles pair the next strip themselves instead
/// (interleaving_pack_step).
/// Only the first KC block applies the caller's beta; later ones accumulate (beta = 1).
/// @pre m, n, k > 0.
template <class Blocking>
void gemm_bf16_blocked(std::size_t m, std::size_t n, std::size_t k, float alpha,
                       strided_operand<bfloat16> a, strided_operand<bfloat16> b, float beta,
                       float* c, std::size_t ldc) {
    using kernel = typename Blocking::kernel;
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NR = Blocking::nr;
    const bool single_row_block = m <= Blocking::mc;
    const std::size_t pairs_max = pair_count(std::min(k, Blocking::kc));
    // Slots 0 and 1 of a word type no other GEMM uses: the float GEMM's buffers are untouched.
    std::uint32_t* a_panel =
        packing_buffer<std::uint32_t, 0>(round_up(std::min(m, Blocking::mc), MR) * pairs_max);
    const std::size_t b_lines = single_row_block ? 2 * NR : round_up(std::min(n, Blocking::nc), NR);
    std::uint32_t* b_panel = packing_buffer<std::uint32_t, 1>(b_lines * pairs_max);
    // op(B) read as lines along the depth: line j is column j of op(B).
    const strided_operand<bfloat16> b_lines_view{b.data, b.col_stride, b.row_stride};

    for (std::size_t jc = 0; jc < n; jc += Blocking::nc) {
        const std::size_t nc = std::min(Blocking::nc, n - jc);
        for (std::size_t pc = 0; pc < k; pc += Blocking::kc) {
            const std::size_t kc = std::min(Blocking::kc, k - pc);
            const std::size_t pairs = pair_count(kc);
            const float beta_block = pc == 0 ? beta : 1.0f;
            const auto strip_at = [&](std::size_t jr) {
                return b_panel + (single_row_block ? jr / NR % 2 * NR : jr) * pairs;
            };
            const auto pack_strip = [&](std::size_t jr, std::size_t cols) {
                pack_pairs<NR>(
                    cols, kc,
                    strided_operand<bfloat16>{b_lines_view.at(jc + jr, pc), b_lines_view.row_stride,
                                              b_lines_view.col_stride},
                    strip_at(jr));
            };
            for (std::size_t ic = 0; ic < m; ic += Blocking::mc) {
                // Between blocks of a few milliseconds at most: let overlapped communication
                // advance (core/progress.hpp).
                if (jc != 0 || pc != 0 || ic != 0) make_progress();
                const std::size_t mc = std::min(Blocking::mc, m - ic);
                pack_pairs<MR>(mc, kc,
                               strided_operand<bfloat16>{a.at(ic, pc), a.row_stride, a.col_stride},
                               a_panel);
                const std::size_t tiles = (mc + MR - 1) / MR;
                if (ic == 0) pack_strip(0, std::min(NR, nc));
                for (std::size_t jr = 0; jr < nc; jr += NR) {
                    const std::size_t cols = std::min(NR, nc - jr);
                    const std::size_t next_cols = next_strip_columns<NR>(jr, nc);
                    const std::uint32_t* strip = strip_at(jr);
                    const auto run_tile = [&](std::size_t ir, const auto& side_job) {
                        kernel::template run<MR, Blocking::nv>(
                            pairs, a_panel + ir * pairs, strip, alpha, beta_block,
                            c + (ic + ir) * ldc + jc + jr, ldc, std::min(MR, mc - ir), cols,
                            side_job);
                    };
#if defined(__AVX512F__)
                    if constexpr (NR % 16 == 0)
                        if (ic == 0 && next_cols == NR && b.col_stride == 1 &&
                            kc >= interleaved_min_depth) {
                            using step = interleaving_pack_step<NR>;
                            const bfloat16* next_source = b.at(pc, jc + jr + NR);
                            const auto share = [&](std::size_t ir) {
                                return strip_share::of_tile(ir / MR, tiles, pairs, pairs,
                                                            step::every);
                            };
                            step::prefetch_start(next_source, b.row_stride, kc, share(0));
                            for (std::size_t ir = 0; ir < mc; ir += MR)
                                run_tile(ir, step{next_source, b.row_stride, kc, strip_at(jr + NR),
                                                  share(ir)});
                            continue;
                        }
#endif
                    const strip_lines next_lines =
                        ic == 0 && next_cols != 0
                            ? bf16_strip_lines(b_lines_view, jc + jr + NR, pc, next_cols, kc)
                            : strip_lines{};
                    for (std::size_t ir = 0; ir < mc; ir += MR) {
                        if (next_lines.rows != 0)
                            run_tile(ir, fetching_side_job{next_lines,
                                                           strip_share::of_tile(
                                                               ir / MR, tiles, next_lines.units(),
                                                               pairs, fetching_side_job::every)});
                        else
                            run_tile(ir, no_side_job{});
                    }
                    if (next_lines.rows != 0) pack_strip(jr + NR, next_cols);
                }
            }
        }
    }
}

/// gemm_bf16 with an explicit blocking (and so micro-kernel): what gemm_bf16 runs, and what
/// tests call to run either micro-kernel on any CPU.
template <class Blocking>
void gemm_bf16_with(transpose trans_a, transpose trans_b, std::size_t m, std::size_t n,
                    std::size_t k, float alpha, const bfloat16* a, std::size_t lda,
                    const bfloat16* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0 || alpha == 0.0f) {
        scale_matrix(m, n, beta, c, ldc);
        return;
    }
    using operand = strided_operand<bfloat16>;
    const operand op_a = trans_a == transpose::no ? operand{a, lda, 1} : operand{a, 1, lda};
    const operand op_b = trans_b == transpose::no ? operand{b, ldb, 1} : operand{b, 1, ldb};
    gemm_bf16_blocked<Blocking>(m, n, k, alpha, op_a, op_b, beta, c, ldc);
}

}  // namespace shardnet::detail

namespace shardnet {

/// Row-major C(m x n) = alpha · op(A) · op(B) + beta · C with bfloat16 A and B and fp32 C:
/// the products of two bfloat16 are exact in fp32 and accumulate in fp32. Same contract as
/// shardnet::gemm (kernels/gemm.hpp) otherwise.
///
/// op(A) is m x k: A is stored m x k (lda >= k) when trans_a == no, k x m (lda >= m) when yes.
/// op(B) is k x n: B is stored k x n (ldb >= n) when trans_b == no, n x k (ldb >= k) when yes.
///
/// The micro-kernel is chosen at compile time: vdpbf16ps when the translation unit is compiled
/// with AVX512-BF16 (e.g. -march=native on Zen 4/5, Sapphire Rapids) and Arch is an AVX-512
/// architecture; otherwise each bfloat16 is widened to float and multiplied with Arch's FMA
/// (correct everywhere, about half the float GEMM's speed). The two agree to rounding, except
/// that vdpbf16ps treats subnormal values (|x| < 2^-126) as zero.
/// Single-threaded; concurrent calls from different threads are safe (packing buffers are per
/// thread).
///
/// @tparam Arch  xsimd architecture tag (the widest one the translation unit is compiled for).
/// @pre   ldc >= n; A, B and C do not overlap C's written part.
/// @post  C holds the result, accurate to about k·2^-24·Σ|a·b|; when beta == 0, C was not read
///        (NaN in C does not propagate); when k == 0 or alpha == 0, C = beta · C and A, B are not
///        read. Does not allocate once a call of the same or larger size has run on this thread.
template <class Arch = xsimd::default_arch>
void gemm_bf16(transpose trans_a, transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
               float alpha, const bfloat16* a, std::size_t lda, const bfloat16* b, std::size_t ldb,
               float beta, float* c, std::size_t ldc) {
    using kernel = detail::default_bf16_kernel<Arch>;
    using narrow = typename detail::default_gemm_bf16_blocking<kernel, gemm_tile::narrow>::type;
    using wide = typename detail::default_gemm_bf16_blocking<kernel, gemm_tile::wide>::type;
    if constexpr (!std::is_same_v<narrow, wide>)
        if (chosen_gemm_tile().bf16_tile_for(m, k) == gemm_tile::wide)
            return detail::gemm_bf16_with<wide>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                                                beta, c, ldc);
    detail::gemm_bf16_with<narrow>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace shardnet
