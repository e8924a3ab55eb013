// Training-step throughput of a model-parallel MLP, where its time goes, its memory, the
// overhead of a dense layer over its three GEMMs, and how much of the data-parallel gradient
// reduction backward hides.
//   mpiexec -n 1 ./bench_mlp    mpiexec -n 2 ./bench_mlp         model-parallel scaling
//   ./bench_mlp --layer-bench                                     one layer vs its GEMMs
//   mpiexec -n 2 ./bench_mlp --data-parallel                      overlap of the gradient
//   all-reduce
//   mpiexec -n 2 ./bench_mlp --runtime-network    network<> (chosen at run time) vs sequential<>
//   ./bench_mlp --fma-scaling                     the cores' own 2-thread / 1-thread FMA scaling
// Options: --layers 1024,4096,4096,1024 --batch 256 --steps 20 --warmup 3 --optimizer sgd|adam
//          --precision fp32|bf16 --reproducible-across N
// Every timed step is also counted for heap allocations (operator new), which must be 0. Peak
// resident memory (getrusage) is reported next to what the model needs: (weights + gradients
// + optimizer state) / P + activations, and the process's resident memory before the model.
//
// The default mode also prints, per rank, the phases of a step ("phases:" lines): time in
// GEMMs (a GEMM policy that times xsimd_gemm), in collectives (a communicator that times the
// MPI one; waiting for a slower rank counts here), in opt.step() (less its collectives), and
// the remainder: element-wise passes (bias, activation, its derivative, loss) and the rest.
// Each is the median over the timed steps, so the four need not add up to the median step
// exactly. gemm_gflops is this rank's GEMM flops per step over its median GEMM time.
// percent_of_peak is the step's GFLOP/s per rank over fma_peak_gflops, the core's float FMA peak
// measured between the timed steps (median, mean over ranks): at the clock the steps ran at; in
// bf16 with AVX512-BF16, over twice that (vdpbf16ps's ceiling).
// Before the model is built, rank 0 measures what two threads get from the FMA units against
// one ("fma_scaling:" line, fma_peak.hpp) while the other ranks sleep, so the 1 -> 2 rank
// scaling of the step can be read against what the cores themselves give.
#include <sys/resource.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>

#include <boost/mpi/environment.hpp>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <new>
#include <span>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "fma_peak.hpp"
#include "shardnet/kernels/cblas_gemm.hpp"
#include "shardnet/shardnet.hpp"

namespace sn = shardnet;
namespace act = shardnet::activation;

