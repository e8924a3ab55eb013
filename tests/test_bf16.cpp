// bfloat16 conversions against their definition (round to nearest, ties to even) and the bulk
// conversions against the scalar ones bit for bit; gemm_bf16's two micro-kernels (vdpbf16ps and
// the portable widening one) against a double-precision reference of the bf16-rounded inputs.
//
// Tolerance of the GEMM. A product of two bfloat16 (8-bit significands) fits a float's 24 bits,
// so it is exact; only the fp32 sums round. Accumulating k exact products one after another
// (or in pairs, as vdpbf16ps does: two additions per pair, each rounded to nearest) commits k
// roundings, each at most u = 2^-24 times the running sum, itself at most Σ|a·b|: the error is
// at most k·u·Σ_p |a_ip·b_pj| to first order (Higham, §3.1). The merge into C adds, per KC block,
// the rounding of alpha·acc and of the sum with the C tile (plus one for beta·C in the first), so
// with B = ⌈k / KC⌉ blocks and the inputs exact in the double reference,
//     |C - ref| <= 1.01 · (k + 2·B + 1) · 2^-24 · (|alpha|·Σ_p |a_ip|·|b_pj| + |beta|·|c_ij|).
// 1.01 covers the second-order terms (γ_n = n·u / (1 - n·u) and n·u < 2^-12 here); nothing else
// is loose: this is the worst case of any summation order, which is why it holds for both kernels.
// One dropped or doubled product (~Σ/k) exceeds it for every k tested; exact-integer cases check
// the indexing with no tolerance at all.
#include <doctest/doctest.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/element_type.hpp"
#include "shardnet/kernels/gemm_bf16.hpp"

