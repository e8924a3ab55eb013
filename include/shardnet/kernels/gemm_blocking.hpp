// Register and cache blocking of the GEMM: which tile a micro-kernel keeps in registers and
// how large the packed panels are, per element type and instruction set.
#pragma once

#include <cstddef>
#include <xsimd/xsimd.hpp>

#include "shardnet/kernels/gemm_tile.hpp"
#include "shardnet/kernels/simd.hpp"

namespace shardnet::detail {

/// A complete blocking of C = op(A)·op(B): the micro-tile is MR rows × (NV batches) columns of
/// C; MC × KC is the packed block of op(A), KC × NC the packed block of op(B). KCI replaces KC
/// for op(B) = B when m <= IPR, where op(B) is read in place instead of packed unless it takes
/// more than IPB bytes and m > in_place_always_rows (see gemm_blocked).
/// Any values that pass the static_asserts are correct; they differ only in speed (tests use
/// tiny ones to reach every block edge with small matrices). Two blockings with the same KC,
/// KCI and IPR give bitwise identical results whatever their tiles: each element of C sums
/// the same products in the same order, block by block of the depth.
template <class T, class Arch, std::size_t MR, std::size_t NV, std::size_t MC, std::size_t KC,
          std::size_t NC, std::size_t KCI = KC, std::size_t IPR = MC,
          std::size_t IPB = std::size_t(-1)>
struct gemm_blocking {
    using value_type = T;
    using arch_type = Arch;
    using batch_type = xsimd::batch<T, Arch>;
    static constexpr std::size_t width = batch_type::size;
    static constexpr std::size_t mr = MR;
    static constexpr std::size_t nv = NV;
    static constexpr std::size_t nr = NV * width;
    static constexpr std::size_t mc = MC;
    static constexpr std::size_t kc = KC;
    static constexpr std::size_t nc = NC;
    static constexpr std::size_t kc_in_place = KCI;
    static constexpr std::size_t in_place_rows = IPR;
    static constexpr std::size_t in_place_bytes = IPB;
    /// Whether, for op(B) = Bᵀ with a single MC block, the micro-kernel transposes the next strip
    /// itself as its side job (transposing_pack_step: about 8 vector registers beside the tile's
    /// accumulators, rows of op(B) and broadcast). Otherwise the next strip is fetched into
    /// cache as the side job and packed between strips (fetching_pack_step); a side job that
    /// does not fit makes the micro-kernel spill its accumulators.
    static constexpr bool transposes_in_kernel =
        MR * NV + NV + 1 + 8 <= vector_register_count<Arch>;

