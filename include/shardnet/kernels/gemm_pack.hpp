// Packing of op(A) and op(B) blocks into the contiguous, zero-padded micro-panels the GEMM
// micro-kernel reads. Transposition is resolved here, so the micro-kernel sees one layout.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "shardnet/kernels/simd.hpp"

namespace shardnet::detail {

/// A strided view of a matrix operand: element (i, j) is data[i * row_stride + j * col_stride].
/// A row-major matrix is (ld, 1); its transpose is (1, ld). Packing reads through this, so
/// one function serves both transposition flags.
template <class T>
struct strided_operand {
    const T* data;
    std::size_t row_stride;
    std::size_t col_stride;

    const T* at(std::size_t i, std::size_t j) const noexcept {
        return data + i * row_stride + j * col_stride;
    }
};

/// Packs the rows x depth block of op(A) at `a` into micro-panels of MR rows: panel r holds
/// element (r·MR + i, p) at dest[r·MR·depth + p·MR + i], so the micro-kernel reads MR
/// consecutive scalars per step of p. Rows past `rows` are zero: the micro-kernel then always
/// computes full tiles and the padding contributes exact zeros.
template <std::size_t MR, class T>
void pack_a(std::size_t rows, std::size_t depth, strided_operand<T> a, T* dest) {
    if (a.row_stride == 1) {
        // op(A) = Aᵀ: the MR values of one p are contiguous in A, a plain copy. Panels go in
        // groups that span a few cache lines of each row p of A, p outermost, and the group's
        // lines of row p + 16 are prefetched: rows are lda apart, a stride the hardware
        // prefetchers did not follow. Measured on Zen 5 (float FMA peak 260-280 GFLOP/s,
        // 2026-12-03; perf samples, Xᵀ·dY m = n = k = 1024):
        // pack_a 7.4-9.3% of the GEMM panel by panel, 7.5% in groups, 3.9-4.4% in groups with
        // the prefetch (8 or 32 rows ahead: 4.6-5.2%); the GEMM +4% (7 alternating rounds).
        // Copying full groups with a constant count per panel (vector moves) packed 2-3x faster
        // from cache but not from where the GEMM finds A: Xᵀ·dY 0.98-1.01x (Zen 5, 2026-12-03,
        // m = n = 2048 and 4096, k = 32 .. 1024, 11 alternating rounds).
        constexpr std::size_t group = 8;
        for (std::size_t r0 = 0; r0 < rows; r0 += group * MR) {
            const std::size_t panels = std::min(group, (rows - r0 + MR - 1) / MR);
            const std::size_t span = std::min(panels * MR, rows - r0);  // values of A a row
            for (std::size_t p = 0; p < depth; ++p) {
                const T* src = a.at(r0, p);
                if (p + 16 < depth) {
                    for (std::size_t l = 0; l < span; l += 64 / sizeof(T))
                        prefetch(a.at(r0 + l, p + 16));
                    prefetch(a.at(r0 + span - 1, p + 16));
                }
                for (std::size_t g = 0; g < panels; ++g) {
                    T* out = dest + g * MR * depth + p * MR;
                    const std::size_t mr = std::min(MR, rows - r0 - g * MR);
                    for (std::size_t i = 0; i < mr; ++i)
                        out[i] = src[g * MR + i];
                    for (std::size_t i = mr; i < MR; ++i)
                        out[i] = T(0);
                }
            }
            dest += panels * MR * depth;
        }
        return;
    }
    for (std::size_t r0 = 0; r0 < rows; r0 += MR) {
        const std::size_t mr = std::min(MR, rows - r0);
#if defined(__AVX512F__)
        if constexpr (MR == 6 && std::is_same_v<T, float>)
            if (a.col_stride == 1 && mr == MR) {
                // op(A) = A on the 6-row tile: sixteen steps at a time (interleave_six_rows).
                // Not packing at all (the micro-kernel broadcasting from the six rows of A in
                // place, only the ragged last rows packed) was slower: X·W, dY·Wᵀ -0.2 to -2% at
                // M = 256, -3 to -7% at 1024, K = N = 2048, 4096 (Zen 5, 2026-12-03, 11 rounds).
                // Prefetching the next panel's rows made this pack faster from memory (15.7 ->
                // 11-13 TSC ticks a vector, Zen 5, 2026-12-03) but not the GEMM (X·W, dY·Wᵀ at
                // M = 256, 1024, K = N = 2048, 4096, 21 alternating rounds: 0.99-1.02x): left out.
                const T* src = a.at(r0, 0);
                std::size_t p = 0;
                for (; p + 16 <= depth; p += 16)
                    interleave_six_rows(src + p, a.row_stride, dest + p * MR);
                for (; p < depth; ++p)
                    for (std::size_t i = 0; i < MR; ++i)
                        dest[p * MR + i] = src[i * a.row_stride + p];
                dest += MR * depth;
                continue;
            }
#endif
        if (a.col_stride == 1 && mr == MR && MR % transpose_block<T> == 0) {
            // op(A) = A: a transpose, done in small register blocks; each source row is read
            // contiguously.
            constexpr std::size_t tb = transpose_block<T>;
            const std::size_t full = depth / tb * tb;
            for (std::size_t i = 0; i < MR; i += tb) {
                const T* src = a.at(r0 + i, 0);
                for (std::size_t p = 0; p < full; p += tb)
                    transpose_block_copy(src + p, a.row_stride, dest + p * MR + i, MR);
                for (std::size_t p = full; p < depth; ++p)
                    for (std::size_t q = 0; q < tb; ++q)
                        dest[p * MR + i + q] = src[q * a.row_stride + p];
            }
        } else {
            for (std::size_t p = 0; p < depth; ++p) {
                T* out = dest + p * MR;
                for (std::size_t i = 0; i < mr; ++i)
                    out[i] = *a.at(r0 + i, p);
                for (std::size_t i = mr; i < MR; ++i)
                    out[i] = T(0);
            }
        }
        dest += MR * depth;
    }
}

/// Packs the depth x cols block of op(B) at `b` into micro-panels of NR = NV batches of
/// columns: panel s holds element (p, s·NR + j) at dest[s·NR·depth + p·NR + j], aligned, so
/// the micro-kernel loads NV aligned batches per step of p. Columns past `cols` are zero.
/// `readable` >= cols is how many columns exist from the block's first one: packing reads
/// only `cols` of them but may prefetch further.
template <std::size_t NV, class Arch, class T>
void pack_b(std::size_t depth, std::size_t cols, strided_operand<T> b, std::size_t readable,
            T* dest) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t width = batch::size;
    constexpr std::size_t NR = NV * width;
    for (std::size_t c0 = 0; c0 < cols; c0 += NR) {
        const std::size_t nr = std::min(NR, cols - c0);
        if (b.col_stride == 1 && nr == NR) {
            // op(B) = B: each step of p is NR contiguous values, a vector copy.
            for (std::size_t p = 0; p < depth; ++p) {
                const T* src = b.at(p, c0);
                T* out = dest + p * NR;
                static_for<NV>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                    batch::load_unaligned(src + v * width).store_aligned(out + v * width);
                });
            }
        } else if (b.col_stride == 1) {
            for (std::size_t p = 0; p < depth; ++p) {
                const T* src = b.at(p, c0);
                T* out = dest + p * NR;
                for (std::size_t j = 0; j < nr; ++j)
                    out[j] = src[j];
                for (std::size_t j = nr; j < NR; ++j)
                    out[j] = T(0);
            }
        } else if (b.row_stride == 1 && nr == NR && NR % transpose_block<T> == 0) {
            // op(B) = Bᵀ: a transpose in register blocks. Each group of stored rows (panel
            // columns) is read contiguously over the whole depth. For float on AVX-512, groups
            // of 16 (transpose_16x16_words); otherwise of tb, the next group prefetched, because
            // tb short streams 4-16 KiB apart are what hardware prefetchers track worst
            // (measured ~25% faster on Zen 4 for K = N >= 2048; for groups of 16, 0-1.5% slower
            // on Zen 5). A 16-group strip 1024 deep with its rows in L2 (ldb = 2048, 4096) took
            // 3.7-4.3 TSC ticks (2.6 GHz) a vector on Zen 5 (2026-12-03), 1.9 with rows and strip
            // in L1: each vector brings its source line from L2, and its line of the strip in and
            // out again. Not faster there: 8-row halves stored as 256-bit vectors (+19-44% time);
            // each vector's lanes gathered from four rows by 128-bit loads, then 4 x 4 in-lane
            // transposes (+0-26%). On Zen 4 (float FMA peak 112-118 GFLOP/s, 2026-12-03) the
            // 16-group pack ran 9-15 TSC ticks a vector with ldb = 1024 or 2048 floats (the 16
            // rows' lines in one set of L1) against 5 with ldb = 2056, and 2.4 for the transposes
            // alone from L1; prefetching the rows 1, 2 or 4 groups of steps ahead (into L1 or L2)
            // did not close the gap. pack_b was 2-2.5% of dY·Wᵀ at M = 1024, K = N = 2048, 4096
            // (perf samples).
            constexpr std::size_t tb = transpose_block<T>;
            constexpr std::size_t group = wide_transpose<T> && NR % 16 == 0 ? 16 : tb;
            constexpr std::size_t line = 64 / sizeof(T);
            for (std::size_t j = 0; j < NR; j += group) {
                const T* src = b.at(0, c0 + j);
                if (group == tb && c0 + j + 2 * tb <= readable)
                    for (std::size_t q = 0; q < tb; ++q)
                        for (std::size_t p = 0; p < depth; p += line)
                            prefetch(src + (tb + q) * b.col_stride + p);
                std::size_t p = 0;
#if defined(__AVX512F__)
                if constexpr (group == 16)
                    for (; p + 16 <= depth; p += 16)
                        transpose_16x16_words(src + p, b.col_stride, dest + p * NR + j, NR);
#endif
                for (; p + tb <= depth; p += tb)
                    for (std::size_t q = 0; q < group; q += tb)
                        transpose_block_copy(src + q * b.col_stride + p, b.col_stride,
                                             dest + p * NR + j + q, NR);
                for (; p < depth; ++p)
                    for (std::size_t q = 0; q < group; ++q)
                        dest[p * NR + j + q] = src[q * b.col_stride + p];
            }
        } else {
            // A ragged last panel of Bᵀ (or an unusual stride): element by element.
            for (std::size_t p = 0; p < depth; ++p) {
                T* out = dest + p * NR;
                for (std::size_t j = 0; j < nr; ++j)
                    out[j] = *b.at(p, c0 + j);
                for (std::size_t j = nr; j < NR; ++j)
                    out[j] = T(0);
            }
        }
        dest += NR * depth;
    }
}

