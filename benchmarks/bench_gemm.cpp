// shardnet::gemm against OpenBLAS on the three products of a dense layer, single-threaded, in
// one process, next to the machine's measured FMA peak.
//
//   OPENBLAS_NUM_THREADS=1 ./bench_gemm            float grid + a double subset (< 2 min)
//   ./bench_gemm --full                             float and double on the whole grid
//   ./bench_gemm --m 32,256 --kn 2048 --type float  any sub-grid (for tuning)
//   ./bench_gemm --openblas-core Zen                OpenBLAS's AVX2 (Zen) kernels instead
//   SHARDNET_GEMM_TILE=16x1 ./bench_gemm            our other AVX-512 tile (kernels/gemm_tile.hpp)
// An AVX-512 CPU is compared against OpenBLAS's AVX-512 kernels (SkylakeX), its best for float
// and double there, whatever OPENBLAS_CORETYPE the environment sets; --openblas-core NAME
// chooses another (Haswell, Zen: its AVX2 kernels).
//   ./bench_gemm --type bf16 --m 64,256,1024 --kn 2048
//                                                   gemm_bf16 (bfloat16 A, B; fp32 C) against
//                                                   our float gemm on the same shapes
//
// Shapes: batch M, layer in = out = K = N. X·W is (M x K)·(K x N); dY·Wᵀ is (M x N)·(K x N)ᵀ;
// Xᵀ·dY is (M x K)ᵀ·(M x N), whose depth is the batch. Each figure is the median of repeated
// runs after a warm-up run (which also sizes our packing buffers), ours and OpenBLAS alternating.
//
// bf16 rows: vdpbf16ps does two multiply-adds per fp32 lane where vfmadd231ps does one, at the
// same issue rate on Zen 4 and Zen 5, so gemm_bf16's ceiling is twice the float FMA peak: its
// "%peak" column is against the float peak and can reach 200%.
#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "fma_peak.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/kernels/gemm.hpp"
#include "shardnet/kernels/gemm_bf16.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using shardnet::transpose;

template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, 64>>;

double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

double median(std::vector<double> x) {
    std::sort(x.begin(), x.end());
    const std::size_t h = x.size() / 2;
    return x.size() % 2 ? x[h] : 0.5 * (x[h - 1] + x[h]);
}

/// What paired_median_seconds measured: the median times of f and g, and the median FMA rate
/// (fma_gflops_now) of short runs between them, the peak at the clock the core ran at then.
struct paired_timing {
    double f_seconds, g_seconds;
    double fma_gflops;
};

/// Median times of f and g, run alternately (f, g, f, g, ...) at least min_reps times each and
/// for at least min_seconds in all, with a short run of FMA chains of T after each pair.
/// Alternating makes the ratio fair on a shared machine: a burst of load from elsewhere hits
/// both sides alike instead of one whole series; the FMA runs put the % of peak on the same
/// footing (the host's boost clock, and with it the peak, drifts by 10% over minutes).
template <class T, class F, class G>
paired_timing paired_median_seconds(F&& f, G&& g, int min_reps, double min_seconds) {
    f();  // warm-up: caches, page faults, our packing buffers
    g();
    std::vector<double> f_times, g_times, fma_rates;
    const auto start = clock_type::now();
    while (static_cast<int>(f_times.size()) < min_reps ||
           (seconds_since(start) < min_seconds && f_times.size() < 50)) {
        auto t0 = clock_type::now();
        f();
        f_times.push_back(seconds_since(t0));
        t0 = clock_type::now();
        g();
        g_times.push_back(seconds_since(t0));
        fma_rates.push_back(shardnet_bench::fma_gflops_now<T>());
    }
    return {median(f_times), median(g_times), median(fma_rates)};
}

CBLAS_TRANSPOSE to_cblas(transpose t) {
    return t == transpose::yes ? CblasTrans : CblasNoTrans;
}

void blas_gemm(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k,
               const float* a, std::size_t lda, const float* b, std::size_t ldb, float* c,
               std::size_t ldc) {
    cblas_sgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), int(m), int(n), int(k), 1.0f, a,
                int(lda), b, int(ldb), 0.0f, c, int(ldc));
}

void blas_gemm(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k,
               const double* a, std::size_t lda, const double* b, std::size_t ldb, double* c,
               std::size_t ldc) {
    cblas_dgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), int(m), int(n), int(k), 1.0, a, int(lda),
                b, int(ldb), 0.0, c, int(ldc));
}

