// The local GEMM against a naive double-precision loop: every transposition, sizes from 0
// through primes to past every blocking factor, alpha/beta, padded leading dimensions,
// float and double, the default architecture, x86-64-v3 (AVX2+FMA) and generic x86-64 (SSE2).
//
// Tolerance. With u = eps/2 the unit roundoff of T, a length-k dot product computed in any
// order (with or without FMA) is off by at most gamma_k · Σ|a_p·b_p|, gamma_k = k·u/(1-k·u)
// (Higham, Accuracy and Stability, §3.1). The GEMM adds, per entry, one rounding for alpha·acc
// and one for the merge with beta·C per KC block (≤ k blocks, usually k/KC), and the inputs
// are exact in double, so the double reference is exact to far below that. Per entry we allow
//     |ours - ref| <= 2·(k + 4)·eps · (|alpha|·Σ_p |a_ip|·|b_pj| + |beta|·|c_ij|),
// i.e. gamma_{2k+8} with a 2x margin: loose enough for any summation order (architectures and
// blockings differ), tight enough that one dropped or duplicated product (~ bound / k) fails
// for every k tested here.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "shardnet/kernels/cblas_gemm.hpp"
#include "shardnet/kernels/gemm.hpp"
#include "shardnet/kernels/gemm_policy.hpp"

namespace {

using shardnet::transpose;

/// One GEMM problem with its padded, NaN-guarded storage.
template <class T>
struct gemm_case {
    transpose trans_a, trans_b;
    std::size_t m, n, k;
    T alpha, beta;
    std::size_t pad;  // extra elements per row of A, B and C beyond the minimal leading dimension
};

template <class T>
std::string describe(const gemm_case<T>& cs) {
    return "trans_a=" + std::to_string(cs.trans_a == transpose::yes) +
           " trans_b=" + std::to_string(cs.trans_b == transpose::yes) +
           " m=" + std::to_string(cs.m) + " n=" + std::to_string(cs.n) +
           " k=" + std::to_string(cs.k) + " alpha=" + std::to_string(cs.alpha) +
           " beta=" + std::to_string(cs.beta) + " pad=" + std::to_string(cs.pad);
}

/// Runs `multiply(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)` on random
/// data and checks it entry by entry against a double-precision loop. Padding of A and B is
/// NaN (reading it poisons the result); padding of C is a sentinel that must survive; with
/// beta == 0, C starts as NaN, which must not propagate.
template <class T, class Multiply>
void check_gemm(const gemm_case<T>& cs, Multiply&& multiply, std::mt19937& rng) {
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const bool ta = cs.trans_a == transpose::yes;
    const bool tb = cs.trans_b == transpose::yes;
    const std::size_t a_rows = ta ? cs.k : cs.m, a_cols = ta ? cs.m : cs.k;
    const std::size_t b_rows = tb ? cs.n : cs.k, b_cols = tb ? cs.k : cs.n;
    const std::size_t lda = a_cols + cs.pad, ldb = b_cols + cs.pad, ldc = cs.n + cs.pad;

    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    auto fill = [&](std::vector<T>& x, std::size_t rows, std::size_t cols, std::size_t ld) {
        x.assign(rows * ld + 1, nan);  // +1: never a zero-sized buffer
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < cols; ++j)
                x[i * ld + j] = static_cast<T>(uniform(rng));
    };
    std::vector<T> a, b, c;
    fill(a, a_rows, a_cols, lda);
    fill(b, b_rows, b_cols, ldb);
    fill(c, cs.m, cs.n, ldc);
    const T sentinel = T(12345);
    for (std::size_t i = 0; i < cs.m; ++i)
        for (std::size_t j = cs.n; j < ldc; ++j)
            c[i * ldc + j] = sentinel;
    if (cs.beta == T(0))
        for (std::size_t i = 0; i < cs.m; ++i)
            for (std::size_t j = 0; j < cs.n; ++j)
                c[i * ldc + j] = nan;
    const std::vector<T> c0 = c;

    multiply(cs.trans_a, cs.trans_b, cs.m, cs.n, cs.k, cs.alpha, a.data(), lda, b.data(), ldb,
             cs.beta, c.data(), ldc);