/// pack_b of one full strip of op(B) = Bᵀ (NR columns, `depth` steps), cut into side jobs for
/// the micro-kernel, one call every `every` steps: over NR steps the calls take the strip's
/// groups of `every` columns (rows of B) in turn, each transposing its group's NR steps in
/// every x every blocks; the calls of the steps past depth / NR·NR do nothing, finish() packs
/// those. Run inside the micro-kernel of the previous strip, the transposing copy (loads,
/// shuffles and stores) overlaps its FMAs instead of running as a loop of its own between
/// micro-kernels: measured 15-40% faster at M = 32, 64 with K = N = 2048, 4096 (Zen 4, in the
/// order before), within noise at 1024. It needs about 8 vector registers beside the micro-tile's
/// (gemm_blocking::transposes_in_kernel); wider tiles fetch the strip ahead instead
/// (fetching_pack_step).
/// Why a group at a time, NR steps of it (for the narrow tile NR steps of a row of B are one
/// cache line): the rows of B are ldb apart, at ldb a multiple of 1024 floats all in one set of
/// L1, which holds 8 (Zen 4) or 12 (Zen 5) lines of a set. A call over `every` steps of all NR
/// rows (the order before) kept 16 lines of that set in use and reloaded each line four times, as
/// often as not from L2. Measured on Zen 4 (float FMA peak 112-118 GFLOP/s, 2026-12-03, 9
/// alternating rounds against that order, medians): float dY·Wᵀ, K = N = 1024 .. 4096, 1.18-1.24x
/// at M = 32, 1.07-1.13x at 64, 1.04-1.06x at 128, 1.02-1.03x at 192, within noise at 256 and
/// 1024; double within noise (M = 32 .. 256, K = N = 1024, 2048). The first micro-tile of a
/// strip, the one with the side job, still takes 1.8-2.0x as long as the others (perf samples):
/// with the rows of B read from L1 instead (wrong results, a timing experiment) the GEMM ran 5%
/// faster at M = 256 and 20% at 64. Not better, measured the same way (0.94-1.04x): prefetching
/// the rows the side job reads 2 or 4 spans of NR steps ahead (into L1 or L2); the strip after
/// next fetched during the strip's other micro-tiles (into L1 or L2; by all of them, or by the
/// last 2, 4 or 8); the side job spread over every micro-tile of the strip.
template <class T, std::size_t NR>
struct transposing_pack_step {
    static constexpr std::size_t every = transpose_block<T>;
    static_assert(NR % every == 0, "transposing_pack_step: NR must be a multiple of the block");