struct options {
    std::vector<std::size_t> batches = {32, 64, 256, 1024};
    std::vector<std::size_t> widths = {1024, 2048, 4096};
    std::vector<std::size_t> double_batches = {32, 256, 1024};
    std::vector<std::size_t> double_widths = {2048};
    bool run_float = true, run_double = true, run_bf16 = false;
    int min_reps = 3;
    double min_seconds = 0.5;
};

std::vector<std::size_t> parse_list(const char* text) {
    std::vector<std::size_t> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ','))
        out.push_back(std::stoul(item));
    return out;
}

struct product {
    const char* name;
    transpose ta, tb;
};

constexpr product products[] = {
    {"X.W", transpose::no, transpose::no},
    {"dY.W^T", transpose::no, transpose::yes},
    {"X^T.dY", transpose::yes, transpose::no},
};

/// The GEMM dimensions of one product of a layer X (batch x K), W (K x N), dY (batch x N), with
/// K = N = kn; every operand is stored with leading dimension kn.
struct product_shape {
    std::size_t m, n, k, ld;
    std::size_t a_count, b_count;  ///< stored elements of A and B
};

product_shape shape_of(const product& prod, std::size_t batch, std::size_t kn) {
    product_shape s{};
    if (prod.ta == transpose::no)  // X·W, and dY·Wᵀ (W stored K x N = n x k)
        s.m = batch, s.n = kn, s.k = kn;
    else  // Xᵀ·dY: X stored batch x K = k x m, dY stored batch x N = k x n
        s.m = kn, s.n = kn, s.k = batch;
    s.ld = kn;
    s.a_count = (prod.ta == transpose::no ? s.m : s.k) * s.ld;
    s.b_count = (prod.tb == transpose::no ? s.k : s.n) * s.ld;
    return s;
}

template <class T>
aligned_vector<T> random_matrix(std::size_t count, std::mt19937& rng) {
    std::uniform_real_distribution<T> uniform(T(-1), T(1));
    aligned_vector<T> x(count);
    for (T& v : x)
        v = uniform(rng);
    return x;
}

/// Times ours and OpenBLAS on one product of a layer of width kn with batch `batch`.
template <class T>
void run_shape(const product& prod, std::size_t batch, std::size_t kn, const options& opt) {
    const product_shape s = shape_of(prod, batch, kn);
    const std::size_t m = s.m, n = s.n, k = s.k, lda = s.ld, ldb = s.ld;
    std::mt19937 rng(42);
    const aligned_vector<T> a = random_matrix<T>(s.a_count, rng);
    const aligned_vector<T> b = random_matrix<T>(s.b_count, rng);
    aligned_vector<T> ours(m * n), theirs(m * n);

    const auto [t_ours, t_blas, peak] = paired_median_seconds<T>(
        [&] {
            shardnet::gemm<T>(prod.ta, prod.tb, m, n, k, T(1), a.data(), lda, b.data(), ldb, T(0),
                              ours.data(), n);
        },
        [&] {
            blas_gemm(prod.ta, prod.tb, m, n, k, a.data(), lda, b.data(), ldb, theirs.data(), n);
        },
        opt.min_reps, opt.min_seconds);

    double max_diff = 0, max_ref = 0;
    for (std::size_t i = 0; i < m * n; ++i) {
        max_diff = std::max(max_diff, std::abs(double(ours[i]) - double(theirs[i])));
        max_ref = std::max(max_ref, std::abs(double(theirs[i])));
    }
    const double flops = 2.0 * double(m) * double(n) * double(k);
    const double g_ours = flops / t_ours * 1e-9, g_blas = flops / t_blas * 1e-9;
    std::printf(
        "%-7s %-7s %5zu %5zu | %5zu %5zu %5zu | %7.1f %7.1f | %5.2f | %5.1f%% | %.1e | %6.1f\n",
        sizeof(T) == 4 ? "float" : "double", prod.name, batch, kn, m, n, k, g_ours, g_blas,
        g_ours / g_blas, 100.0 * g_ours / peak, max_diff / std::max(max_ref, 1e-300), peak);
    std::fflush(stdout);
}