namespace {

using shardnet::bfloat16;
using shardnet::transpose;

std::uint32_t bits_of(float x) {
    return std::bit_cast<std::uint32_t>(x);
}
float float_of(std::uint32_t bits) {
    return std::bit_cast<float>(bits);
}
std::uint16_t rounded_bits(std::uint32_t float_bits) {
    return shardnet::to_bfloat16(float_of(float_bits)).bits;
}

/// Round to nearest, ties to even, from the definition: the two bfloat16 around x (truncation
/// toward zero and the next one away from zero), compared in double, where every float and
/// every midpoint between bfloat16 values is exact. Not for NaN.
std::uint16_t reference_rounding(float x) {
    const std::uint32_t u = bits_of(x);
    const auto toward_zero = static_cast<std::uint16_t>(u >> 16);
    if ((u & 0xffffu) == 0) return toward_zero;                      // exact
    if ((u & 0x7fffffffu) >= 0x7f800000u) return toward_zero;        // infinity
    const auto away = static_cast<std::uint16_t>(toward_zero + 1u);  // may become infinity
    const double below = std::abs(double(shardnet::to_float(bfloat16{toward_zero})));
    // The bfloat16 after the largest finite one is infinity; IEEE rounding treats it as 2^128.
    const double above = (away & 0x7fffu) == 0x7f80u
                             ? std::ldexp(1.0, 128)
                             : std::abs(double(shardnet::to_float(bfloat16{away})));
    const double magnitude = std::abs(double(x));
    if (magnitude - below < above - magnitude) return toward_zero;
    if (magnitude - below > above - magnitude) return away;
    return (toward_zero & 1u) == 0 ? toward_zero : away;
}

/// Floats whose conversion is worth testing: uniform bit patterns (all exponents, NaN, infinity),
/// subnormals, exact ties and their neighbours, ordinary values, and signed zeros.
std::vector<float> awkward_floats(std::size_t count, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::uint32_t> any_bits;
    std::uniform_real_distribution<float> ordinary(-4.0f, 4.0f);
    std::vector<float> x(count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t r = any_bits(rng);
        switch (i % 6) {
            case 0:
                x[i] = float_of(r);
                break;
            case 1:
                x[i] = float_of(r & 0x807fffffu);
                break;  // subnormal (or zero)
            case 2:
                x[i] = float_of((r & 0xffff0000u) | 0x8000u);
                break;  // a tie
            case 3:
                x[i] = float_of((r & 0xffff0000u) | (r % 2 ? 0x8001u : 0x7fffu));
                break;
            case 4:
                x[i] = ordinary(rng);
                break;
            default:
                x[i] = r % 2 ? 0.0f : -0.0f;
                break;
        }
    }
    return x;
}

// ---------------------------------------------------------------------------------------------
// GEMM

/// One problem: transpositions, sizes, scalars and the padding of every leading dimension.
struct gemm_case {
    transpose trans_a, trans_b;
    std::size_t m, n, k;
    float alpha, beta;
    std::size_t pad;
};

std::string describe(const gemm_case& cs) {
    return "trans_a=" + std::to_string(cs.trans_a == transpose::yes) +
           " trans_b=" + std::to_string(cs.trans_b == transpose::yes) +
           " m=" + std::to_string(cs.m) + " n=" + std::to_string(cs.n) +
           " k=" + std::to_string(cs.k) + " alpha=" + std::to_string(cs.alpha) +
           " beta=" + std::to_string(cs.beta) + " pad=" + std::to_string(cs.pad);
}

constexpr transpose both[] = {transpose::no, transpose::yes};
constexpr bfloat16 bf16_nan{0x7fc0};

/// Runs Blocking's gemm_bf16 on one case and checks every entry against a double loop over the
/// same bfloat16 values. Integers: entries are small integers, every sum is exact, and the result
/// must be equal. Otherwise uniform in [-1, 1), within the bound at the top of this file. Padding
/// of A and B is NaN (reading it poisons the result), C's padding a sentinel that must survive;
/// with beta == 0, C starts as NaN, which must not propagate. Returns the largest error seen, as
/// a fraction of the tolerance.
template <class Blocking>
double check_gemm_bf16(const gemm_case& cs, bool integers, std::mt19937& rng) {
    const bool ta = cs.trans_a == transpose::yes, tb = cs.trans_b == transpose::yes;
    const std::size_t a_rows = ta ? cs.k : cs.m, a_cols = ta ? cs.m : cs.k;
    const std::size_t b_rows = tb ? cs.n : cs.k, b_cols = tb ? cs.k : cs.n;
    const std::size_t lda = a_cols + cs.pad, ldb = b_cols + cs.pad, ldc = cs.n + cs.pad;
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::uniform_int_distribution<int> small(-4, 4);
    auto value = [&] { return integers ? float(small(rng)) : uniform(rng); };
    auto fill = [&](std::vector<bfloat16>& x, std::size_t rows, std::size_t cols, std::size_t ld) {
        x.assign(rows * ld + 1, bf16_nan);  // +1: never a zero-sized buffer
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < cols; ++j)
                x[i * ld + j] = shardnet::to_bfloat16(value());
    };
    std::vector<bfloat16> a, b;
    fill(a, a_rows, a_cols, lda);
    fill(b, b_rows, b_cols, ldb);
    const float sentinel = 12345.0f;
    std::vector<float> c(cs.m * ldc + 1, sentinel);
    for (std::size_t i = 0; i < cs.m; ++i)
        for (std::size_t j = 0; j < cs.n; ++j)
            c[i * ldc + j] = cs.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : value();
    const std::vector<float> c0 = c;

    shardnet::detail::gemm_bf16_with<Blocking>(cs.trans_a, cs.trans_b, cs.m, cs.n, cs.k, cs.alpha,
                                               a.data(), lda, b.data(), ldb, cs.beta, c.data(),
                                               ldc);