    const T* source;  // element (p, j) of the strip of op(B) at source[j * ld + p]
    std::size_t ld;
    std::size_t depth;
    T* dest;  // element (p, j) at dest[p * NR + j], as pack_b writes it

    // Always inlined, as transpose_block_copy: a call here, inside the micro-kernel's depth loop,
    // makes it store and reload every accumulator around the call (all vector registers are
    // caller-saved). g++ 12 decided differently per binary: bench_gemm called transpose_block_copy
    // out of line from the narrow tile's loop after an unrelated change to the micro-kernel, and
    // the wide tile's side job was never inlined.
    SHARDNET_ALWAYS_INLINE void operator()(std::size_t p) const noexcept {
        const std::size_t first_step = p / NR * NR;
        if (first_step + NR > depth) return;  // the ragged end of the depth is finish()'s
        const std::size_t column = p % NR / every * every;  // first of the call's group
        static_for<NR / every>([&](auto s) SHARDNET_LAMBDA_ALWAYS_INLINE {
            const std::size_t step = first_step + s * every;
            transpose_block_copy(source + column * ld + step, ld, dest + step * NR + column, NR);
        });
    }
    void finish() const noexcept {
        for (std::size_t p = depth / NR * NR; p < depth; ++p)
            for (std::size_t j = 0; j < NR; ++j)
                dest[p * NR + j] = source[j * ld + p];
    }
};