// Counting global allocations: the proof that a steady-state step does not allocate. g++
// cannot see that these replacements pair malloc with free, hence the pragma.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<std::size_t> allocations{0};
void* operator new(std::size_t n) {
    ++allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    return operator new(n);
}
void* operator new(std::size_t n, std::align_val_t al) {
    ++allocations;
    const auto a = static_cast<std::size_t>(al);
    if (void* p = std::aligned_alloc(a, (n + a - 1) / a * a)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t al) {
    return operator new(n, al);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

template <class Fill>
sn::matrix<float> filled(std::size_t rows, std::size_t cols, Fill fill) {
    sn::matrix<float> m = sn::matrix<float>::from_shape({rows, cols});
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j)
            m(i, j) = fill(i, j);
    return m;
}

float value(std::size_t i, std::size_t j) {
    return static_cast<float>(sn::uniform_at({77, 1, 2}, i, j) - 0.5);
}

/// The MLP of the PyTorch comparison: column -> row -> column, ReLU between, MSE.
using mlp_type = sn::sequential<sn::dense<float, sn::column_split, act::relu>,
                                sn::dense<float, sn::row_split, act::relu>,
                                sn::dense<float, sn::column_split, act::identity>>;

double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// Totals of the step's phases so far, added to by timed_gemm and timed_communicator and read
/// as differences around each step. Plain globals: one thread drives a step (the gemm_policy
/// contract), and a counter must not allocate or lock inside the step.
struct phase_totals {
    double gemm_seconds = 0;
    double gemm_flops = 0;
    double collective_seconds = 0;
};
phase_totals totals;

/// xsimd_gemm with a clock around each call: a call takes tens of microseconds or more, the
/// two clock reads tens of nanoseconds.
struct timed_gemm {
    static constexpr std::string_view name = "xsimd (timed)";

    template <class T>
    static void gemm(sn::transpose trans_a, sn::transpose trans_b, std::size_t m, std::size_t n,
                     std::size_t k, T alpha, const T* a, std::size_t lda, const T* b,
                     std::size_t ldb, T beta, T* c, std::size_t ldc) {
        const auto start = clock_type::now();
        sn::xsimd_gemm::gemm<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        totals.gemm_seconds += seconds_since(start);
        totals.gemm_flops +=
            2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    }

    /// The bf16 products of a --precision bf16 step (dense_products.hpp calls this when the
    /// policy offers it), timed the same way.
    static void gemm_bf16(sn::transpose trans_a, sn::transpose trans_b, std::size_t m,
                          std::size_t n, std::size_t k, float alpha, const sn::bfloat16* a,
                          std::size_t lda, const sn::bfloat16* b, std::size_t ldb, float beta,
                          float* c, std::size_t ldc) {
        const auto start = clock_type::now();
        sn::gemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        totals.gemm_seconds += seconds_since(start);
        totals.gemm_flops +=
            2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    }
};
static_assert(sn::gemm_policy<timed_gemm>);

/// A pending non-blocking collective whose wait (and test) is timed: the time a non-blocking
/// collective costs the step is what it leaves to wait for, not its flight.
template <class Request>
class timed_request {
  public:
    explicit timed_request(Request inner) : inner_(std::move(inner)) {}
    void wait() {
        const auto start = clock_type::now();
        inner_.wait();
        totals.collective_seconds += seconds_since(start);
    }
    bool test() requires requires(Request& r) { r.test(); }
    {
        const auto start = clock_type::now();
        const bool done = inner_.test();
        totals.collective_seconds += seconds_since(start);
        return done;
    }

  private:
    Request inner_;
};

/// Forwards every collective to Inner and adds its wall time to totals.collective_seconds;
/// the wrapper itself is a shardnet::communicator, so the network runs on it unchanged.
/// Non-blocking all-reduces count their start and their wait.
template <sn::communicator Inner>
class timed_communicator {
  public:
    explicit timed_communicator(Inner inner) : inner_(std::move(inner)) {}

    std::size_t rank() const { return inner_.rank(); }
    std::size_t size() const { return inner_.size(); }
    void barrier() {
        timed([&] { inner_.barrier(); });
    }
    timed_communicator split(int color, int key) const {
        return timed_communicator(inner_.split(color, key));
    }

    template <class T>
    void all_reduce(T* data, std::size_t n, sn::reduce_op op) {
        timed([&] { inner_.all_reduce(data, n, op); });
    }
    template <class T>
    auto all_reduce_async(T* data, std::size_t n, sn::reduce_op op) {
        const auto start = clock_type::now();
        timed_request request(sn::start_all_reduce(inner_, data, n, op));
        totals.collective_seconds += seconds_since(start);
        return request;
    }
    template <class T>
    void broadcast(T* data, std::size_t n, std::size_t root) {
        timed([&] { inner_.broadcast(data, n, root); });
    }
    template <class T>
    void all_gather(const T* in, std::size_t n, T* out) {
        timed([&] { inner_.all_gather(in, n, out); });
    }
    template <class T>
    void all_gather(const T* in, T* out, std::span<const std::size_t> counts) {
        timed([&] { inner_.all_gather(in, out, counts); });
    }
    template <class T>
    void reduce_scatter(const T* in, T* out, std::span<const std::size_t> counts) {
        timed([&] { inner_.reduce_scatter(in, out, counts); });
    }

  private:
    template <class F>
    static void timed(F&& f) {
        const auto start = clock_type::now();
        f();
        totals.collective_seconds += seconds_since(start);
    }

    Inner inner_;
};
static_assert(sn::communicator<timed_communicator<sn::mpi_communicator>>);

/// mlp_type on the timed GEMM policy: the default mode's network, whose phases are printed.
using timed_mlp_type =
    sn::sequential<sn::dense<float, sn::column_split, act::relu, timed_gemm>,
                   sn::dense<float, sn::row_split, act::relu, timed_gemm>,
                   sn::dense<float, sn::column_split, act::identity, timed_gemm>>;

/// Rank 0 measures the FMA units' 2-thread / 1-thread scaling and prints it; the other ranks
/// sleep meanwhile (a rank waiting in a plain MPI barrier spins and would take a core from the
/// measurement). Collective over MPI_COMM_WORLD.
void fma_scaling_line(sn::mpi_communicator& world) {
    if (world.rank() == 0) {
        const auto s = shardnet_bench::measure_fma_scaling<float>();
        std::cout << std::fixed << std::setprecision(1)
                  << "fma_scaling: type=float one_thread_gflops=" << s.one_thread_gflops
                  << " two_threads_gflops=" << s.two_threads_gflops << std::setprecision(3)
                  << " ratio=" << s.ratio() << " median_ratio=" << s.median_ratio
                  << " distinct_cpus=" << (s.distinct_cpus ? "yes" : "no") << std::endl;
    }
    MPI_Request request = MPI_REQUEST_NULL;
    SHARDNET_MPI_CHECK(MPI_Ibarrier(world.native(), &request));
    for (int done = 0; !done;) {
        SHARDNET_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
        if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

/// Peak resident memory of this process so far, in MiB (Linux reports KiB).
double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

/// Bytes of the buffers a training step of this rank needs besides the parameters: per layer
/// its pre-activation, and for a non-linear one its output and pre-activation gradient, all
/// batch x local output; every layer but the first its input gradient (batch x local input);
/// the loss gradient; the input batch and targets. (What any framework keeps for backward.)
template <class Net>
double activation_mib(Net& net, std::size_t batch, const std::vector<std::size_t>& w) {
    double elements = 0;
    sn::visit_layers(net, [&](const auto& l, std::size_t index) {
        const bool linear = l.activation_name() == act::identity::name;
        elements += static_cast<double>(batch * l.weight_cols().size()) * (linear ? 1 : 3);
        if (index > 0) elements += static_cast<double>(batch * l.weight_rows().size());
    });
    elements += static_cast<double>(batch * (net.output_block().size() + w.front() + w.back()));
    return elements * sizeof(float) / (1024.0 * 1024.0);
}

sn::optimizer_options make_optimizer(const std::string& name) {
    return name == "adam" ? sn::adam(1e-3) : sn::sgd(1e-3);
}

/// Training steps of the MLP on a model-parallel group of all ranks, and their phases.
int bench_network(sn::mpi_communicator& world, const std::vector<std::size_t>& w, std::size_t batch,
                  std::size_t steps, std::size_t warmup, const std::string& optimizer,
                  sn::precision precision, std::size_t reproducible_across) {
    const double rss_before = peak_rss_mib();
    timed_communicator<sn::mpi_communicator> group(world);
    sn::network_options options;
    options.seed = 1;
    options.precision = precision;
    options.reproducible_across = reproducible_across;
    timed_mlp_type net(group, w, options);
    sn::optimizer<float> opt(make_optimizer(optimizer));
    sn::mean_squared_error<float> loss(w.back());
    sn::local_communicator one_replica;
    const auto x = filled(batch, w.front(), value);
    const auto target =
        filled(batch, w.back(), [](std::size_t i, std::size_t j) { return value(i + 1000, j); });
    sn::matrix<float> grad;
    // Per timed step: the whole step, then GEMMs, collectives, optimizer, the remainder.
    enum phase { step_phase, gemm_phase, collective_phase, optimizer_phase, rest_phase, phases };
    std::vector<double> seconds[phases];
    for (auto& v : seconds)
        v.reserve(steps);
    double last_loss = 0, gemm_flops = 0;
    std::size_t allocated = 0;
    // The core's FMA peak between the timed steps, at the clock it runs the steps at (the
    // host's boost clock drifts by 10% over minutes: fma_peak.hpp).
    std::vector<double> fma_rates;
    fma_rates.reserve(steps);
    for (std::size_t s = 0; s < warmup + steps; ++s) {
        world.barrier();  // on the untimed communicator: not part of the step
        const std::size_t before = allocations.load();
        const phase_totals at_start = totals;
        const auto start = clock_type::now();
        const auto& y = net.forward(group, x);
        last_loss =
            loss.forward_backward<timed_mlp_type::output_layout>(group, y, target, batch, grad)
                .loss;
        net.backward(group, grad, one_replica);
        const double collectives_before_optimizer = totals.collective_seconds;
        const auto optimizer_start = clock_type::now();
        opt.step(net, group);
        const auto end = clock_type::now();
        if (s >= warmup) {
            const double t = std::chrono::duration<double>(end - start).count();
            const double gemm = totals.gemm_seconds - at_start.gemm_seconds;
            const double collectives = totals.collective_seconds - at_start.collective_seconds;
            // Its collectives (the norm when clipping) are counted once, as collectives.
            const double optimizer_only =
                std::chrono::duration<double>(end - optimizer_start).count() -
                (totals.collective_seconds - collectives_before_optimizer);
            seconds[step_phase].push_back(t);
            seconds[gemm_phase].push_back(gemm);
            seconds[collective_phase].push_back(collectives);
            seconds[optimizer_phase].push_back(optimizer_only);
            seconds[rest_phase].push_back(t - gemm - collectives - optimizer_only);
            gemm_flops = totals.gemm_flops - at_start.gemm_flops;  // the same every step
            allocated += allocations.load() - before;
            fma_rates.push_back(shardnet_bench::fma_gflops_now<float>());  // not timed
        }
    }
    // The slowest rank sets the pace; memory is reported for the largest rank.
    double step = median(seconds[step_phase]);
    world.all_reduce(&step, 1, sn::reduce_op::max);
    double peak = median(fma_rates) / static_cast<double>(world.size());
    world.all_reduce(&peak, 1, sn::reduce_op::sum);  // the ranks' mean
    // bf16 GEMMs on vdpbf16ps do two multiply-adds per fp32 lane at the FMA's rate: their
    // ceiling, and the step's, is twice the float peak.
    const double ceiling =
        precision == sn::precision::bf16 && sn::detail::has_avx512_bf16 ? 2 * peak : peak;
    double memory[2] = {peak_rss_mib(), rss_before};
    world.all_reduce(memory, 2, sn::reduce_op::max);
    double state_elements = 0;
    for (const auto& p : net.parameters())
        state_elements += static_cast<double>(p.size) * static_cast<double>(2 + opt.state_slots());
    double model_mib =
        state_elements * sizeof(float) / (1024.0 * 1024.0) + activation_mib(net, batch, w);
    world.all_reduce(&model_mib, 1, sn::reduce_op::max);
    // Every rank's phases to rank 0: with 2 ranks their difference shows imbalance, which
    // lands in the faster rank's collectives as waiting.
    constexpr std::size_t fields = phases + 1;
    double mine[fields];
    for (int p = 0; p < phases; ++p)
        mine[p] = median(seconds[p]);
    mine[phases] = gemm_flops;
    std::vector<double> everyone(fields * world.size());
    world.all_gather(mine, fields, everyone.data());
    if (world.rank() == 0) {
        double flops = 0;
        for (std::size_t l = 0; l + 1 < w.size(); ++l)
            flops += 2.0 * static_cast<double>(batch * w[l] * w[l + 1]) * (l == 0 ? 2 : 3);
        std::cout << std::fixed << std::setprecision(3) << "mlp: ranks=" << world.size()
                  << " batch=" << batch << " optimizer=" << optimizer
                  << " precision=" << sn::to_string(precision)
                  << " reproducible_across=" << reproducible_across << " step_ms=" << step * 1e3
                  << " steps_per_s=" << 1.0 / step
                  << " samples_per_s=" << static_cast<double>(batch) / step
                  << " gflops_per_rank=" << flops / step / 1e9 / static_cast<double>(world.size())
                  << " fma_peak_gflops=" << peak << " percent_of_peak="
                  << 100.0 * flops / step / 1e9 / static_cast<double>(world.size()) / ceiling
                  << " allocations_per_step=" << allocated / std::max<std::size_t>(steps, 1)
                  << " loss=" << last_loss << "\n";
        std::cout << std::fixed << std::setprecision(1) << "memory: ranks=" << world.size()
                  << " optimizer=" << optimizer << " peak_rss_mib=" << memory[0]
                  << " rss_before_model_mib=" << memory[1] << " model_mib=" << model_mib
                  << " peak_over_model=" << std::setprecision(3)
                  << (memory[0] - memory[1]) / model_mib << "\n";
        for (std::size_t r = 0; r < world.size(); ++r) {
            const double* p = everyone.data() + r * fields;
            auto phase_ms = [&](const char* name, int which, const char* note) {
                std::cout << " " << name << "=" << p[which] * 1e3 << " ("
                          << 100.0 * p[which] / p[step_phase] << "%" << note << ")";
            };
            std::cout << std::fixed << std::setprecision(1) << "phases: ranks=" << world.size()
                      << " rank=" << r << " optimizer=" << optimizer
                      << " step_ms=" << p[step_phase] * 1e3;
            phase_ms("gemm_ms", gemm_phase, "");
            phase_ms("collectives_ms", collective_phase, "");
            phase_ms("optimizer_ms", optimizer_phase, "");
            phase_ms("elementwise_and_other_ms", rest_phase, ", remainder");
            std::cout << " gemm_gflops=" << p[phases] / p[gemm_phase] * 1e-9 << "\n";
        }
    }
    return 0;
}

/// The same MLP built twice, as sequential<...> (layers fixed at compile time) and as
/// network<...> (chosen at run time, layers behind virtual calls), trained step by step in
/// alternation so that machine load hits both alike. Prints each one's median step and the
/// ratio; both must allocate nothing per step.
void bench_runtime_network(sn::mpi_communicator& world, const std::vector<std::size_t>& w,
                           std::size_t batch, std::size_t steps, std::size_t warmup,
                           const std::string& optimizer) {
    sn::network_options options;
    options.seed = 1;
    mlp_type fixed(world, w, options);
    sn::network<float, sn::mpi_communicator> chosen(
        world, w, {{"column", "relu"}, {"row", "relu"}, {"column", "identity"}}, options);
    sn::optimizer<float> fixed_opt(make_optimizer(optimizer)),
        chosen_opt(make_optimizer(optimizer));
    sn::mean_squared_error<float> loss(w.back());
    sn::local_communicator one_replica;
    const auto x = filled(batch, w.front(), value);
    const auto target =
        filled(batch, w.back(), [](std::size_t i, std::size_t j) { return value(i + 1000, j); });
    sn::matrix<float> grad;
    std::vector<double> seconds[2];
    std::size_t allocated[2] = {0, 0};
    double losses[2] = {0, 0};
    auto step = [&](auto& net, auto& opt, int which, bool timed) {
        world.barrier();
        const std::size_t before = allocations.load();
        const auto start = clock_type::now();
        const auto& y = net.forward(world, x);
        losses[which] =
            loss.forward_backward<sn::layout::sharded>(world, y, target, batch, grad).loss;
        net.backward(world, grad, one_replica);
        opt.step(net, world);
        const double t = std::chrono::duration<double>(clock_type::now() - start).count();
        if (timed) {
            seconds[which].push_back(t);
            allocated[which] += allocations.load() - before;
        }
    };
    for (std::size_t s = 0; s < warmup + steps; ++s) {
        // Alternate which goes first, so neither always follows the other's cache footprint.
        if (s % 2 == 0) {
            step(fixed, fixed_opt, 0, s >= warmup);
            step(chosen, chosen_opt, 1, s >= warmup);
        } else {
            step(chosen, chosen_opt, 1, s >= warmup);
            step(fixed, fixed_opt, 0, s >= warmup);
        }
    }
    double medians[2] = {median(seconds[0]), median(seconds[1])};
    world.all_reduce(medians, 2, sn::reduce_op::max);
    if (world.rank() == 0)
        std::cout << std::fixed << std::setprecision(3) << "runtime: ranks=" << world.size()
                  << " batch=" << batch << " optimizer=" << optimizer
                  << " sequential_step_ms=" << medians[0] * 1e3
                  << " network_step_ms=" << medians[1] * 1e3
                  << " network_over_sequential=" << std::setprecision(4) << medians[1] / medians[0]
                  << " sequential_allocations_per_step="
                  << allocated[0] / std::max<std::size_t>(steps, 1)
                  << " network_allocations_per_step="
                  << allocated[1] / std::max<std::size_t>(steps, 1)
                  << " same_loss=" << (losses[0] == losses[1] ? "yes" : "no") << "\n";
}

/// Data parallelism on every rank (each a whole replica, batch / P rows): steps with no
/// gradient reduction (compute alone), with the reduction after backward (blocking), and with
/// it overlapped inside backward, alternated step by step so that load hits all three alike.
/// hidden = (blocking - overlapped) / (blocking - compute alone).
void bench_data_parallel(sn::mpi_communicator& world, const std::vector<std::size_t>& w,
                         std::size_t batch, std::size_t steps, std::size_t warmup) {
    sn::local_communicator alone;
    const std::size_t rows = std::max<std::size_t>(batch / world.size(), 1);
    sn::network_options options;
    options.seed = 1;
    mlp_type net(alone, w, options);
    sn::optimizer<float> opt(sn::sgd(1e-3));
    sn::mean_squared_error<float> loss(w.back());
    const auto x = filled(rows, w.front(), [&](std::size_t i, std::size_t j) {
        return value(i + rows * world.rank(), j);
    });
    const auto target = filled(rows, w.back(), [&](std::size_t i, std::size_t j) {
        return value(i + rows * world.rank() + 1000, j);
    });
    sn::matrix<float> grad;
    std::vector<double> times[3];
    for (std::size_t s = 0; s < warmup + steps; ++s) {
        for (int variant = 0; variant < 3; ++variant) {
            world.barrier();
            const auto start = clock_type::now();
            const auto& y = net.forward(alone, x);
            loss.forward_backward<mlp_type::output_layout>(alone, y, target, rows * world.size(),
                                                           grad);
            if (variant == 0) {
                net.backward(alone, grad);
                net.reduce_gradients(alone);  // no communication: compute alone
            } else if (variant == 1) {
                net.backward(alone, grad);
                net.reduce_gradients(world);
            } else {
                net.backward(alone, grad, world);
            }
            opt.step(net, alone);
            double t = std::chrono::duration<double>(clock_type::now() - start).count();
            world.all_reduce(&t, 1, sn::reduce_op::max);
            if (s >= warmup) times[variant].push_back(t);
        }
    }
    const double none = median(times[0]), blocking = median(times[1]), overlap = median(times[2]);
    double gradient_mib = 0;
    for (const auto& p : net.parameters())
        gradient_mib += static_cast<double>(p.size) * sizeof(float) / (1024.0 * 1024.0);
    if (world.rank() == 0)
        std::cout << std::fixed << std::setprecision(3) << "data_parallel: ranks=" << world.size()
                  << " rows_per_rank=" << rows << " gradient_mib=" << gradient_mib
                  << " compute_ms=" << none * 1e3 << " blocking_ms=" << blocking * 1e3
                  << " overlapped_ms=" << overlap * 1e3
                  << " exposed_comm_blocking_ms=" << (blocking - none) * 1e3
                  << " exposed_comm_overlapped_ms=" << (overlap - none) * 1e3 << " hidden="
                  << (blocking > none ? (blocking - overlap) / (blocking - none) : 0.0) << "\n";
}

/// One dense layer forward + backward against its three GEMMs alone, on this rank; and the
/// same layer on the cblas_gemm policy (OpenBLAS), to show what the policy costs or buys.
template <class Gemm>
void bench_layer(std::size_t in, std::size_t out, std::size_t batch, std::size_t steps) {
    sn::local_communicator alone;
    sn::dense<float, sn::replicated, act::relu, Gemm> layer(alone, in, out);
    const auto x = filled(batch, in, value);
    const auto dy =
        filled(batch, out, [](std::size_t i, std::size_t j) { return value(i, j + 7); });
    sn::matrix<float> z = sn::matrix<float>::from_shape({batch, out});
    sn::matrix<float> dx = sn::matrix<float>::from_shape({batch, in});
    sn::matrix<float> dw = sn::matrix<float>::from_shape({in, out});
    std::vector<double> layer_times, gemm_times;
    layer_times.reserve(steps);
    gemm_times.reserve(steps);
    std::size_t allocated = 0;
    for (std::size_t s = 0; s < steps + 2; ++s) {
        auto start = clock_type::now();
        sn::forward_product<Gemm>(x, layer.weight(), z);
        sn::input_gradient_product<Gemm>(dy, layer.weight(), dx);
        sn::weight_gradient_product<Gemm>(x, dy, dw);
        const double g = std::chrono::duration<double>(clock_type::now() - start).count();
        const std::size_t before = allocations.load();
        start = clock_type::now();
        layer.forward(alone, x);
        layer.backward(alone, dy);
        const std::size_t after = allocations.load();
        const double l = std::chrono::duration<double>(clock_type::now() - start).count();
        if (s >= 2) {
            gemm_times.push_back(g);
            layer_times.push_back(l);
            allocated += after - before;
        }
    }
    const double g = median(gemm_times), l = median(layer_times);
    std::cout << std::fixed << std::setprecision(3) << "layer: gemm=" << Gemm::name << " " << in
              << "->" << out << " batch=" << batch << " three_gemms_ms=" << g * 1e3
              << " layer_step_ms=" << l * 1e3 << " overhead_ratio=" << l / g
              << " allocations_per_step=" << allocated / steps << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    boost::mpi::environment env(argc, argv, boost::mpi::threading::funneled);
    sn::mpi_communicator world;
    CLI::App app{"shardnet training-step benchmark"};
    std::vector<std::size_t> layers = {1024, 4096, 4096, 1024};
    std::size_t batch = 256, steps = 20, warmup = 3;
    bool layer_bench = false, data_parallel = false, runtime_network = false, fma_scaling = false;
    std::string optimizer = "sgd", precision = "fp32";
    app.add_option("--precision", precision, "fp32 or bf16 (mixed precision; the main bench only)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    std::size_t reproducible_across = 0;
    app.add_option("--reproducible-across", reproducible_across,
                   "N: sums over ranks reproducible on 1 .. N ranks (the main bench only)");
    app.add_option("--layers", layers, "widths (3 layers: column, row, column)")->delimiter(',');
    app.add_option("--batch", batch, "batch size (global: split over replicas when data-parallel)");
    app.add_option("--steps", steps, "timed steps");
    app.add_option("--warmup", warmup, "untimed steps first");
    app.add_option("--optimizer", optimizer, "sgd or adam (adam: two state slots per parameter)")
        ->check(CLI::IsMember({"sgd", "adam"}));
    app.add_flag("--layer-bench", layer_bench, "time one 4096->4096 layer vs its GEMMs instead");
    app.add_flag("--data-parallel", data_parallel,
                 "every rank a replica: how much of the gradient all-reduce backward hides");
    app.add_flag("--runtime-network", runtime_network,
                 "network<> chosen at run time against sequential<>, alternating steps");
    app.add_flag("--fma-scaling", fma_scaling,
                 "only the FMA units' 2-thread / 1-thread scaling (rank 0; others sleep)");
    CLI11_PARSE(app, argc, argv);
    if (layers.size() != 4) {
        if (world.rank() == 0) std::cerr << "--layers needs 4 widths\n";
        return 2;
    }
    if (fma_scaling) {
        fma_scaling_line(world);
        return 0;
    }
    if (layer_bench) {
        if (world.rank() == 0) {
            bench_layer<sn::xsimd_gemm>(4096, 4096, batch, steps);
            bench_layer<sn::cblas_gemm>(4096, 4096, batch, steps);
        }
        return 0;
    }
    if (data_parallel) {
        bench_data_parallel(world, layers, batch, steps, warmup);
        return 0;
    }
    if (runtime_network) {
        bench_runtime_network(world, layers, batch, steps, warmup, optimizer);
        return 0;
    }
    // Before any MPI work, with the other ranks asleep: the cores as this step will find them.
    fma_scaling_line(world);
    return bench_network(world, layers, batch, steps, warmup, optimizer,
                         sn::parse_precision(precision), reproducible_across);
}