/// Times gemm_bf16 and our float gemm on one product, the bfloat16 operands rounded from the
/// float ones. The last column compares the two results: the rounding of the inputs to bf16
/// (2^-9 relative per value), not an error of either GEMM.
void run_shape_bf16(const product& prod, std::size_t batch, std::size_t kn, const options& opt) {
    const product_shape s = shape_of(prod, batch, kn);
    std::mt19937 rng(42);
    const aligned_vector<float> a = random_matrix<float>(s.a_count, rng);
    const aligned_vector<float> b = random_matrix<float>(s.b_count, rng);
    aligned_vector<shardnet::bfloat16> a16(a.size()), b16(b.size());
    shardnet::to_bfloat16(a.data(), a16.data(), a.size());
    shardnet::to_bfloat16(b.data(), b16.data(), b.size());
    aligned_vector<float> ours(s.m * s.n), theirs(s.m * s.n);

    const auto [t_bf16, t_float, peak] = paired_median_seconds<float>(
        [&] {
            shardnet::gemm_bf16(prod.ta, prod.tb, s.m, s.n, s.k, 1.0f, a16.data(), s.ld, b16.data(),
                                s.ld, 0.0f, ours.data(), s.n);
        },
        [&] {
            shardnet::gemm<float>(prod.ta, prod.tb, s.m, s.n, s.k, 1.0f, a.data(), s.ld, b.data(),
                                  s.ld, 0.0f, theirs.data(), s.n);
        },
        opt.min_reps, opt.min_seconds);

    double max_diff = 0, max_ref = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) {
        max_diff = std::max(max_diff, std::abs(double(ours[i]) - double(theirs[i])));
        max_ref = std::max(max_ref, std::abs(double(theirs[i])));
    }
    const double flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
    const double g_bf16 = flops / t_bf16 * 1e-9, g_float = flops / t_float * 1e-9;
    std::printf(
        "%-7s %-7s %5zu %5zu | %5zu %5zu %5zu | %7.1f %7.1f | %5.2f | %5.1f%% | %.1e | %6.1f\n",
        "bf16", prod.name, batch, kn, s.m, s.n, s.k, g_bf16, g_float, g_bf16 / g_float,
        100.0 * g_bf16 / peak, max_diff / std::max(max_ref, 1e-300), peak);
    std::fflush(stdout);
}

template <class T>
void run_grid(const std::vector<std::size_t>& batches, const std::vector<std::size_t>& widths,
              const options& opt) {
    for (std::size_t kn : widths)
        for (std::size_t batch : batches)
            for (const product& prod : products)
                run_shape<T>(prod, batch, kn, opt);
}

}  // namespace

/// OpenBLAS picks its kernels when the library loads, from OPENBLAS_CORETYPE or its own cpuid
/// table, which in 0.3.21 does not know Zen 4/5 and gives them its AVX2 kernels; some machines'
/// environments also set OPENBLAS_CORETYPE=Haswell. The fair reference is OpenBLAS's best
/// kernel for the CPU: on a CPU with AVX-512 that is SkylakeX (its AVX-512 sgemm and dgemm
/// kernels; Cooperlake's are the same for float and double). So unless `--openblas-core NAME`
/// asks for another, the benchmark runs itself again with OPENBLAS_CORETYPE set to the best
/// one, and says what the environment had. Returns that note for the header line.
std::string run_against_best_openblas_kernel(int argc, char** argv) {
    std::string wanted;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "--openblas-core") wanted = argv[i + 1];
    if (wanted.empty() && __builtin_cpu_supports("avx512f")) wanted = "SkylakeX";
    const char* had = std::getenv("OPENBLAS_CORETYPE");
    if (const char* before = std::getenv("SHARDNET_BENCH_OPENBLAS_CORETYPE_WAS"))
        return std::string("; the environment had OPENBLAS_CORETYPE=") + before;
    if (wanted.empty() || (had != nullptr && wanted == had)) return "";
    setenv("SHARDNET_BENCH_OPENBLAS_CORETYPE_WAS", had ? had : "(unset)", 1);
    setenv("OPENBLAS_CORETYPE", wanted.c_str(), 1);
    execv("/proc/self/exe", argv);
    std::perror("bench_gemm: could not run itself again with OpenBLAS's chosen kernel");
    return "";
}