    const double u = std::ldexp(1.0, -24);
    const double blocks = double((cs.k + Blocking::kc - 1) / Blocking::kc);
    const double roundings = double(cs.k) + 2.0 * blocks + 1.0;
    const double alpha = cs.alpha, beta = cs.beta;
    double worst = 0.0;
    std::size_t failures = 0;
    for (std::size_t i = 0; i < cs.m; ++i) {
        for (std::size_t j = 0; j < cs.n; ++j) {
            double sum = 0.0, magnitude = 0.0;
            for (std::size_t p = 0; p < cs.k; ++p) {
                const double x = shardnet::to_float(ta ? a[p * lda + i] : a[i * lda + p]);
                const double y = shardnet::to_float(tb ? b[j * ldb + p] : b[p * ldb + j]);
                sum += x * y;
                magnitude += std::abs(x * y);
            }
            double expected = alpha * sum, bound = std::abs(alpha) * magnitude;
            if (beta != 0.0) {
                expected += beta * double(c0[i * ldc + j]);
                bound += std::abs(beta * double(c0[i * ldc + j]));
            }
            const double got = c[i * ldc + j];
            const double error = std::abs(got - expected);
            const double tolerance = integers ? 0.0 : 1.01 * roundings * u * bound;
            if (tolerance > 0.0) worst = std::max(worst, error / tolerance);
            if (!(error <= tolerance) && failures++ < 3) {
                INFO(describe(cs), integers ? " (integers)" : "", " at (", i, ", ", j, ")");
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
    return worst;
}

/// Every transposition x sizes^3, for the given scalars.
template <class Blocking>
double check_size_grid(const std::vector<std::size_t>& sizes, float alpha, float beta,
                       std::size_t pad, bool integers = false) {
    std::mt19937 rng(2025);
    double worst = 0.0;
    for (transpose ta : both)
        for (transpose tb : both)
            for (std::size_t m : sizes)
                for (std::size_t n : sizes)
                    for (std::size_t k : sizes)
                        worst = std::max(
                            worst, check_gemm_bf16<Blocking>({ta, tb, m, n, k, alpha, beta, pad},
                                                             integers, rng));
    return worst;
}

/// Sizes just past Blocking's MC, KC and NC, one large dimension at a time (the reference loop
/// stays cheap), and past 100 in all three.
template <class Blocking>
double check_past_blocking() {
    struct shape {
        std::size_t m, n, k;
    };
    const std::size_t mr = Blocking::mr, nr = Blocking::nr;
    const shape shapes[] = {
        {2 * Blocking::mc + mr + 1, 19, 3},      // three MC blocks, a ragged last micro-panel
        {37, 2 * nr + 3, 2 * Blocking::kc + 7},  // three KC blocks, the last one odd
        {5, Blocking::nc + nr + 5, 3},           // two NC blocks, a ragged last strip
        {101, 103, 129},
        {Blocking::mc + 1, 3 * nr + 1, Blocking::kc + 1},  // a one-deep last KC block
    };
    std::mt19937 rng(7);
    double worst = 0.0;
    for (transpose ta : both)
        for (transpose tb : both)
            for (const shape& s : shapes)
                worst = std::max(worst, check_gemm_bf16<Blocking>(
                                            {ta, tb, s.m, s.n, s.k, 0.75f, -1.5f, 3}, false, rng));
    return worst;
}

/// The whole GEMM suite for one micro-kernel: its default blocking on small, ragged and large
/// sizes with every alpha/beta case, exact integer cases, and two tiny blockings that reach
/// every block edge with small matrices (one with MR = 3, one with MR = 4 and KC = 10, which
/// packs op(A) through the 4 x 4 word transpose and a scalar tail).
template <class Kernel, shardnet::gemm_tile Tile = shardnet::gemm_tile::narrow>
void check_kernel(const std::string& name) {
    using blocking = typename shardnet::detail::default_gemm_bf16_blocking<Kernel, Tile>::type;
    using tiny = shardnet::detail::gemm_bf16_blocking<Kernel, 3, 2, 6, 4, 2 * 2 * Kernel::width>;
    using tiny4 = shardnet::detail::gemm_bf16_blocking<Kernel, 4, 1, 8, 10, 2 * Kernel::width>;
    const std::vector<std::size_t> sizes = {1, 2, 3, 17, 33};
    double worst = 0.0;
    worst = std::max(worst, check_size_grid<blocking>(sizes, 1.0f, 0.0f, 0));  // NaN in C
    worst = std::max(worst, check_size_grid<blocking>({1, 3, 17}, -0.5f, 1.0f, 5));
    worst = std::max(worst, check_size_grid<blocking>({2, 33}, 1.25f, -0.75f, 1));
    check_size_grid<blocking>({0, 7}, 0.0f, 0.5f, 2);  // alpha == 0 (or k == 0): C = beta·C
    check_size_grid<blocking>({0, 7}, 0.0f, 0.0f, 2);
    check_size_grid<blocking>({1, 2, 3, 17, 33, 100, 130}, 1.0f, 0.0f, 1, true);
    check_size_grid<blocking>({3, 17, 100}, 1.0f, 2.0f, 0, true);
    worst = std::max(worst, check_size_grid<tiny>({1, 4, 11, 23}, 0.5f, 2.0f, 2));
    worst = std::max(worst, check_size_grid<tiny4>({1, 4, 9, 23, 40}, 1.0f, 0.0f, 0));
    check_size_grid<tiny4>({4, 9, 21}, 1.0f, 0.0f, 3, true);
    worst = std::max(worst, check_past_blocking<blocking>());
    // The bound is the worst case; random signs stay below it. Reported, to watch the margin.
    MESSAGE(name, ": largest error ", worst, " of the tolerance");
}

/// pack_pairs<W> of `count` lines, `depth` deep, read through both storage orders of a padded
/// source, against the definition: pair q of line w at panel w / W, word q·W + w % W, lines past
/// `count` and the odd depth's last high half zero.
template <std::size_t W>
void check_pack_pairs(std::mt19937& rng, std::uniform_int_distribution<int>& any_bits) {
    static_assert(W > 1, "count W - 1 must be a ragged panel, not none");
    using shardnet::detail::strided_operand;
    constexpr std::uint32_t guard = 0xdeadbeefu;
    for (std::size_t count : {std::size_t{1}, W - 1, W, 2 * W + 1})
        for (std::size_t depth : {1, 2, 7, 8, 31, 32, 33, 41, 47, 64, 67}) {
            const std::size_t pairs = (depth + 1) / 2;
            const std::size_t panels = (count + W - 1) / W;
            for (bool depth_contiguous : {true, false}) {
                // Lines x depth values, each line's values `ld` apart in one order or the other.
                const std::size_t ld = (depth_contiguous ? depth : count) + 3;
                std::vector<bfloat16> source(ld * (depth_contiguous ? count : depth));
                for (auto& v : source)
                    v = bfloat16{static_cast<std::uint16_t>(any_bits(rng))};
                const strided_operand<bfloat16> x =
                    depth_contiguous ? strided_operand<bfloat16>{source.data(), ld, 1}
                                     : strided_operand<bfloat16>{source.data(), 1, ld};
                std::vector<std::uint32_t> packed(panels * W * pairs + 1, guard);
                shardnet::detail::pack_pairs<W>(count, depth, x, packed.data());
                std::size_t wrong = 0;
                for (std::size_t line = 0; line < panels * W; ++line)
                    for (std::size_t q = 0; q < pairs; ++q) {
                        std::uint32_t expected = 0;
                        if (line < count) {
                            expected = x.at(line, 2 * q)->bits;
                            if (2 * q + 1 < depth)
                                expected |= std::uint32_t{x.at(line, 2 * q + 1)->bits} << 16;
                        }
                        wrong += packed[line / W * W * pairs + q * W + line % W] != expected;
                    }
                INFO("W = ", W, ", count = ", count, ", depth = ", depth,
                     depth_contiguous ? ", depth contiguous" : ", lines contiguous");
                CHECK(wrong == 0);
                CHECK(packed.back() == guard);
            }
        }
}

}  // namespace

TEST_SUITE("serial") {
    TEST_CASE("bfloat16 is a 2-byte storage type accumulating in float, not an element type") {
        static_assert(sizeof(bfloat16) == 2);
        static_assert(std::is_trivially_copyable_v<bfloat16> &&
                      std::is_standard_layout_v<bfloat16>);
        static_assert(shardnet::storage_type<bfloat16> && !shardnet::element_type<bfloat16>);
        static_assert(shardnet::element_type<float> && shardnet::element_type<double>);
        static_assert(shardnet::storage_type<float> && shardnet::storage_type<double>);
        static_assert(std::is_same_v<shardnet::element_traits<bfloat16>::accumulator, float>);
        CHECK(shardnet::element_traits<bfloat16>::name == "bfloat16");
        static_assert(bfloat16{}.bits == 0 && shardnet::to_float(bfloat16{}) == 0.0f);
        static_assert(shardnet::to_bfloat16(1.0f).bits == 0x3f80);  // usable at compile time
    }

    TEST_CASE("every bfloat16 converts to float and back to itself; NaNs stay NaN, quiet") {
        for (std::uint32_t bits = 0; bits <= 0xffffu; ++bits) {
            const bfloat16 x{static_cast<std::uint16_t>(bits)};
            const float wide = shardnet::to_float(x);
            CHECK(bits_of(wide) == bits << 16);  // exact: the upper half of the float
            const bool nan = (bits & 0x7fffu) > 0x7f80u;
            CHECK(std::isnan(wide) == nan);
            if (nan)  // quieted: the top mantissa bit set, sign and upper payload kept
                CHECK(shardnet::to_bfloat16(wide).bits == (bits | 0x0040u));
            else
                CHECK(shardnet::to_bfloat16(wide).bits == bits);
        }
    }

    TEST_CASE("to_bfloat16 rounds to nearest, ties to even, subnormals included") {
        // Ties between 1 and the next bfloat16: to the even one, up or down.
        CHECK(rounded_bits(0x3f808000u) == 0x3f80);  // 1 + 2^-8: tie, 0x3f80 is even
        CHECK(rounded_bits(0x3f818000u) == 0x3f82);  // tie, 0x3f81 odd: up to 0x3f82
        CHECK(rounded_bits(0x3f807fffu) == 0x3f80);  // just below the tie
        CHECK(rounded_bits(0x3f808001u) == 0x3f81);  // just above
        CHECK(rounded_bits(0xbf808000u) == 0xbf80);  // negative ties: the same magnitudes
        CHECK(rounded_bits(0xbf818000u) == 0xbf82);
        CHECK(rounded_bits(0x3fffffffu) == 0x4000);  // a carry into the exponent
        // Overflow: the largest finite bfloat16 is 0x7f7f; half an ulp above it rounds to inf.
        CHECK(rounded_bits(0x7f7f7fffu) == 0x7f7f);
        CHECK(rounded_bits(0x7f7f8000u) == 0x7f80);
        CHECK(rounded_bits(bits_of(std::numeric_limits<float>::max())) == 0x7f80);
        CHECK(rounded_bits(bits_of(-std::numeric_limits<float>::max())) == 0xff80);
        // Infinity, signed zeros.
        CHECK(rounded_bits(0x7f800000u) == 0x7f80);
        CHECK(rounded_bits(0xff800000u) == 0xff80);
        CHECK(rounded_bits(0x00000000u) == 0x0000);
        CHECK(rounded_bits(0x80000000u) == 0x8000);
        // Subnormals round like any value (no flush to zero), up to the smallest normal.
        CHECK(rounded_bits(0x00000001u) == 0x0000);
        CHECK(rounded_bits(0x00008000u) == 0x0000);  // tie, to even 0
        CHECK(rounded_bits(0x00018000u) == 0x0002);  // tie, to even 2
        CHECK(rounded_bits(0x00010000u) == 0x0001);  // the smallest bfloat16 subnormal, exact
        CHECK(rounded_bits(0x807fffffu) == 0x8080);  // the largest subnormal: to -min normal
        // NaN: quiet NaN kept, signalling NaN quieted, sign kept.
        CHECK(rounded_bits(0x7fc00000u) == 0x7fc0);
        CHECK(rounded_bits(0x7f800001u) == 0x7fc0);
        CHECK(rounded_bits(0xff812345u) == 0xffc1);
        CHECK(std::isnan(shardnet::to_float(shardnet::to_bfloat16(float_of(0x7f800001u)))));

        // Against the definition on a million values of every kind.
        std::size_t failures = 0;
        for (float x : awkward_floats(1'000'002, 11)) {
            if (std::isnan(x)) continue;
            const std::uint16_t got = shardnet::to_bfloat16(x).bits;
            if (got != reference_rounding(x) && failures++ < 5) {
                INFO("float bits 0x", std::hex, bits_of(x));
                CHECK(got == reference_rounding(x));
            }
        }
        CHECK(failures == 0);
    }

    TEST_CASE("bulk conversions give the scalar conversions' bits, at every length and offset") {
        const std::string path =
            shardnet::detail::has_avx512_bf16 ? "vcvtneps2bf16 (AVX512-BF16)" : "the portable loop";
        MESSAGE("to_bfloat16(float*, ...) uses ", path);
        const std::vector<float> x = awkward_floats(100'003, 5);
        std::vector<bfloat16> scalar(x.size()), bulk(x.size() + 1);
        for (std::size_t i = 0; i < x.size(); ++i)
            scalar[i] = shardnet::to_bfloat16(x[i]);
        // Lengths around the 16-value vector, and offsets that misalign both arrays.
        for (std::size_t offset : {0, 1, 7})
            for (std::size_t count : {0, 1, 15, 16, 17, 33, 1000, 100'000 - 7}) {
                CAPTURE(offset);
                CAPTURE(count);
                for (bfloat16& v : bulk)
                    v.bits = 0xdead;
                shardnet::to_bfloat16(x.data() + offset, bulk.data() + offset, count);
                std::size_t mismatches = 0;
                for (std::size_t i = 0; i < count; ++i)
                    mismatches += bulk[offset + i].bits != scalar[offset + i].bits;
                CHECK(mismatches == 0);
                CHECK(bulk[offset + count].bits == 0xdead);  // nothing written past the end
            }
        // A block of 16 ordinary values with one subnormal, in every position: the one case where
        // vcvtneps2bf16 (which flushes subnormals) and the scalar rounding would differ.
        for (std::size_t position = 0; position < 16; ++position) {
            std::vector<float> block(16, 1.5f);
            block[position] = float_of(0x00018000u);
            shardnet::to_bfloat16(block.data(), bulk.data(), 16);
            CHECK(bulk[position].bits == 0x0002);
            CHECK(bulk[(position + 1) % 16].bits == 0x3fc0);
        }
        // Widening: every bfloat16 pattern, at misaligned offsets.
        std::vector<bfloat16> all(65536 + 3);
        for (std::size_t i = 0; i < all.size(); ++i)
            all[i].bits = static_cast<std::uint16_t>(i);
        std::vector<float> wide(all.size() + 1, 0.0f);
        for (std::size_t offset : {0, 3})
            for (std::size_t count : {0, 5, 16, 65536}) {
                wide.back() = 7.0f;
                shardnet::to_float(all.data() + offset, wide.data(), count);
                std::size_t mismatches = 0;
                for (std::size_t i = 0; i < count; ++i)
                    mismatches += bits_of(wide[i]) != bits_of(shardnet::to_float(all[offset + i]));
                CHECK(mismatches == 0);
                CHECK(wide.back() == 7.0f);
            }
    }

    TEST_CASE("pack_pairs writes its definition's pair panels, for each width, order and depth") {
        // Bit for bit: every fast case (the 16 x 16 and 4 x 4 word transposes, alone and the one
        // after the other: depths 41 and 47; the 16-line interleave; for 6 lines, the six-row
        // word interleave where the rows' pairs are aligned words (odd depths, ld = depth + 3)
        // and the masked 6-value steps of the other order) and the scalar loop that finishes
        // them, at depths around their blocks, with ragged panels and the odd depth's padding; a
        // guard after the panels must stay untouched.
        std::mt19937 rng(31);
        std::uniform_int_distribution<int> any_bits(0, 0xffff);
        check_pack_pairs<3>(rng, any_bits);
        check_pack_pairs<6>(rng, any_bits);
        check_pack_pairs<16>(rng, any_bits);
        check_pack_pairs<32>(rng, any_bits);
        check_pack_pairs<64>(rng, any_bits);
    }

    TEST_CASE("gemm_bf16 with vdpbf16ps matches a double reference of the bf16 inputs") {
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
        using shardnet::gemm_tile;
        using kernel = shardnet::detail::bf16_dot_kernel;
        check_kernel<kernel, gemm_tile::narrow>("vdpbf16ps, 16x1 tile");
        check_kernel<kernel, gemm_tile::wide>("vdpbf16ps, 6x4 tile");
        // The tiles share their depth blocks: the same bits whichever the core runs.
        using narrow =
            shardnet::detail::default_gemm_bf16_blocking<kernel, gemm_tile::narrow>::type;
        using wide = shardnet::detail::default_gemm_bf16_blocking<kernel, gemm_tile::wide>::type;
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
        for (const auto& [m, n, k] :
             {std::array<std::size_t, 3>{7, 70, 1030}, std::array<std::size_t, 3>{300, 130, 513},
              std::array<std::size_t, 3>{64, 1100, 70}})
            for (transpose ta : both)
                for (transpose tb : both) {
                    std::vector<bfloat16> a(m * k), b(k * n);
                    for (auto& x : a)
                        x = shardnet::to_bfloat16(uniform(rng));
                    for (auto& x : b)
                        x = shardnet::to_bfloat16(uniform(rng));
                    std::vector<float> c0(m * n, 0.5f), c1 = c0;
                    const std::size_t lda = ta == transpose::no ? k : m;
                    const std::size_t ldb = tb == transpose::no ? n : k;
                    shardnet::detail::gemm_bf16_with<narrow>(ta, tb, m, n, k, 1.5f, a.data(), lda,
                                                             b.data(), ldb, 0.25f, c0.data(), n);
                    shardnet::detail::gemm_bf16_with<wide>(ta, tb, m, n, k, 1.5f, a.data(), lda,
                                                           b.data(), ldb, 0.25f, c1.data(), n);
                    CHECK(std::memcmp(c0.data(), c1.data(), c0.size() * sizeof(float)) == 0);
                }
#else
        MESSAGE("skipped: this translation unit is not compiled for AVX512-BF16");
#endif
    }

    TEST_CASE("gemm_bf16's portable widening kernel matches a double reference (default arch)") {
        check_kernel<shardnet::detail::bf16_widening_kernel<xsimd::default_arch>>(
            "widening, default arch");
    }

    TEST_CASE("gemm_bf16's portable widening kernel matches a double reference (sse2, avx2)") {
        check_kernel<shardnet::detail::bf16_widening_kernel<xsimd::sse2>>("widening, sse2");
        check_kernel<shardnet::detail::bf16_widening_kernel<xsimd::fma3<xsimd::avx2>>>(
            "widening, avx2");
    }

    TEST_CASE("gemm_bf16 computes a small product exactly and never reads C when beta == 0") {
        // [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [58 64; 139 154], exact in bfloat16 and float.
        auto bf16 = [](std::vector<float> x) {
            std::vector<bfloat16> y(x.size());
            shardnet::to_bfloat16(x.data(), y.data(), x.size());
            return y;
        };
        const auto a = bf16({1, 2, 3, 4, 5, 6}), b = bf16({7, 8, 9, 10, 11, 12});
        std::vector<float> c(4, std::numeric_limits<float>::quiet_NaN());
        shardnet::gemm_bf16(transpose::no, transpose::no, 2, 2, 3, 1.0f, a.data(), 3, b.data(), 2,
                            0.0f, c.data(), 2);
        CHECK(c == std::vector<float>{58, 64, 139, 154});
        const auto at = bf16({1, 4, 2, 5, 3, 6}), bt = bf16({7, 9, 11, 8, 10, 12});
        shardnet::gemm_bf16(transpose::yes, transpose::yes, 2, 2, 3, 2.0f, at.data(), 2, bt.data(),
                            3, -1.0f, c.data(), 2);
        CHECK(c == std::vector<float>{58, 64, 139, 154});
        // k == 0: C = beta·C, and beta == 0 writes zeros over NaN.
        c = {std::numeric_limits<float>::quiet_NaN(), 2.0f, 3.0f, 4.0f};
        shardnet::gemm_bf16(transpose::no, transpose::no, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2,
                            0.0f, c.data(), 2);
        CHECK(c == std::vector<float>{0, 0, 0, 0});
    }

    TEST_CASE("gemm_bf16 reuses its packing buffers: no allocation in a repeated call") {
        const std::size_t m = 40, n = 50, k = 60;
        std::vector<bfloat16> a(m * k, bfloat16{0x3f80}), b(k * n, bfloat16{0x3f80});
        std::vector<float> c(m * n);
        shardnet::gemm_bf16(transpose::no, transpose::no, m, n, k, 1.0f, a.data(), k, b.data(), n,
                            0.0f, c.data(), n);
        const auto* a_panel = shardnet::detail::packing_buffer<std::uint32_t, 0>(0);
        const auto* b_panel = shardnet::detail::packing_buffer<std::uint32_t, 1>(0);
        shardnet::gemm_bf16(transpose::no, transpose::no, m, n, k, 1.0f, a.data(), k, b.data(), n,
                            0.0f, c.data(), n);
        CHECK(shardnet::detail::packing_buffer<std::uint32_t, 0>(0) == a_panel);
        CHECK(shardnet::detail::packing_buffer<std::uint32_t, 1>(0) == b_panel);
        CHECK(c[0] == float(k));
    }
}