    const double eps = static_cast<double>(std::numeric_limits<T>::epsilon());
    const double alpha = static_cast<double>(cs.alpha), beta = static_cast<double>(cs.beta);
    std::size_t failures = 0;
    for (std::size_t i = 0; i < cs.m; ++i) {
        for (std::size_t j = 0; j < cs.n; ++j) {
            double sum = 0.0, magnitude = 0.0;
            for (std::size_t p = 0; p < cs.k; ++p) {
                const double x = static_cast<double>(ta ? a[p * lda + i] : a[i * lda + p]);
                const double y = static_cast<double>(tb ? b[j * ldb + p] : b[p * ldb + j]);
                sum += x * y;
                magnitude += std::abs(x * y);
            }
            double expected = alpha * sum;
            double bound = std::abs(alpha) * magnitude;
            if (beta != 0.0) {
                const double old = static_cast<double>(c0[i * ldc + j]);
                expected += beta * old;
                bound += std::abs(beta * old);
            }
            const double got = static_cast<double>(c[i * ldc + j]);
            const double tolerance = 2.0 * static_cast<double>(cs.k + 4) * eps * bound;
            if (!(std::abs(got - expected) <= tolerance) && failures++ < 3) {
                INFO(describe(cs), " at (", i, ", ", j, ")");
                CHECK(got == doctest::Approx(expected).epsilon(0));
            }
        }
        for (std::size_t j = cs.n; j < ldc; ++j)
            if (c[i * ldc + j] != sentinel && failures++ < 3) {
                INFO(describe(cs), " wrote C's padding at (", i, ", ", j, ")");
                CHECK(c[i * ldc + j] == sentinel);
            }
    }
    CHECK_MESSAGE(failures == 0, describe(cs), ": ", failures, " wrong entries");
}

constexpr transpose both[] = {transpose::no, transpose::yes};