int main(int argc, char** argv) {
    const std::string environment_note = run_against_best_openblas_kernel(argc, argv);
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--full") {
            opt.double_batches = opt.batches;
            opt.double_widths = opt.widths;
        } else if (arg == "--m" && has_value) {
            opt.batches = opt.double_batches = parse_list(argv[++i]);
        } else if (arg == "--kn" && has_value) {
            opt.widths = opt.double_widths = parse_list(argv[++i]);
        } else if (arg == "--type" && has_value) {
            const std::string type = argv[++i];
            opt.run_float = type == "float" || type == "both" || type == "all";
            opt.run_double = type == "double" || type == "both" || type == "all";
            opt.run_bf16 = type == "bf16" || type == "all";
        } else if (arg == "--openblas-core" && has_value) {
            ++i;  // run_against_best_openblas_kernel took it
        } else if (arg == "--min-time" && has_value) {
            opt.min_seconds = std::stod(argv[++i]);
        } else {
            std::fprintf(stderr,
                         "usage: %s [--full] [--m 32,64,...] [--kn 1024,...] "
                         "[--type float|double|both|bf16|all] [--min-time seconds] "
                         "[--openblas-core NAME]\n",
                         argv[0]);
            return 2;
        }
    }
    openblas_set_num_threads(1);
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::printf(
        "shardnet::gemm (xsimd arch %s) vs OpenBLAS (%s, core %s, OPENBLAS_CORETYPE=%s%s)\n",
        xsimd::default_arch::name(), openblas_get_config(), openblas_get_corename(),
        coretype ? coretype : "(unset)", environment_note.c_str());
    const shardnet::gemm_tile_choice& tile = shardnet::chosen_gemm_tile();
    std::printf(
        "CPU: %s, L1d %ld KiB, L2 %ld KiB; float and double tile %s, bf16 tile %s (chosen by %s",
        tile.cpu.c_str(), sysconf(_SC_LEVEL1_DCACHE_SIZE) / 1024,
        sysconf(_SC_LEVEL2_CACHE_SIZE) / 1024, std::string(shardnet::to_string(tile.tile)).c_str(),
        (std::string(shardnet::to_string(tile.bf16_tile)) +
         (tile.bf16_narrow_when_small
              ? " (16x1 for m <= " + std::to_string(tile.bf16_narrow_rows) +
                    ", m <= " + std::to_string(tile.bf16_narrow_padded_rows) +
                    " padding fewer rows, k <= " + std::to_string(tile.bf16_narrow_depth) + ")"
              : ""))
            .c_str(),
        tile.reason.c_str());
    std::printf("; 512/256-bit FMA throughput %.2f; packed strips fetched ahead: %s)\n",
                shardnet::detail::fma_width_ratio(), tile.fetch_packed_strips ? "yes" : "no");
    const double peak_float = shardnet_bench::fma_peak_gflops<float>();
    const double peak_double = shardnet_bench::fma_peak_gflops<double>();
    std::printf(
        "single-core FMA peak: float %.1f GFLOP/s, double %.1f GFLOP/s (best of 40 runs at "
        "start)\n",
        peak_float, peak_double);
    std::printf(
        "median of >= %d runs each, ours and OpenBLAS alternating, >= %.2f s per shape; "
        "GFLOP/s = 2mnk / time; %%peak against the FMA peak measured between those runs (last "
        "column, GFLOP/s of the type; the clock drifts)\n\n",
        opt.min_reps, opt.min_seconds);
    if (opt.run_float || opt.run_double)
        std::printf("%-7s %-7s %5s %5s | %5s %5s %5s | %7s %7s | %5s | %6s | %s | %s\n", "type",
                    "product", "M", "K=N", "m", "n", "k", "ours", "OpenBLAS", "ratio", "%peak",
                    "max rel diff", "peak now");
    if (opt.run_float) run_grid<float>(opt.batches, opt.widths, opt);
    if (opt.run_double) run_grid<double>(opt.double_batches, opt.double_widths, opt);
    if (opt.run_bf16) {
        std::printf(
            "\nbf16: gemm_bf16 (%s) vs our float gemm on the same shapes; %%peak of the float FMA "
            "peak (vdpbf16ps: 2x the flops per instruction, ceiling 200%%)\n",
            shardnet::detail::has_avx512_bf16 ? "vdpbf16ps" : "widening fallback");
        std::printf("%-7s %-7s %5s %5s | %5s %5s %5s | %7s %7s | %5s | %6s | %s | %s\n", "type",
                    "product", "M", "K=N", "m", "n", "k", "bf16", "float", "ratio", "%peak",
                    "max rel diff", "peak now");
        for (std::size_t kn : opt.widths)
            for (std::size_t batch : opt.batches)
                for (const product& prod : products)
                    run_shape_bf16(prod, batch, kn, opt);
    }
    return 0;
}
