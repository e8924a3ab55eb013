// The local GEMM every dense layer runs on: C = alpha·op(A)·op(B) + beta·C on row-major
// matrices, BLIS-style (packed panels, a register-blocked xsimd micro-kernel), no BLAS.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "shardnet/core/element_type.hpp"
#include "shardnet/core/progress.hpp"
#include "shardnet/kernels/gemm_blocking.hpp"
#include "shardnet/kernels/gemm_microkernel.hpp"
#include "shardnet/kernels/gemm_pack.hpp"

namespace shardnet {

/// Whether a GEMM operand is used as stored (`no`) or transposed (`yes`).
enum class transpose : bool { no = false, yes = true };

namespace detail {

inline constexpr std::size_t round_up(std::size_t x, std::size_t multiple) noexcept {
    return (x + multiple - 1) / multiple * multiple;
}

/// C = beta·C over an m x n block, without reading C when beta == 0.
template <class T>
void scale_matrix(std::size_t m, std::size_t n, T beta, T* c, std::size_t ldc) {
    for (std::size_t i = 0; i < m; ++i) {
        T* row = c + i * ldc;
        if (beta == T(0))
            std::fill(row, row + n, T(0));
        else if (beta != T(1))
            for (std::size_t j = 0; j < n; ++j)
                row[j] *= beta;
    }
}

/// Where gemm_blocked places its packed op(B) panel in a 4 KiB page; op(A)'s is at 0, and the
/// second half of the pipelined strip buffer half a page after this (4K aliasing,
/// at_page_offset). In multiply_block_b_transposed_pipelined the first micro-tile of a strip
/// loads op(A) and the strip at 64 bytes a step (narrow float tile) while its side job stores
/// the next strip at the same pace (at step p, into steps p - 12 .. p + 15 of its strip,
/// transposing_pack_step): a load at an offset that a store still in the store queue has waits
/// for it. From here (1792 and 3840 bytes) the stores of step p's call sit at the offsets of
/// op(A)'s loads 16 to 75 steps later (one half or the other) and of the strip's 20 to 47 steps
/// later: by then, presumably, they have left the queue (the queue's size was not measured;
/// the placement was measured with the side job storing steps p .. p + 3 at step p). For double
/// the narrow tile loads op(A) at 128 bytes a step, twice the stores' pace, so some loads meet a
/// store whatever the placement; it keeps the two apart on average only.
inline constexpr std::size_t b_panel_page_offset = page_bytes / 2 - 256;

/// One MC x NC block of C over one KC block of the depth, with that block of op(A) already
/// packed: what the strategies for op(B) below work on.
template <class T>
struct gemm_block {
    std::size_t ic, jc, pc;  ///< first row and column of the block in C; first step of the depth
    std::size_t mc, nc, kc;  ///< rows, columns and depth of the block
    const T* a_panel;        ///< op(A)[ic .. ic + mc, pc .. pc + kc] as pack_a wrote it
    T alpha, beta;           ///< beta: the caller's for the first KC block, 1 for later ones
    T* c;
    std::size_t ldc;
    std::size_t n;  ///< columns of C: a strip near its right edge must not read past them
};

/// One NR-wide strip of the block, at column jr, packed into b_strip just before its micro-tiles:
/// the in-place strategy's ragged last strip, whose NR-wide rows would run past n.
template <class Blocking, class T>
void multiply_strip_packing_b(const gemm_block<T>& block, strided_operand<T> b, T* b_strip,
                              std::size_t jr, std::size_t cols) {
    using arch = typename Blocking::arch_type;
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NV = Blocking::nv;
    pack_b<NV, arch>(block.kc, cols,
                     strided_operand<T>{b.at(block.pc, block.jc + jr), b.row_stride, b.col_stride},
                     block.n - block.jc - jr, b_strip);
    for (std::size_t ir = 0; ir < block.mc; ir += MR)
        micro_kernel<T, arch, MR, NV>(block.kc, block.a_panel + ir * block.kc, b_strip, block.alpha,
                                      block.beta,
                                      block.c + (block.ic + ir) * block.ldc + block.jc + jr,
                                      block.ldc, std::min(MR, block.mc - ir), cols);
}

/// Strips at least this deep are fetched a strip ahead in the MC blocks after the first
/// (multiply_block_b_packed).
inline constexpr std::size_t fetched_packed_depth = 512;

/// Every MC block after the first: the strips of op(B) are already packed (the first MC block's
/// strategy left the KC x NC block in b_panel), only the micro-tiles run. When the strips are
/// fetched_packed_depth deep or more, on cores that gain from it, the micro-tiles of each strip
/// fetch the next one into cache as their side job, each its share (fetching_side_job).
/// Why: the KC x NC block is in L3, and the first micro-tile of each strip otherwise waits for
/// it: measured on Zen 5 (2026-12-03, rdtsc per micro-tile, X^T·dY m = n = 2048, k = 1024), 30-31k
/// TSC ticks for that tile against 9.4-9.7k for the others, 16k with the fetch and the others
/// unchanged; the GEMM +0.5-2.3% at k = 1024 (15 alternating rounds, float FMA peak 217-226
/// GFLOP/s: X·W M = 1024, X^T·dY m = n = 2048 and 4096), but -2.8% with KC = 256 (X^T·dY
/// m = n = 2048, k = 256), where a strip is 64 KiB and the first tile waited little.
/// On Zen 4 the fetch costs more than the wait: without it, 16 x 1 ran 0.94-1.04x (median of
/// the shapes 1.03x; the 0.94, X·W M = 512, within its rounds' 0.84-1.06; an unchanged copy
/// against itself 0.98-1.02x) and 6 x 4 1.01-1.04x, X·W,
/// dY·Wᵀ and Xᵀ·dY at M = 512 .. 2048, K = N = 2048 and 4096 (float FMA peak 112-118 GFLOP/s,
/// 2026-12-03, 11 alternating rounds, same bits). So it runs where the core fetches
/// (gemm_tile_choice::fetch_packed_strips: Zen 5, not Zen 4).
/// Running every other strip's micro-tiles bottom-up, so that each strip starts on the panels of
/// op(A) the last one left in cache, measured within noise (here and in
/// multiply_block_preparing_strips; Zen 5, 11 alternating rounds, the twelve float shapes with
/// M >= 256, K = N >= 2048: 0.996-1.012x).
template <class Blocking, class T>
void multiply_block_b_packed(const gemm_block<T>& block, const T* b_panel) {
    using arch = typename Blocking::arch_type;
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NR = Blocking::nr;
    constexpr std::size_t NV = Blocking::nv;
    const bool fetch = block.kc >= fetched_packed_depth && chosen_gemm_tile().fetch_packed_strips;
    const std::size_t tiles = (block.mc + MR - 1) / MR;
    for (std::size_t jr = 0; jr < block.nc; jr += NR) {
        const T* strip = b_panel + jr * block.kc;
        // The next packed strip is contiguous: one row of NR·kc values (none when not fetching).
        const strip_lines next{
            reinterpret_cast<const char*>(strip + NR * block.kc), 0, 1,
            fetch && next_strip_columns<NR>(jr, block.nc) != 0 ? NR * block.kc * sizeof(T) : 0};
        for (std::size_t ir = 0; ir < block.mc; ir += MR) {
            T* c_tile = block.c + (block.ic + ir) * block.ldc + block.jc + jr;
            const std::size_t rows = std::min(MR, block.mc - ir);
            const std::size_t cols = std::min(NR, block.nc - jr);
            if (next.row_bytes != 0)
                micro_kernel<T, arch, MR, NV, false, fetching_side_job>(
                    block.kc, block.a_panel + ir * block.kc, strip, block.alpha, block.beta, c_tile,
                    block.ldc, rows, cols, NR, 0,
                    fetching_side_job{next,
                                      strip_share::of_tile(ir / MR, tiles, next.units(), block.kc,
                                                           fetching_side_job::every)});
            else
                micro_kernel<T, arch, MR, NV>(block.kc, block.a_panel + ir * block.kc, strip,
                                              block.alpha, block.beta, c_tile, block.ldc, rows,
                                              cols);
        }
    }
}

/// With a single MC block and op(B) = B: full strips of B are read in place by the
/// micro-kernel, KCI deep instead of KC; the ragged last strip, whose NR-wide rows would run
/// past n, is packed into b_panel.
/// Why: one MC block uses each strip once, so packing would only copy it (gemm_blocking.hpp).
template <class Blocking, class T>
void multiply_block_b_in_place(const gemm_block<T>& block, strided_operand<T> b, T* b_panel) {
    using arch = typename Blocking::arch_type;
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NR = Blocking::nr;
    constexpr std::size_t NV = Blocking::nv;
    // The first micro-tile of a strip prefetches its rows this far to the right: 4 cache
    // lines, i.e. the strips 4 x 64 bytes ahead (measured at M = 32, 64: 2 to 8 lines within
    // noise; no prefetch, or the same strip 8 rows ahead, 10-40% slower).
    constexpr std::size_t prefetch_ahead = 4 * 64 / sizeof(T);
    for (std::size_t jr = 0; jr < block.nc; jr += NR) {
        const std::size_t cols = std::min(NR, block.nc - jr);
        if (cols != NR) {
            multiply_strip_packing_b<Blocking>(block, b, b_panel, jr, cols);
            continue;
        }
        const T* b_rows = b.at(block.pc, block.jc + jr);
        // Prefetch only what exists: columns up to n in this row.
        const std::size_t ahead =
            block.jc + jr + NR + prefetch_ahead <= block.n ? prefetch_ahead : 0;
        for (std::size_t ir = 0; ir < block.mc; ir += MR)
            micro_kernel<T, arch, MR, NV, true>(
                block.kc, block.a_panel + ir * block.kc, b_rows, block.alpha, block.beta,
                block.c + (block.ic + ir) * block.ldc + block.jc + jr, block.ldc,
                std::min(MR, block.mc - ir), cols, b.row_stride, ir == 0 ? ahead : 0);
    }
}

/// The two strip buffers in b_panel that the strategies packing a strip ahead with a single MC
/// block alternate between: the strip at column jr is read from one while the next is packed
/// into the other. (fetching_pack_step packs after the strip and could reuse one buffer, still in
/// L2 where the other has left it: measured within noise, 1.00-1.01x, Zen 5, 2026-12-03, dY·Wᵀ
/// M = 256, K = N = 2048, 4096, 21 alternating rounds.)
/// The second is placed in its page (b_panel_page_offset). Measured on Zen 5 (float FMA peak
/// 243-260 GFLOP/s, 2026-12-02): in a harness where malloc had put op(A)'s panel and the strip
/// buffer at the same offset in their pages (and so every load of op(A) at the offset of a
/// store the side job had just made), dY·Wᵀ K = N = 2048 and 4096 ran +25-40% at M = 32,
/// +15-24% at 64, +7-15% at 128 and +6-9% at 256 once the halves were moved; in bench_gemm,
/// where malloc had put them 2-3 KiB apart, within noise. For float the placement makes the good
/// case certain rather than malloc's in multiply_block_b_transposed_pipelined, whose side job
/// stores 64 bytes a step. copying_pack_step stores a few rows every 8 steps: its placement was
/// not measured apart.
template <class T, std::size_t NR>
struct alternating_strips {
    T* halves[2];
    alternating_strips(T* b_panel, std::size_t kc)
        : halves{b_panel, at_page_offset(b_panel + NR * kc, b_panel_page_offset + page_bytes / 2)} {
    }
    T* current(std::size_t jr) const { return halves[jr / NR % 2]; }
    T* next(std::size_t jr) const { return halves[(jr / NR + 1) % 2]; }
};

/// pack_b of `cols` columns of op(B) = Bᵀ (b.row_stride == 1) from column `col` of C (the
/// block's depth), into dest: a strip packed without a side job.
template <std::size_t NV, class Arch, class T>
void pack_transposed_strip(const gemm_block<T>& block, strided_operand<T> b, std::size_t col,
                           std::size_t cols, T* dest) {
    pack_b<NV, Arch>(block.kc, cols, strided_operand<T>{b.at(block.pc, col), 1, b.col_stride},
                     block.n - col, dest);
}

/// With a single MC block and op(B) = Bᵀ: strips are packed into two alternating halves of
/// b_panel, and the first micro-tile of each strip packs the next full strip as its side job.
/// Why: the transposing copy overlaps the FMAs (transposing_pack_step, gemm_pack.hpp).
template <class Blocking, class T>
void multiply_block_b_transposed_pipelined(const gemm_block<T>& block, strided_operand<T> b,
                                           T* b_panel) {
    using arch = typename Blocking::arch_type;
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NR = Blocking::nr;
    constexpr std::size_t NV = Blocking::nv;
    const std::size_t kc = block.kc, nc = block.nc, jc = block.jc, pc = block.pc;
    const alternating_strips<T, NR> strips(b_panel, kc);
    for (std::size_t jr = 0; jr < nc; jr += NR) {
        const std::size_t cols = std::min(NR, nc - jr);
        T* strip = strips.current(jr);
        T* next_strip = strips.next(jr);
        if (jr == 0) pack_transposed_strip<NV, arch>(block, b, jc, cols, strip);
        const std::size_t next_cols = next_strip_columns<NR>(jr, nc);
        const transposing_pack_step<T, NR> pack_next{
            next_cols != 0 ? b.at(pc, jc + jr + NR) : nullptr, b.col_stride, kc, next_strip};
        for (std::size_t ir = 0; ir < block.mc; ir += MR) {
            T* c_tile = block.c + (block.ic + ir) * block.ldc + jc + jr;
            const std::size_t rows = std::min(MR, block.mc - ir);
            if (ir == 0 && next_cols == NR)
                micro_kernel<T, arch, MR, NV, false, transposing_pack_step<T, NR>>(
                    kc, block.a_panel, strip, block.alpha, block.beta, c_tile, block.ldc, rows,
                    cols, NR, 0, pack_next);
            else
                micro_kernel<T, arch, MR, NV>(kc, block.a_panel + ir * kc, strip, block.alpha,
                                              block.beta, c_tile, block.ldc, rows, cols);
        }
        if (next_cols == NR)
            pack_next.finish();
        else if (next_cols != 0)
            pack_transposed_strip<NV, arch>(block, b, jc + jr + NR, next_cols, next_strip);
    }
}

/// The first MC block (the only one, or the first of several) with op(B) packed a strip ahead:
/// the micro-tiles of each strip prepare the next full strip as their side job, each its share
/// (strip_share): Step = copying_pack_step copies it (op(B) = B), fetching_pack_step fetches its
/// lines, which pack_b then transposes from cache after the strip (op(B) = Bᵀ). The first strip
/// and a ragged last one are packed by pack_b alone. With a single MC block the strips
/// alternate between two halves of b_panel (alternating_strips); otherwise each has its place in
/// the KC x NC block, which later MC blocks reuse (multiply_block_b_packed).
/// Why: a strip of op(B) packed in a loop of its own waits on memory latency between
/// micro-kernels (copying_pack_step, fetching_pack_step).
template <class Blocking, template <class, class, std::size_t> class Step, class T>
void multiply_block_preparing_strips(const gemm_block<T>& block, strided_operand<T> b, T* b_panel,
                                     bool one_strip_buffer) {
    using arch = typename Blocking::arch_type;
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NR = Blocking::nr;
    constexpr std::size_t NV = Blocking::nv;
    using step = Step<T, arch, NR>;
    const std::size_t kc = block.kc, nc = block.nc, jc = block.jc, pc = block.pc;
    // Stored rows of op(B) = B (steps of the strip) or of B for Bᵀ (its columns).
    const std::size_t ld = b.col_stride == 1 ? b.row_stride : b.col_stride;
    const alternating_strips<T, NR> strips(b_panel, kc);
    const auto strip_at = [&](std::size_t jr) {
        return one_strip_buffer ? strips.current(jr) : b_panel + jr * kc;
    };
    const auto pack_strip = [&](std::size_t jr, std::size_t cols, T* dest) {
        pack_b<NV, arch>(kc, cols,
                         strided_operand<T>{b.at(pc, jc + jr), b.row_stride, b.col_stride},
                         block.n - jc - jr, dest);
    };
    const std::size_t tiles = (block.mc + MR - 1) / MR;
    const std::size_t units = step::units(kc);
    for (std::size_t jr = 0; jr < nc; jr += NR) {
        const std::size_t cols = std::min(NR, nc - jr);
        T* strip = strip_at(jr);
        T* next_strip = strip_at(jr + NR);
        if (jr == 0) pack_strip(0, cols, strip);
        const std::size_t next_cols = next_strip_columns<NR>(jr, nc);
        const T* next_source = next_cols == NR ? b.at(pc, jc + jr + NR) : nullptr;
        if (next_source)
            step::prefetch_start(next_source, ld, kc,
                                 strip_share::of_tile(0, tiles, units, kc, step::every));
        for (std::size_t ir = 0; ir < block.mc; ir += MR) {
            T* c_tile = block.c + (block.ic + ir) * block.ldc + jc + jr;
            const std::size_t rows = std::min(MR, block.mc - ir);
            if (next_source) {
                const step prepare_next =
                    step::for_tile(next_source, ld, next_strip, kc,
                                   strip_share::of_tile(ir / MR, tiles, units, kc, step::every));
                micro_kernel<T, arch, MR, NV, false, step>(
                    kc, block.a_panel + ir * kc, strip, block.alpha, block.beta, c_tile, block.ldc,
                    rows, cols, NR, 0, prepare_next);
            } else {
                micro_kernel<T, arch, MR, NV>(kc, block.a_panel + ir * kc, strip, block.alpha,
                                              block.beta, c_tile, block.ldc, rows, cols);
            }
        }
        if (next_cols != 0 && !(next_source && step::packs))
            pack_strip(jr + NR, next_cols, next_strip);
    }
}

/// The five-loop BLIS algorithm with an explicit blocking (see gemm_blocking.hpp). From the
/// outside in: NC columns of C, KC of the depth (the KC x NC block of op(B) is packed once,
/// reused by every MC block), MC rows (op(A) block packed, reused by every NR strip), then
/// NR strips and micro-tiles, run by one of the strategies above, for the first MC block: op(B)
/// = B read in place when m <= IPR (in_place_rows) and it is small or m smaller still
/// (in_place_bytes, in_place_always_rows), KCI deep; op(B) = Bᵀ with a single MC block packed
/// by the micro-kernel itself when the tile leaves it the registers (transposes_in_kernel);
/// otherwise packed a strip ahead (multiply_block_preparing_strips). Later MC blocks reuse the
/// packed strips. Only the first KC block applies the caller's beta; later ones accumulate
/// (beta = 1).
template <class Blocking, class T>
void gemm_blocked(std::size_t m, std::size_t n, std::size_t k, T alpha, strided_operand<T> a,
                  strided_operand<T> b, T beta, T* c, std::size_t ldc) {
    constexpr std::size_t MR = Blocking::mr;
    constexpr std::size_t NR = Blocking::nr;

    const bool single_row_block = m <= Blocking::mc;
    // On in_place_rows, not mc: the depth blocking (KCI or KC) must not depend on the tile, so
    // that every tile gives the same bits (gemm_blocking.hpp).
    const bool few_rows_b = m <= Blocking::in_place_rows && b.col_stride == 1;
    const bool b_in_place =
        few_rows_b && (m <= in_place_always_rows || k * n * sizeof(T) <= Blocking::in_place_bytes);
    const bool b_copied = b.col_stride == 1;  // otherwise b.row_stride == 1: op(B) = Bᵀ
    const bool b_transposed_in_kernel =
        Blocking::transposes_in_kernel && single_row_block && !b_copied;
    const std::size_t kc_step = few_rows_b ? Blocking::kc_in_place : Blocking::kc;
    const std::size_t kc_max = std::min(k, kc_step);
    // Both panels at fixed offsets in their pages (b_panel_page_offset), whatever malloc gave.
    constexpr std::size_t page = page_bytes / sizeof(T);
    T* a_panel = at_page_offset(
        packing_buffer<T, 0>(round_up(std::min(m, Blocking::mc), MR) * kc_max + page), 0);
    // With a single MC block every strip of op(B) is used once, right after packing: two strips
    // of buffer (the one in use and the next), rewritten in turn, stay in L1 (and the buffer
    // stays small). Packing several strips at a time (longer reads per row of B) was measured
    // slower, not faster.
    const std::size_t b_columns =
        single_row_block ? 2 * NR : round_up(std::min(n, Blocking::nc), NR);
    T* b_panel =
        at_page_offset(packing_buffer<T, 1>(b_columns * kc_max + 2 * page), b_panel_page_offset);

    for (std::size_t jc = 0; jc < n; jc += Blocking::nc) {
        const std::size_t nc = std::min(Blocking::nc, n - jc);
        for (std::size_t pc = 0; pc < k; pc += kc_step) {
            const std::size_t kc = std::min(kc_step, k - pc);
            const T beta_block = pc == 0 ? beta : T(1);
            for (std::size_t ic = 0; ic < m; ic += Blocking::mc) {
                // Between blocks of a few milliseconds at most: let overlapped communication
                // advance (core/progress.hpp).
                if (jc != 0 || pc != 0 || ic != 0) make_progress();
                const std::size_t mc = std::min(Blocking::mc, m - ic);
                pack_a<MR>(mc, kc, strided_operand<T>{a.at(ic, pc), a.row_stride, a.col_stride},
                           a_panel);
                const gemm_block<T> block{.ic = ic,
                                          .jc = jc,
                                          .pc = pc,
                                          .mc = mc,
                                          .nc = nc,
                                          .kc = kc,
                                          .a_panel = a_panel,
                                          .alpha = alpha,
                                          .beta = beta_block,
                                          .c = c,
                                          .ldc = ldc,
                                          .n = n};
                if (ic != 0)
                    multiply_block_b_packed<Blocking>(block, b_panel);
                else if (b_in_place)
                    multiply_block_b_in_place<Blocking>(block, b, b_panel);
                else if (b_transposed_in_kernel)
                    multiply_block_b_transposed_pipelined<Blocking>(block, b, b_panel);
                else if (b_copied)
                    multiply_block_preparing_strips<Blocking, copying_pack_step>(block, b, b_panel,
                                                                                 single_row_block);
                else
                    multiply_block_preparing_strips<Blocking, fetching_pack_step>(block, b, b_panel,
                                                                                  single_row_block);
            }
        }
    }
}

}  // namespace detail

/// Row-major C(m x n) = alpha · op(A) · op(B) + beta · C.
///
/// op(A) is m x k: A is stored m x k (lda >= k) when trans_a == no, k x m (lda >= m) when yes.
/// op(B) is k x n: B is stored k x n (ldb >= n) when trans_b == no, n x k (ldb >= k) when yes.
///
/// The instruction set is fixed at compile time by Arch. Run-time dispatch (xsimd::dispatch)
/// cannot live in a header-only library: each architecture needs its own translation unit
/// compiled with its own flags, which only the user's build can provide. Within AVX-512, the
/// register tile (float and double) is chosen at run time for the core (chosen_gemm_tile(),
/// kernels/gemm_tile.hpp); the tiles give bitwise identical results. Single-threaded;
/// concurrent calls from different threads are safe (packing buffers are per thread).
///
/// @tparam T     float or double.
/// @tparam Arch  xsimd architecture tag (the widest one the translation unit is compiled for).
/// @pre   ldc >= n; A, B and C do not overlap C's written part.
/// @post  C holds the result; when beta == 0, C was not read (NaN in C does not propagate);
///        when k == 0 or alpha == 0, C = beta · C and A, B are not read.
///        Does not allocate once a call of the same shape and transposes has run on this
///        thread (a larger call of another path may still need a few more packed rows).
template <class T, class Arch = xsimd::default_arch>
void gemm(transpose trans_a, transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
          T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
          std::size_t ldc) {
    static_assert(element_type<T>,
                  "shardnet::gemm: T must be an element type (float or double; see "
                  "core/element_type.hpp)");
    if (m == 0 || n == 0) return;
    if (k == 0 || alpha == T(0)) {
        detail::scale_matrix(m, n, beta, c, ldc);
        return;
    }
    const detail::strided_operand<T> op_a = trans_a == transpose::no
                                                ? detail::strided_operand<T>{a, lda, 1}
                                                : detail::strided_operand<T>{a, 1, lda};
    const detail::strided_operand<T> op_b = trans_b == transpose::no
                                                ? detail::strided_operand<T>{b, ldb, 1}
                                                : detail::strided_operand<T>{b, 1, ldb};
    using narrow = typename detail::default_gemm_blocking<T, Arch, gemm_tile::narrow>::type;
    using wide = typename detail::default_gemm_blocking<T, Arch, gemm_tile::wide>::type;
    // On the wide tile, op(B) = Bᵀ up to narrow_transposed_rows runs on the narrow tile, whose
    // micro-kernel packs each next strip itself: faster there on every core measured
    // (gemm_blocking.hpp).
    if constexpr (!std::is_same_v<narrow, wide>)
        if (chosen_gemm_tile().tile == gemm_tile::wide &&
            !(trans_b == transpose::yes && m <= detail::narrow_transposed_rows<T>))
            return detail::gemm_blocked<wide>(m, n, k, alpha, op_a, op_b, beta, c, ldc);
    detail::gemm_blocked<narrow>(m, n, k, alpha, op_a, op_b, beta, c, ldc);
}

}  // namespace shardnet