/// One micro-tile's share of preparing the next strip of op(B) (copying_pack_step,
/// fetching_pack_step): units [first, last) of the strip's `units`, per_call of them each call.
/// The micro-tiles of a strip, `depth` steps deep each and called every `every` steps, split the
/// units evenly in order, so each does a few units every few steps instead of one doing all.
struct strip_share {
    std::size_t first = 0, last = 0, per_call = 0;

    static strip_share of_tile(std::size_t tile, std::size_t tiles, std::size_t units,
                               std::size_t depth, std::size_t every) noexcept {
        const std::size_t per_tile = (units + tiles - 1) / tiles;
        const std::size_t calls = (depth + every - 1) / every;
        const std::size_t first = std::min(units, tile * per_tile);
        return {first, std::min(units, first + per_tile), (per_tile + calls - 1) / calls};
    }
    /// The units of the call before step p (p a multiple of `every`): [from, to), empty once the
    /// share is done.
    std::size_t from(std::size_t p, std::size_t every) const noexcept {
        return first + p / every * per_call;
    }
    std::size_t to(std::size_t p, std::size_t every) const noexcept {
        return std::min(from(p, every) + per_call, last);
    }
};

/// Columns of the strip after the one at jr in a block nc wide, strips NR wide (0 if none).
template <std::size_t NR>
constexpr std::size_t next_strip_columns(std::size_t jr, std::size_t nc) noexcept {
    return nc - jr > NR ? std::min(NR, nc - jr - NR) : 0;
}

/// Side job: copies steps of a full strip of op(B) = B (element (p, j) at source[p·ld + j]) into
/// dest as pack_b would (dest[p·NR + j]); a unit is one step of the strip. Each call also
/// prefetches the steps it will copy `lead` calls later (past its share, the next micro-tile's
/// first ones; the caller prefetches the first micro-tile's, prefetch_start).
/// Why: the rows of a strip are ldb apart, every one in another page, so no hardware prefetcher
/// follows them, and pack_b's loop of its own waits on memory latency with only as many lines in
/// flight as the core tracks misses (measured about 16 GB/s on Zen 5, float FMA peak 281-293
/// GFLOP/s, 2026-12-02). As side jobs the fetches overlap the FMAs and the copies find their lines
/// in L1: measured on Zen 5 (float FMA peak 247-275 GFLOP/s, 2026-12-03; 7 alternating rounds
/// against pack_b's loop, medians), X·W +7-12% at M = 128-256, K = N = 2048 and 4096 (+24% for
/// 16 x 1 at M = 128), +3% at M = 1024.
template <class T, class Arch, std::size_t NR>
struct copying_pack_step {
    using batch = xsimd::batch<T, Arch>;
    static constexpr std::size_t width = batch::size;
    static constexpr std::size_t every = 8;
    static constexpr std::size_t lead = 8;  // calls between a step's prefetch and its copy
    static constexpr bool packs = true;     // leaves the strip packed
    static_assert(NR % width == 0, "copying_pack_step: NR must be a multiple of the batch");

