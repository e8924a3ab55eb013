// Training-step throughput of a model-parallel MLP, and the overhead of a dense layer over its
// three GEMMs. Run on 1 and 2 ranks to see model-parallel scaling:
//   mpiexec -n 1 ./bench_mlp    mpiexec -n 2 ./bench_mlp
// Options: --layers 1024,4096,4096,1024 --batch 256 --steps 20 --warmup 3 --layer-bench
// Every timed step is also counted for heap allocations (operator new), which must be 0.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/mpi/environment.hpp>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <new>
#include <vector>

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

/// The MLP of the PyTorch comparison: column -> row -> column, ReLU between, MSE, SGD.
int bench_network(sn::mpi_communicator& world, const std::vector<std::size_t>& w, std::size_t batch,
                  std::size_t steps, std::size_t warmup) {
    using net_type = sn::sequential<sn::dense<float, sn::column_split, act::relu>,
                                    sn::dense<float, sn::row_split, act::relu>,
                                    sn::dense<float, sn::column_split, act::identity>>;
    sn::network_options options;
    options.seed = 1;
    net_type net(world, w, options);
    sn::optimizer<float> opt(sn::sgd(1e-3));
    sn::mean_squared_error<float> loss(w.back());
    sn::local_communicator one_replica;
    const auto x = filled(batch, w.front(), value);
    const auto target =
        filled(batch, w.back(), [](std::size_t i, std::size_t j) { return value(i + 1000, j); });
    sn::matrix<float> grad;
    std::vector<double> seconds;
    seconds.reserve(steps);
    double last_loss = 0;
    std::size_t allocated = 0;
    for (std::size_t s = 0; s < warmup + steps; ++s) {
        world.barrier();
        const std::size_t before = allocations.load();
        const auto start = clock_type::now();
        const auto& y = net.forward(world, x);
        last_loss =
            loss.forward_backward<net_type::output_layout>(world, y, target, batch, grad).loss;
        net.backward(world, grad);
        net.reduce_gradients(one_replica);
        opt.step(net, world);
        const double t = std::chrono::duration<double>(clock_type::now() - start).count();
        if (s >= warmup) {
            seconds.push_back(t);
            allocated += allocations.load() - before;
        }
    }
    // The slowest rank sets the pace.
    double step = median(seconds);
    world.all_reduce(&step, 1, sn::reduce_op::max);
    if (world.rank() == 0) {
        double flops = 0;
        for (std::size_t l = 0; l + 1 < w.size(); ++l)
            flops += 2.0 * static_cast<double>(batch * w[l] * w[l + 1]) * (l == 0 ? 2 : 3);
        std::cout << std::fixed << std::setprecision(3) << "mlp: ranks=" << world.size()
                  << " batch=" << batch << " step_ms=" << step * 1e3
                  << " steps_per_s=" << 1.0 / step
                  << " samples_per_s=" << static_cast<double>(batch) / step
                  << " gflops_per_rank=" << flops / step / 1e9 / static_cast<double>(world.size())
                  << " allocations_per_step=" << allocated / std::max<std::size_t>(steps, 1)
                  << " loss=" << last_loss << "\n";
    }
    return 0;
}

/// One dense layer forward + backward against its three GEMMs alone, on this rank.
void bench_layer(std::size_t in, std::size_t out, std::size_t batch, std::size_t steps) {
    sn::local_communicator alone;
    sn::dense<float, sn::replicated, act::relu> layer(alone, in, out);
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
        sn::detail::forward_product<sn::xsimd_gemm>(x, layer.weight(), z);
        sn::detail::input_gradient_product<sn::xsimd_gemm>(dy, layer.weight(), dx);
        sn::detail::weight_gradient_product<sn::xsimd_gemm>(x, dy, dw);
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
    std::cout << std::fixed << std::setprecision(3) << "layer: " << in << "->" << out
              << " batch=" << batch << " three_gemms_ms=" << g * 1e3 << " layer_step_ms=" << l * 1e3
              << " overhead_ratio=" << l / g << " allocations_per_step=" << allocated / steps
              << "\n";
}

}  // namespace

int main(int argc, char** argv) {
    boost::mpi::environment env(argc, argv, boost::mpi::threading::funneled);
    sn::mpi_communicator world;
    CLI::App app{"shardnet training-step benchmark"};
    std::vector<std::size_t> layers = {1024, 4096, 4096, 1024};
    std::size_t batch = 256, steps = 20, warmup = 3;
    bool layer_bench = false;
    app.add_option("--layers", layers, "widths (3 layers: column, row, column)")->delimiter(',');
    app.add_option("--batch", batch, "batch size");
    app.add_option("--steps", steps, "timed steps");
    app.add_option("--warmup", warmup, "untimed steps first");
    app.add_flag("--layer-bench", layer_bench, "also time one 4096->4096 layer vs its GEMMs");
    CLI11_PARSE(app, argc, argv);
    if (layers.size() != 4) {
        if (world.rank() == 0) std::cerr << "--layers needs 4 widths\n";
        return 2;
    }
    if (layer_bench && world.rank() == 0) bench_layer(4096, 4096, batch, steps);
    return bench_network(world, layers, batch, steps, warmup);
}