/// The public entry point for one T and Arch.
template <class T, class Arch>
struct public_gemm {
    void operator()(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k,
                    T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
                    std::size_t ldc) const {
        shardnet::gemm<T, Arch>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
};

/// A GEMM policy's entry point (kernels/gemm_policy.hpp).
template <class T, class Policy>
struct policy_gemm {
    void operator()(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k,
                    T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
                    std::size_t ldc) const {
        Policy::template gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
};

/// The blocked algorithm with a given blocking, as gemm() runs it when that blocking's tile is
/// chosen (kernels/gemm_tile.hpp): lets a test run every tile whatever the CPU chose.
template <class T, class Blocking>
struct blocked_gemm {
    void operator()(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k,
                    T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
                    std::size_t ldc) const {
        using operand = shardnet::detail::strided_operand<T>;
        const operand op_a = ta == transpose::no ? operand{a, lda, 1} : operand{a, 1, lda};
        const operand op_b = tb == transpose::no ? operand{b, ldb, 1} : operand{b, 1, ldb};
        if (m == 0 || n == 0 || k == 0)
            return shardnet::gemm<T, typename Blocking::arch_type>(ta, tb, m, n, k, alpha, a, lda,
                                                                   b, ldb, beta, c, ldc);
        shardnet::detail::gemm_blocked<Blocking>(m, n, k, alpha, op_a, op_b, beta, c, ldc);
    }
};

/// The blocked algorithm with a deliberately tiny blocking, so that small matrices cross many
/// MC, KC and NC blocks and every kind of ragged edge, cheaply. m <= 6 reads op(B) = B in
/// place, 3 deep per block, and packs op(B) = Bᵀ a strip ahead inside the micro-kernel.
template <class T, class Arch>
using tiny_blocked_gemm =
    blocked_gemm<T, shardnet::detail::gemm_blocking<T, Arch, 3, 2, 6, 5,
                                                    2 * 2 * xsimd::batch<T, Arch>::size, 3>>;

/// Every transposition × a grid of small sizes (0, 1, primes, one past a vector width).
template <class T, class Multiply>
void check_size_grid(Multiply multiply, const std::vector<std::size_t>& sizes, T alpha, T beta,
                     std::size_t pad) {
    std::mt19937 rng(2024);
    for (transpose ta : both)
        for (transpose tb : both)
            for (std::size_t m : sizes)
                for (std::size_t n : sizes)
                    for (std::size_t k : sizes)
                        check_gemm<T>({ta, tb, m, n, k, alpha, beta, pad}, multiply, rng);
}

/// Sizes just past the factors of `blocking`, one large dimension at a time so the reference
/// loop stays cheap: several MC blocks with a ragged last one, several KC blocks (beta applied
/// once, then accumulation), several NC blocks; run by `multiply`.
template <class T, class Blocking, class Multiply>
void check_past_blocking(Multiply multiply) {
    using blocking = Blocking;
    const std::size_t mr = blocking::mr, nr = blocking::nr;
    const std::size_t mc = blocking::mc, kc = blocking::kc, nc = blocking::nc;
    const std::size_t kci = blocking::kc_in_place;
    // Columns past which the in-place path prefetches (4 lines ahead of a strip), plus margin.
    const std::size_t prefetching_n = nr + 4 * 64 / sizeof(T) + 2 * nr + 3;
    struct shape {
        std::size_t m, n, k;
    };
    const shape shapes[] = {
        {2 * mc + mr + 1, 19, 2},      // three MC blocks, ragged micro-panel at the bottom
        {37, 2 * nr + 3, 2 * kc + 7},  // three KC blocks
        {5, nc + nr + 5, 3},           // two NC blocks, ragged strip at the right
        {70, 97, kc + 1},              // a one-deep last KC block
        {mc + 1, 3 * nr + 1, 5},       // several MC blocks reuse packed op(B) strips
        // m <= MC: op(B) = B read in place, op(B) = Bᵀ packed a strip ahead. Across the
        // threshold, several KCI blocks, full strips with and without prefetch and a ragged
        // packed one, depths that are not a multiple of the transpose block, one row.
        {mc, prefetching_n, kci + 1},
        {blocking::in_place_rows + 1, 2 * nr + 1, kci + 1},
        {mc + 1, 2 * nr + 1, kci + 1},
        {1, prefetching_n, 2 * kci + 3},
        {mr + 1, nr, kci - 1},
        {2 * mr + 3, 5 * nr, 3 * kci},
    };
    std::mt19937 rng(7);
    for (transpose ta : both)
        for (transpose tb : both)
            for (const shape& s : shapes)
                check_gemm<T>({ta, tb, s.m, s.n, s.k, T(0.75), T(-1.5), 3}, multiply, rng);
}

template <class T, class Arch>
void check_everything() {
    const std::vector<std::size_t> sizes = {0, 1, 7, 13, 31, 97};
    // beta == 0 with NaN-filled C; beta == 1 (accumulate); both non-trivial; padded rows.
    check_size_grid<T>(public_gemm<T, Arch>{}, sizes, T(1), T(0), 0);
    check_size_grid<T>(public_gemm<T, Arch>{}, {1, 13, 31}, T(-0.5), T(1), 5);
    check_size_grid<T>(public_gemm<T, Arch>{}, {2, 17, 33}, T(1.25), T(-0.75), 1);
    // alpha == 0: C = beta·C.
    check_size_grid<T>(public_gemm<T, Arch>{}, {0, 7}, T(0), T(0.5), 2);
    check_size_grid<T>(public_gemm<T, Arch>{}, {0, 7}, T(0), T(0), 2);
    check_size_grid<T>(tiny_blocked_gemm<T, Arch>{}, {1, 4, 11, 23, 40}, T(0.5), T(2), 2);
    check_size_grid<T>(tiny_blocked_gemm<T, Arch>{}, {3, 12, 29}, T(1), T(0), 0);
    // Around the in-place threshold of the tiny blocking (m <= MC = 6), n with several full
    // NR = 2 batch strips and a ragged one, k over several KCI = 3 blocks.
    const std::size_t tiny_nr = 2 * xsimd::batch<T, Arch>::size;
    check_size_grid<T>(tiny_blocked_gemm<T, Arch>{}, {5, 6, 7, 3 * tiny_nr + 1}, T(-1), T(0.5), 1);
    check_past_blocking<T, typename shardnet::detail::default_gemm_blocking<T, Arch>::type>(
        public_gemm<T, Arch>{});
    // A tiny tile too wide to transpose op(B) = Bᵀ inside its micro-kernel (transposes_in_kernel
    // false: 6 x 4 batches with 32 registers, 4 x 2 with 16), so that every strip of op(B),
    // copied (B) or fetched and packed (Bᵀ) a strip ahead, is shared out among 1 to 7 micro-tiles
    // (MC = 42), with ragged strips, depths across KC = 5 and KCI = 3 blocks, several MC blocks;
    // op(B) = B read in place up to in_place_always_rows, copied KCI deep above it up to IPR = 40
    // (IPB = 64 bytes), KC deep past IPR.
    constexpr std::size_t width = xsimd::batch<T, Arch>::size;
    constexpr bool many_registers = shardnet::detail::vector_register_count<Arch> >= 32;
    using tiny_wide =
        shardnet::detail::gemm_blocking<T, Arch, many_registers ? 6 : 4, many_registers ? 4 : 2,
                                        many_registers ? 42 : 40, 5,
                                        (many_registers ? 8 : 4) * width, 3, 40, 64>;
    static_assert(!tiny_wide::transposes_in_kernel);
    check_size_grid<T>(blocked_gemm<T, tiny_wide>{},
                       {1, 7, 9, shardnet::detail::in_place_always_rows + 1, 2 * width + 1,
                        2 * tiny_wide::nr + 3, 43, 90},
                       T(0.5), T(-1.5), 1);
    // Whether op(B) = B is read in place or copied at m <= IPR changes only how it is packed, not
    // the depth blocking (KCI deep either way): the same bits as the same tile reading in place.
    using tiny_in_place =
        shardnet::detail::gemm_blocking<T, Arch, tiny_wide::mr, tiny_wide::nv, tiny_wide::mc,
                                        tiny_wide::kc, tiny_wide::nc, 3, 40>;
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (const std::size_t m : {shardnet::detail::in_place_always_rows + 1, std::size_t(40)})
        for (const std::size_t n : {tiny_wide::nr, 3 * tiny_wide::nr + 5}) {
            const std::size_t k = 11;  // several KCI blocks, not several KC ones: 3 vs 5 deep
            std::vector<T> a(m * k), b(k * n), copied(m * n), in_place(m * n);
            for (T& x : a)
                x = static_cast<T>(uniform(rng));
            for (T& x : b)
                x = static_cast<T>(uniform(rng));
            blocked_gemm<T, tiny_wide>{}(transpose::no, transpose::no, m, n, k, T(0.3), a.data(), k,
                                         b.data(), n, T(0), copied.data(), n);
            blocked_gemm<T, tiny_in_place>{}(transpose::no, transpose::no, m, n, k, T(0.3),
                                             a.data(), k, b.data(), n, T(0), in_place.data(), n);
            CAPTURE(m);
            CAPTURE(n);
            CHECK(std::memcmp(copied.data(), in_place.data(), copied.size() * sizeof(T)) == 0);
        }
}

/// One register tile of the default architecture, forced: the reference on the size grid and
/// past its own blocking factors.
template <class T, shardnet::gemm_tile Tile>
void check_tile() {
    using blocking =
        typename shardnet::detail::default_gemm_blocking<T, xsimd::default_arch, Tile>::type;
    const blocked_gemm<T, blocking> multiply;
    check_size_grid<T>(multiply, {1, 7, 13, 31, 97}, T(1), T(0), 0);
    check_size_grid<T>(multiply, {2, 17, 33}, T(1.25), T(-0.75), 1);
    check_past_blocking<T, blocking>(multiply);
}

}  // namespace

TEST_SUITE("serial") {
    TEST_CASE_TEMPLATE("gemm matches a double-precision reference (default arch)", T, float,
                       double) {
        check_everything<T, xsimd::default_arch>();
    }

    TEST_CASE_TEMPLATE("every register tile matches the reference, whatever the CPU chose", T,
                       float, double) {
        MESSAGE("this process chose the ", shardnet::to_string(shardnet::chosen_gemm_tile().tile),
                " tile (", shardnet::chosen_gemm_tile().reason, ", ",
                shardnet::chosen_gemm_tile().cpu, ")");
        check_tile<T, shardnet::gemm_tile::narrow>();
        check_tile<T, shardnet::gemm_tile::wide>();
    }

    TEST_CASE_TEMPLATE("the register tiles give bitwise identical products", T, float, double) {
        // So the tile a process chooses changes its speed, never its numbers: ranks on
        // different cores, or a run and its resumption elsewhere, agree bitwise.
        using narrow =
            typename shardnet::detail::default_gemm_blocking<T, xsimd::default_arch,
                                                             shardnet::gemm_tile::narrow>::type;
        using wide =
            typename shardnet::detail::default_gemm_blocking<T, xsimd::default_arch,
                                                             shardnet::gemm_tile::wide>::type;
        std::mt19937 rng(11);
        std::uniform_real_distribution<double> uniform(-1.0, 1.0);
        struct shape {
            std::size_t m, n, k;
        };
        // alpha and beta that do not round exactly, so that every merge's roundings show.
        // Across the in-place threshold (IPR = 64), the narrow tile's op(B) = Bᵀ rows (96 for
        // double, 128 for float) and the wide tile's MC (264 for double, 528 for float; op(B)
        // packed a strip ahead with one MC block below it, into the KC x NC block above), several
        // MC and KC blocks, ragged strips.
        const shape shapes[] = {{1, 70, 5},     {6, 130, 513},   {64, 70, 600},    {65, 70, 600},
                                {96, 70, 300},  {97, 70, 300},   {100, 97, 1030},  {128, 70, 300},
                                {129, 70, 300}, {256, 70, 600},  {257, 70, 600},   {264, 140, 520},
                                {265, 70, 520}, {300, 130, 513}, {528, 140, 1030}, {530, 33, 1100},
                                {64, 1100, 70}};
        for (const shape& sh : shapes)
            for (transpose ta : both)
                for (transpose tb : both) {
                    CAPTURE(sh.m);
                    CAPTURE(sh.n);
                    CAPTURE(sh.k);
                    const std::size_t a_size = sh.m * sh.k, b_size = sh.k * sh.n;
                    std::vector<T> a(a_size), b(b_size), c0(sh.m * sh.n);
                    for (T& x : a)
                        x = static_cast<T>(uniform(rng));
                    for (T& x : b)
                        x = static_cast<T>(uniform(rng));
                    for (T& x : c0)
                        x = static_cast<T>(uniform(rng));
                    const std::size_t lda = ta == transpose::no ? sh.k : sh.m;
                    const std::size_t ldb = tb == transpose::no ? sh.n : sh.k;
                    std::vector<T> by_narrow = c0, by_wide = c0, by_gemm = c0;
                    blocked_gemm<T, narrow>{}(ta, tb, sh.m, sh.n, sh.k, T(0.3), a.data(), lda,
                                              b.data(), ldb, T(0.7), by_narrow.data(), sh.n);
                    blocked_gemm<T, wide>{}(ta, tb, sh.m, sh.n, sh.k, T(0.3), a.data(), lda,
                                            b.data(), ldb, T(0.7), by_wide.data(), sh.n);
                    shardnet::gemm<T>(ta, tb, sh.m, sh.n, sh.k, T(0.3), a.data(), lda, b.data(),
                                      ldb, T(0.7), by_gemm.data(), sh.n);
                    CHECK(std::memcmp(by_narrow.data(), by_wide.data(),
                                      by_wide.size() * sizeof(T)) == 0);
                    CHECK(std::memcmp(by_narrow.data(), by_gemm.data(),
                                      by_gemm.size() * sizeof(T)) == 0);
                }
    }

    TEST_CASE("the tile choice: forced, by cpuid, or by the FMA width calibration") {
        const shardnet::gemm_tile_choice& chosen = shardnet::chosen_gemm_tile();
        CHECK((chosen.reason == "SHARDNET_GEMM_TILE" || chosen.reason == "cpuid" ||
               chosen.reason == "calibration"));
        CHECK(&chosen == &shardnet::chosen_gemm_tile());  // made once
        // Both AMD cores measured (Zen 4 and Zen 5) run bf16 fastest on 6 x 4 (gemm_tile.hpp).
        // Zen 4 (narrow) does not fetch packed strips ahead, Zen 5 (wide) does (gemm.hpp).
        if (chosen.reason == "cpuid") {
            CHECK(chosen.bf16_tile == shardnet::gemm_tile::wide);
            CHECK(chosen.fetch_packed_strips == (chosen.tile == shardnet::gemm_tile::wide));
            // Zen 4 (one 512-bit FMA per cycle) runs bf16's smallest shapes on 16 x 1.
            CHECK(chosen.bf16_narrow_when_small == (chosen.tile == shardnet::gemm_tile::narrow));
        }
        const double ratio = shardnet::detail::fma_width_ratio();
#if defined(__AVX512F__)
        // 512-bit FMAs retire at most twice the lanes of 256-bit ones, and never fewer than
        // half (even a loaded core runs both sides of the alternation alike, best of 8).
        CHECK(ratio > 0.5);
        CHECK(ratio < 2.6);
#else
        CHECK(ratio == 0.0);
#endif
    }

    TEST_CASE("gemm_bf16's tile by shape: 16 x 1 for few rows or a shallow depth, where chosen") {
        using shardnet::gemm_tile;
        shardnet::gemm_tile_choice c;
        c.bf16_tile = gemm_tile::wide;
        c.bf16_narrow_when_small = true;
        // Rows: up to 16 always; up to 32 where 16 x 1 pads no more rows than 6 x 4.
        for (const std::size_t m : {1, 8, 16, 31, 32})
            CHECK(c.bf16_tile_for(m, 4096) == gemm_tile::narrow);
        for (const std::size_t m : {17, 24, 28, 30, 33, 48, 64, 256})
            CHECK(c.bf16_tile_for(m, 4096) == gemm_tile::wide);
        // Depth: up to 32, whatever m.
        CHECK(c.bf16_tile_for(2048, 32) == gemm_tile::narrow);
        CHECK(c.bf16_tile_for(2048, 33) == gemm_tile::wide);
        // Without the rule, or with 16 x 1 chosen anyway, the chosen tile for every shape.
        c.bf16_narrow_when_small = false;
        CHECK(c.bf16_tile_for(8, 8) == gemm_tile::wide);
        c.bf16_tile = gemm_tile::narrow;
        CHECK(c.bf16_tile_for(256, 4096) == gemm_tile::narrow);
    }

    TEST_CASE("SHARDNET_GEMM_TILE: a forced tile, and a clear error for anything else") {
        const char* before = std::getenv("SHARDNET_GEMM_TILE");
        const std::string saved = before ? before : "";
        unsetenv("SHARDNET_GEMM_TILE");
        const bool core_fetches = shardnet::detail::choose_gemm_tile().fetch_packed_strips;
        setenv("SHARDNET_GEMM_TILE", "6x4", 1);
        CHECK(shardnet::detail::choose_gemm_tile().tile == shardnet::gemm_tile::wide);
        // The core's, not the tile's: forcing a tile leaves it.
        CHECK(shardnet::detail::choose_gemm_tile().fetch_packed_strips == core_fetches);
        CHECK(shardnet::detail::choose_gemm_tile().bf16_tile == shardnet::gemm_tile::wide);
        CHECK(shardnet::detail::choose_gemm_tile().bf16_tile_for(8, 8) ==
              shardnet::gemm_tile::wide);  // forced: every shape
        CHECK(shardnet::detail::choose_gemm_tile().reason == "SHARDNET_GEMM_TILE");
        setenv("SHARDNET_GEMM_TILE", "16x1", 1);  // forces bf16's tile too
        CHECK(shardnet::detail::choose_gemm_tile().tile == shardnet::gemm_tile::narrow);
        CHECK(shardnet::detail::choose_gemm_tile().bf16_tile == shardnet::gemm_tile::narrow);
        CHECK(shardnet::detail::choose_gemm_tile().fetch_packed_strips == core_fetches);
        setenv("SHARDNET_GEMM_TILE", "", 1);  // empty: as unset
        CHECK(shardnet::detail::choose_gemm_tile().reason != "SHARDNET_GEMM_TILE");
        setenv("SHARDNET_GEMM_TILE", "8x3", 1);
        CHECK_THROWS_WITH_AS(shardnet::detail::choose_gemm_tile(),
                             "SHARDNET_GEMM_TILE: expected 16x1 or 6x4 (or unset: chosen for the "
                             "CPU), got '8x3'",
                             shardnet::error);
        if (before)
            setenv("SHARDNET_GEMM_TILE", saved.c_str(), 1);
        else
            unsetenv("SHARDNET_GEMM_TILE");
    }

    TEST_CASE_TEMPLATE("gemm matches a double-precision reference (sse2)", T, float, double) {
        check_everything<T, xsimd::sse2>();
    }

    // x86-64-v3, the likely deployment target: 16 registers like SSE2, but FMA and 256 bits.
    TEST_CASE_TEMPLATE("gemm matches a double-precision reference (avx2)", T, float, double) {
        check_everything<T, xsimd::fma3<xsimd::avx2>>();
    }

    // The optional BLAS-backed policy keeps the same contract as ours (including k == 0, beta
    // == 0 over NaN, padded leading dimensions), so that swapping it in changes nothing else.
    TEST_CASE_TEMPLATE("the cblas_gemm policy matches a double-precision reference", T, float,
                       double) {
        static_assert(shardnet::gemm_policy<shardnet::cblas_gemm>);
        const std::vector<std::size_t> sizes = {0, 1, 7, 13, 31, 97};
        check_size_grid<T>(policy_gemm<T, shardnet::cblas_gemm>{}, sizes, T(1), T(0), 0);
        check_size_grid<T>(policy_gemm<T, shardnet::cblas_gemm>{}, {1, 13, 31}, T(-0.5), T(1), 5);
        check_size_grid<T>(policy_gemm<T, shardnet::cblas_gemm>{}, {0, 7}, T(0), T(0.5), 2);
    }

    TEST_CASE("cblas_gemm refuses dimensions beyond the BLAS integer range") {
        const std::size_t too_big = std::size_t{1} << 31;
        float c = 0;
        CHECK_THROWS_WITH_AS(
            shardnet::cblas_gemm::gemm<float>(transpose::no, transpose::no, too_big, 1, 1, 1.0f, &c,
                                              1, &c, 1, 0.0f, &c, 1),
            doctest::Contains("m = 2147483648 exceeds the BLAS integer range"), shardnet::error);
    }

    TEST_CASE("gemm with k == 0 scales C by beta and never reads C when beta == 0") {
        std::vector<float> c = {std::numeric_limits<float>::quiet_NaN(), 2.0f, 3.0f, 4.0f};
        shardnet::gemm<float>(transpose::no, transpose::no, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2,
                              0.0f, c.data(), 2);
        CHECK(c == std::vector<float>{0.0f, 0.0f, 0.0f, 0.0f});
        c = {1.0f, 2.0f, 3.0f, 4.0f};
        shardnet::gemm<float>(transpose::yes, transpose::yes, 2, 2, 0, 1.0f, nullptr, 2, nullptr, 1,
                              2.0f, c.data(), 2);
        CHECK(c == std::vector<float>{2.0f, 4.0f, 6.0f, 8.0f});
    }

    TEST_CASE_TEMPLATE("at_page_offset places a panel at its page offset, less than a page on", T,
                       float, double) {
        // The packed panels' placement (4K aliasing, kernels/gemm_pack.hpp): gemm_blocked
        // allocates one page more per placed panel, which holds only if the move is < a page.
        using shardnet::detail::at_page_offset;
        using shardnet::detail::page_bytes;
        std::vector<T> buffer(3 * page_bytes / sizeof(T));
        for (std::size_t start = 0; start < page_bytes / sizeof(T); start += 7)
            for (std::size_t offset : {std::size_t(0), page_bytes / 4, page_bytes / 2,
                                       3 * page_bytes / 4, page_bytes - sizeof(T)}) {
                T* p = buffer.data() + start;
                T* placed = at_page_offset(p, offset);
                CAPTURE(start);
                CAPTURE(offset);
                CHECK(reinterpret_cast<std::uintptr_t>(placed) % page_bytes == offset);
                CHECK(placed >= p);
                CHECK(placed < p + page_bytes / sizeof(T));
            }
    }

    TEST_CASE("gemm computes a small product exactly") {
        // [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [58 64; 139 154]: exact in float.
        const std::vector<float> a = {1, 2, 3, 4, 5, 6};
        const std::vector<float> b = {7, 8, 9, 10, 11, 12};
        std::vector<float> c(4, std::numeric_limits<float>::quiet_NaN());
        shardnet::gemm<float>(transpose::no, transpose::no, 2, 2, 3, 1.0f, a.data(), 3, b.data(), 2,
                              0.0f, c.data(), 2);
        CHECK(c == std::vector<float>{58, 64, 139, 154});
        // The same product from the transposed storage of both operands.
        const std::vector<float> at = {1, 4, 2, 5, 3, 6};
        const std::vector<float> bt = {7, 9, 11, 8, 10, 12};
        shardnet::gemm<float>(transpose::yes, transpose::yes, 2, 2, 3, 1.0f, at.data(), 2,
                              bt.data(), 3, 0.0f, c.data(), 2);
        CHECK(c == std::vector<float>{58, 64, 139, 154});
    }
}