    const T* source;
    std::size_t ld;
    T* dest;
    strip_share share;
    std::size_t depth;

    static std::size_t units(std::size_t depth) noexcept { return depth; }
    static copying_pack_step for_tile(const T* source, std::size_t ld, T* dest, std::size_t depth,
                                      strip_share share) noexcept {
        return {source, ld, dest, share, depth};
    }

    static void prefetch_start(const T* source, std::size_t ld, std::size_t depth,
                               const strip_share& first_tile) noexcept {
        for (std::size_t p = 0; p < std::min(depth, lead * first_tile.per_call); ++p)
            prefetch_lines<NR * sizeof(T)>(source + p * ld);
    }

    // Always inlined, for the reason transposing_pack_step's is.
    SHARDNET_ALWAYS_INLINE void operator()(std::size_t p) const noexcept {
        const std::size_t from = share.from(p, every), to = share.to(p, every);
        if (from >= to) return;
        const std::size_t ahead = lead * share.per_call;
        for (std::size_t q = from + ahead; q < std::min(to + ahead, depth); ++q)
            prefetch_lines<NR * sizeof(T)>(source + q * ld);
        for (std::size_t q = from; q < to; ++q)
            static_for<NR / width>([&](auto v) SHARDNET_LAMBDA_ALWAYS_INLINE {
                batch::load_unaligned(source + q * ld + v * width)
                    .store_aligned(dest + q * NR + v * width);
            });
    }
};

/// The cache lines of `rows` rows of `row_bytes` bytes each, `ld_bytes` apart (a strip of op(B)
/// in its storage), to be fetched a share at a time: unit u is line u / rows of row u % rows, so
/// every row's first line comes first, then every row's second.
struct strip_lines {
    const char* base = nullptr;
    std::size_t ld_bytes = 0, rows = 0, row_bytes = 0;

    std::size_t units() const noexcept { return rows * ((row_bytes + 63) / 64); }
    /// Prefetches units [from, to); the last line of a row is fetched from inside the row.
    SHARDNET_ALWAYS_INLINE void fetch(std::size_t from, std::size_t to) const noexcept {
        for (std::size_t u = from; u < to; ++u)
            prefetch(base + u % rows * ld_bytes + std::min(u / rows * 64, row_bytes - 1));
    }
};

/// Side job: fetches into cache the lines of the next strip of op(B) (strip_lines), this
/// micro-tile's share of them, for the pack after the current strip to read from cache.
/// Why: a packing loop that transposes or interleaves needs more vector registers than a wide
/// tile leaves (transposing_pack_step), but a prefetch needs none, and the pack then reads from
/// cache instead of memory. Measured on Zen 5 (float FMA peak 260-285 GFLOP/s, 2026-12-03) for
/// float op(B) = Bᵀ, against the narrow tile's first rows packing each next strip as their side
/// job beside the wide tile (the strategy this replaced): dY·Wᵀ +1.5-4% at M = 256, K = N = 2048,
/// 4096, +6-10% at M = 192, +5% at 384 (7-9 alternating rounds, medians); pack_b 3.5-3.8% of the
/// GEMM where the narrow tile's rows had taken 15% of the time for 6% of the products.
/// Not better, measured on Zen 5 (float FMA peak 226-245 GFLOP/s, 2026-12-03): prefetching into L2
/// only (prefetcht1) instead of L1, within noise (15 alternating rounds, 0.99-1.01x); transposing
/// inside the wide tile with a gather (vgatherdps, one register) per 16 values: an isolated 6 x 4
/// loop with one gather every 16 steps ran at 72-77 against 225-231 GFLOP/s (a gather of 16
/// floats takes about 20 cycles here, and stalls the FMAs beside it); or value by value, each
/// broadcast from its row and shifted into a register (valignd): at one value a step the
/// micro-tiles ran 1-5% slower in most rounds (ldb = 2048, 4096; up to 14%), at two 9-47%, and a
/// strip of M = 256 needs 1.5 a step; bursts of 16 values every 16 steps, 1-27% slower.
/// Also not better (Zen 5, float FMA peak 225-252 GFLOP/s, 2026-12-03, dY·Wᵀ M = 192 .. 1024,
/// K = N = 2048, 4096, 5-9 alternating rounds): every micro-tile transposing its share of the next
/// strip in 4 x 4 blocks (transpose_block_copy, depth outer, lines fetched 32-1024 blocks ahead):
/// 0.73-0.84x with a loop over the blocks of a call, where g++ 12 kept an accumulator on the
/// stack (so also with plain moves instead of shuffles), 0.92-0.99x with one block every 4 steps
/// and no spill (0.86-0.99x with the blocks spread over the whole tile); each
/// micro-tile fetching its share during its steps and transposing it right after, 0.98-0.99x (its
/// fetch in its last 96-256 steps, 0.94-0.96x).
struct fetching_side_job {
    static constexpr std::size_t every = 8;
    strip_lines lines;
    strip_share share;