    static_assert(MR >= 1 && NV >= 1 && KC >= 1 && KCI >= 1,
                  "gemm_blocking: MR, NV, KC and KCI must be positive");
    static_assert(MC % MR == 0, "gemm_blocking: MC must be a multiple of MR");
    static_assert(IPR <= MC, "gemm_blocking: op(B) is read in place only within one MC block");
    static_assert(NC % (NV * batch_type::size) == 0, "gemm_blocking: NC must be a multiple of NR");
    // MR·NV accumulators + NV rows of B + one broadcast of A must fit, or every FMA spills.
    static_assert(MR * NV + NV + 1 <= vector_register_count<Arch>,
                  "gemm_blocking: the MR x NV micro-tile does not fit in Arch's vector registers");
};

/// The blocking gemm() uses for T on Arch, measured on Zen 4 (1 MiB L2 per core, 32 MiB
/// shared L3; benchmarks/bench_gemm.cpp and a sweep over MR x NV in {8x2, 8x3, 6x4, 12x2,
/// 14x2, 4x6, 16x1, 24x1, 28x1} and KC in 128..1024). The reasoning, which carries to other
/// x86-64 cores with the same register count:
///
/// - Micro-tile (registers). C is row-major, so the micro-kernel vectorizes along n (a step of
///   op(B) is NV batches) and broadcasts MR scalars of op(A); g++ folds each broadcast into its
///   FMA as a memory operand. With 32 registers the winner is 16 x 1 batch (16 accumulators):
///   per step one aligned load of op(B) and 16 broadcast-FMAs, enough independent chains to
///   cover FMA latency, and MR = 16 divides the batch sizes that matter (32, 64, ...), so small
///   batches waste no padded rows (MR = 12 or 24 lose 10-30% at M = 32). Tiles with more
///   accumulators (24x1, 14x2, 8x3, 6x4) were no faster: Zen 4 issues one 512-bit
///   FMA per cycle, so more accumulators buy nothing once latency is hidden. With 16
///   registers (SSE2, AVX2) the classic 6 x 2 batches (12 accumulators, 2 rows of op(B) and
///   a broadcast = 15 registers); on Zen 4 AVX2 6x2 matches AVX-512 16x1.
/// - KC (depth of a block). Larger KC amortizes loading and storing the C tile over more
///   FMAs; BLIS's rule of keeping the KC x NR micro-panel of op(B) in L1 (KC <= 256 here) was
///   measured 3-5% slower than KC = 768 (a 48 KiB strip, served from Zen 4's fast L2).
/// - MC (L2). The MC x KC block of op(A) is reused for every NR strip of op(B), so it should
///   stay in L2: 256 x 768 floats = 768 KiB of the 1 MiB. For 16-register targets (older or
///   smaller cores, 256 KiB L2) the block is kept to 192 KiB.
/// - NC (L3). The KC x NC block of op(B) is reused by every MC block; 12 MiB (768 x 4096
///   floats) is what one core can count on in a shared L3. When m <= MC there is one MC block
///   and NC does not matter: op(B) is packed strip by strip into one reused strip buffer.
/// - Small m: op(B) read in place, KCI = 256. With one MC block each element of op(B) serves
///   only ceil(m / MR) micro-tiles (2 at m = 32), so packing it costs about as much as the
///   FMAs: a KC x NR strip of B = op(B) is one 64-byte line from each of KC rows ldb apart,
///   every line in a different page, which no hardware prefetcher follows. Reading those lines
///   in place (the A panel is still packed) and prefetching, during the first micro-tile of a
///   strip, the same rows 4 lines to the right (the strips to come) turns the rows into slow
///   sequential streams. KCI = 256 keeps the strip at 16 KiB, in L1 for the strip's other
///   micro-tiles. Measured on Zen 4 (float and double, M = 32..256, K = N = 1024..4096): KCI =
///   768 25% slower at K = N = 4096, 512 15-25% slower for double, 128 5-10% slower; overall
///   0.65-0.9x -> 1.0-1.2x OpenBLAS at M = 32, 64. For m > MC the packed KC x NC block is
///   reused by every MC block and in-place reading was not faster (measured at M = 1024).
///   op(B) = Bᵀ has no contiguous NR-wide rows to read: its strips are still packed (KC deep),
///   but each by the first micro-kernel of the strip before it, as a side job (gemm_blocked;
///   tiles without registers to spare fetch it ahead instead, fetching_pack_step).
///   16-register targets keep KCI = KC.
///
/// FMA peaks quoted in these notes, and in the other kernels' comments, before 2026-12-03 08:00
/// UTC came from a loop that ran 15 of the 16 FMAs it counted (benchmarks/fma_peak.hpp): they are
/// 16/15 of the FMA units' peak, and each "% of peak" 15/16 of the truth. Ratios between two
/// measurements of ours or against OpenBLAS are unaffected.
///
/// Zen 5 (two 512-bit FMA pipes, 48 KiB L1d, 1 MiB L2; measured 2026-12-02 with
/// benchmarks/bench_gemm.cpp and a round-robin sweep of MR x NV in {16x1, 8x2, 8x3, 12x2, 14x2,
/// 6x4, 24x1, 4x4}, MC 60..480, KC 128..1024): with two FMAs per cycle a 16 x 1 step (one load
/// of op(B), 16 broadcasts, 16 FMAs) needs as many loads as FMAs, and the load ports, not the
/// FMA pipes, set the pace. 6 x 4 (24 accumulators, 4 loads of op(B) and 6 broadcasts per 24
/// FMAs) runs the micro-kernel at the FMA peak from L1/L2 (223 of 221 GFLOP/s measured, 16 x 1
/// 207) and the whole GEMM 1.05-1.3x faster than 16 x 1 at K = N = 2048, M >= 64, except op(B)
/// = Bᵀ with one MC block, where 16 x 1's pipelined transposing pack is faster (it packs 16
/// columns per strip, 6 x 4 would pack 64 inside one micro-tile): at small m alone, above it
/// for the first rows of each strip beside 6 x 4 (narrow_transposed_rows). Which tile runs is
/// chosen at run time
/// (kernels/gemm_tile.hpp); both use the same KC, KCI and IPR, so they give bitwise identical
/// results. The same holds for double (6 x 4 batches of 8, measured below).
/// IPR = 64 (was 256), measured 2026-12-02 on Zen 5 (float FMA peak 235-255 GFLOP/s) in a
/// round-robin against OpenBLAS, X·W, K = N = 2048 and 4096: reading op(B) in place is for a
/// strip that few micro-tiles use, and it stops paying past m = 64. A strip read in place is KCI
/// rows ldb apart; at ldb = 2048 floats the rows are 8 KiB apart and fall into the same few sets
/// of L1 and L2, so a strip that 22-43 micro-tiles reuse (m = 128-256, 6 x 4) is refetched from
/// L3 by each: 6 x 4 at m = 256 ran at 0.85-0.97x OpenBLAS in place and 1.05-1.08x packed
/// (+9-25%), at m = 128 +3-16%; at m = 64 in place stays faster (151 against 142 GFLOP/s packed,
/// 140 against 130 at 4096). 16 x 1 on this core: within noise at m <= 128, +16% at m = 256,
/// K = N = 4096. Double 16 x 1: +8% at m = 128, +18% at m = 256.
/// IPB = 32 MiB, measured 2026-12-03 on Zen 5 (float FMA peak 265-280 GFLOP/s), both tiles, 5
/// alternating rounds against reading in place, X·W float: an op(B) larger than that (the L3 of a
/// Zen 4 or Zen 5 core complex, shared) comes from memory, which reading in place follows only 4
/// lines ahead in each row, while copying it a strip ahead (copying_pack_step, KCI deep as in
/// place) prefetches whole rows a few calls ahead: at K = N = 4096 +11-18% (6 x 4) and +12-26%
/// (16 x 1) at m = 20 .. 64. At K = N = 2048 (16 MiB) copying was mixed (6 x 4 -15% at m = 17,
/// +7-9% at 24 .. 64; 16 x 1 -10 to -16%), so it stays in place there, and at m <= 16
/// (in_place_always_rows) always.
/// KC = 1024 (was 512), measured 2026-12-02 on Zen 5 (FMA peak 210 GFLOP/s float) in a round-robin
/// against OpenBLAS: with m > MC every KC block ends by reading, adding and writing its C tile
/// (beta = 1), and those C rows, ldc apart, are the costly part of the block (merge_tile was 8-11%
/// of the kernel's samples at K = 4096, 2.5% when one block writes C without reading it); halving
/// the blocks gave +1-4% at M = 1024, K = N = 2048 and 4096 (ratio to OpenBLAS 0.94-0.98 ->
/// 0.98-1.0), +4-12% for 16 x 1's pipelined op(B) = Bᵀ at M <= 256, and within noise elsewhere,
/// although the MC x KC block (1 MiB) no longer fits L2 beside the rest: each micro-tile streams
/// its own MR x KC panel once. (On Zen 4, KC = 768 was measured 3-5% faster than 256; 1024 was not
/// measured there.)
/// 6 x 4's MC = 528 (was 264), measured 2026-12-02 on Zen 5 (FMA peak 221-236 GFLOP/s float,
/// measured between the runs) in the same round-robin: its NR = 64
/// strip of op(B) (KC x NR = 256 KiB) is what stays in L2, and the MR x KC panels of op(A) stream
/// past it from L3 (the sequential stream hardware prefetchers follow), so a taller block of
/// op(A) only means that each strip, fetched into L2 from the KC x NC block in L3, serves more
/// micro-tiles before the next: +3-5% at M = 512 .. 2048, K = N = 2048 and 4096 (ratio to
/// OpenBLAS 0.96-1.0 -> 1.01-1.06). Splitting a single block of m = 192 .. 528 rows in two, so
/// that its op(A) block (1 MiB at m = 256) stays in L2 beside the strips while later blocks reuse
/// the packed strips from L3: 0.92-0.96x (Zen 5, 2026-12-03, X·W and dY·Wᵀ, K = N = 2048, 4096).
/// MC = 1056 was within 1% of 528 and 2112 no better; 1056's
/// larger packed op(A) block (up to 4 MiB, 1 MiB more in the MLP benchmark's Xᵀ·dY) pushed the
/// training step's peak memory over its 1.10 x the model's needs, 528's costs a quarter of that.
/// What still separates the GEMM from the FMA peak there (84-86% at M = 1024, measured against
/// the peak in the same window): the micro-kernel alone runs at 97% with its op(A) block in L1/L2,
/// 93% when it also merges into C each KC = 256, 88% with op(A) streaming from L3 at KC = 1024.
/// Neither the depth loop inside the column strips (C kept in L2) nor op(A)'s micro-panel held in
/// L1 across 2-8 strips of op(B) (the loop order swapped) did better than this blocking.
template <class T, class Arch, gemm_tile Tile = gemm_tile::narrow,
          bool Wide = (vector_register_count<Arch> >= 32)>
struct default_gemm_blocking;

/// IPB of the AVX-512 blockings: 32 MiB (see IPB above).
inline constexpr std::size_t in_place_max_bytes = std::size_t(32) << 20;

/// Up to this m, op(B) = B is read in place whatever its size (m <= IPR): one 16 x 1 micro-tile,
/// three of 6 x 4, too few to share copying a strip among (see IPB above).
inline constexpr std::size_t in_place_always_rows = 16;

/// 32 vector registers (AVX-512), float: 16 x 1 batch (narrow) or 6 x 4 (wide), KC = 1024 for
/// both (see the Zen 5 note above for why deeper than L2 alone would suggest).
template <class Arch>
struct default_gemm_blocking<float, Arch, gemm_tile::narrow, true> {
    using type = gemm_blocking<float, Arch, 16, 1, 256, 1024, 4096, 256, 64, in_place_max_bytes>;
};
template <class Arch>
struct default_gemm_blocking<float, Arch, gemm_tile::wide, true> {
    using type = gemm_blocking<float, Arch, 6, 4, 528, 1024, 4096, 256, 64, in_place_max_bytes>;
};
/// double, narrow: 16 x 1 batch (KC = 512, 4 KiB of depth per row, measured within noise of 256
/// and 768 on Zen 4; NC = 3072 keeps the KC x NC block of op(B) at 12 MiB).
/// double, wide: 6 x 4 batches, measured 2026-12-02 on Zen 5 (double FMA peak about 118
/// GFLOP/s) in a round-robin against OpenBLAS and 16 x 1, K = N = 2048: X·W 1.08-1.16x OpenBLAS
/// at M = 32 .. 1024 where 16 x 1 ran 0.72-0.99x (held back by the load ports, as for float);
/// dY·Wᵀ 1.06-1.11x at M >= 192, where 16 x 1 was 0.92-0.98x (at small M the narrow tile's
/// pipelined transposing pack stays faster, and above it both tiles share the strips:
/// narrow_transposed_rows). MC = 264 (528 within 1%);
/// KC = 512 as 16 x 1's, which bitwise identity requires (1024 measured 1-4% faster for 6 x 4,
/// not taken: unmeasured for 16 x 1 on Zen 4, where it runs).
template <class Arch>
struct default_gemm_blocking<double, Arch, gemm_tile::narrow, true> {
    using type = gemm_blocking<double, Arch, 16, 1, 256, 512, 3072, 256, 64, in_place_max_bytes>;
};
template <class Arch>
struct default_gemm_blocking<double, Arch, gemm_tile::wide, true> {
    using type = gemm_blocking<double, Arch, 6, 4, 264, 512, 3072, 256, 64, in_place_max_bytes>;
};

/// The largest m for which gemm() runs op(B) = Bᵀ on the narrow tile whatever tile was chosen:
/// there, with one MC block, its pipelined transposing pack of 16-wide strips (inside its
/// micro-kernel) is faster than the wide tile's. Above it the wide tile fetches each next strip
/// ahead (fetching_pack_step). Measured on Zen 5 (float FMA peak 237-276 GFLOP/s, 2026-12-02)
/// against the narrow tile alone (m <= 256): float dY·Wᵀ K = N = 2048 and 4096 with the narrow
/// tile's first 16 rows packing beside the wide tile (the strategy fetching replaced) -7 to
/// -10% at m = 32, -3% at 96, within noise at 128, +1-2% at 192, +5-9% at 256; double (K = N =
/// 2048) within noise at 96, +5% at 128. The wide tile fetching ahead, measured 2026-12-03
/// (float FMA peak 260-285): +8-14% at m = 64 .. 128, K = N = 2048, but -8% at m = 64 and
/// within noise at 128 with K = N = 4096, so the threshold stayed.
template <class T>
inline constexpr std::size_t narrow_transposed_rows = 128;
template <>
inline constexpr std::size_t narrow_transposed_rows<double> = 96;

/// 16 vector registers (SSE2 .. AVX2): 6 x 2 batches; MC x KC = 192 KiB for a 256 KiB L2.
template <class Arch, gemm_tile Tile>
struct default_gemm_blocking<float, Arch, Tile, false> {
    using type =
        gemm_blocking<float, Arch, 6, 2, 192, 256, 128 * 2 * xsimd::batch<float, Arch>::size>;
};
template <class Arch, gemm_tile Tile>
struct default_gemm_blocking<double, Arch, Tile, false> {
    using type =
        gemm_blocking<double, Arch, 6, 2, 96, 256, 128 * 2 * xsimd::batch<double, Arch>::size>;
};

}  // namespace shardnet::detail