    SHARDNET_ALWAYS_INLINE void operator()(std::size_t p) const noexcept {
        lines.fetch(share.from(p, every), share.to(p, every));
    }
};

/// fetching_side_job for a full strip of float or double op(B) = Bᵀ (element (p, j) at
/// source[j·ld + p]: NR rows of B, `depth` long), in multiply_block_preparing_strips's terms.
template <class T, class Arch, std::size_t NR>
struct fetching_pack_step : fetching_side_job {
    static constexpr bool packs = false;  // pack_b still packs the strip

    static std::size_t units(std::size_t depth) noexcept {
        return lines_of(nullptr, 1, depth).units();
    }
    static strip_lines lines_of(const T* source, std::size_t ld, std::size_t depth) noexcept {
        return {reinterpret_cast<const char*>(source), ld * sizeof(T), NR, depth * sizeof(T)};
    }
    static fetching_pack_step for_tile(const T* source, std::size_t ld, T*, std::size_t depth,
                                       strip_share share) noexcept {
        return {{lines_of(source, ld, depth), share}};
    }
    static void prefetch_start(const T*, std::size_t, std::size_t, const strip_share&) noexcept {}
};

/// Grow-only, 64-byte aligned scratch for packed panels, one per thread, element type and
/// Slot (A and B panels must not share). The first call of a thread, and a call with a larger
/// problem than any before, allocates; every later call reuses, so a training loop whose
/// shapes do not change never allocates here (docs/design.md, rule 4). thread_local keeps
/// concurrent gemm calls from different threads independent without locking. The memory
/// (at most MC·KC + KC·NC elements, and up to two pages more for placing the panels,
/// at_page_offset) is released when the thread exits.
template <class T, int Slot>
T* packing_buffer(std::size_t count) {
    thread_local std::vector<T, xsimd::aligned_allocator<T, 64>> buffer;
    if (buffer.size() < count) {
        buffer.clear();  // nothing worth copying: resize would move stale panels
        buffer.shrink_to_fit();
        buffer.resize(count);
    }
    return buffer.data();
}

/// Bytes of a page as 4K aliasing sees it: loads and stores are compared on their low 12
/// address bits, their offset in such a page (at_page_offset).
inline constexpr std::size_t page_bytes = 4096;

/// The first address at or after `p` that lies `offset` bytes into a 4 KiB page (p must be
/// aligned to sizeof(T), offset a multiple of it): at most page_bytes - sizeof(T) further on,
/// so a buffer meant to be placed so needs that much more room.
/// Why: a load whose address has the same low 12 bits as a store still in flight waits for
/// that store (4K aliasing: documented for Intel cores, seen on Zen 5 in gemm.hpp's pipelined
/// Bᵀ strips). Large buffers from malloc all start at the same offset in their pages (or at
/// any offset, once its mmap threshold has moved), so the packed panels that one loop reads
/// while another writes must be placed apart on purpose.
template <class T>
T* at_page_offset(T* p, std::size_t offset) noexcept {
    const std::size_t now = reinterpret_cast<std::uintptr_t>(p) % page_bytes;
    return p + (offset + page_bytes - now) % page_bytes / sizeof(T);
}

}  // namespace shardnet::detail
