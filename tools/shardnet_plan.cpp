// shardnet_plan: predicts a training step's time from the cost model, and chooses partitions.
//
//   shardnet_plan --ranks 1024 --machine cluster --layers 8192,32768,32768,8192 --batch 512
//   shardnet_plan --ranks 2 --machine my.machine --layers 1024,4096,4096,1024
//                 --partition column,row,column
//   mpirun -np 2 shardnet_plan --calibrate --write here.machine --ranks 2 --batch 256
//                 --layers 1024,4096,4096,1024 --partition column,row,column --optimizer sgd
//   shardnet_plan --ranks 4 --machine here.machine --layers 1024,4096,4096,1024 --precision bf16
//
// --precision bf16 and --reproducible-across N plan what train_mlp runs with the same options:
// bf16 GEMM rates (measured by --calibrate), 2-byte activations and partial sums; chunked
// products and 8-byte integer sums (cost/step_model.hpp).
//
// --calibrate measures this machine (at most --budget seconds, 60 by default) with the library's
// own GEMM at the shapes the network needs and with mpi_communicator between the ranks it was
// started on; started on one rank, it measures no collective and keeps the network figures of
// --machine (docs/scaling.md). Machine-readable lines:
//   predicted: samples_per_s=R step_ms=T   (explicit partitions, or the plan auto chose)
//   chosen: P1,P2,... grid=DxRxC predicted_samples_per_s=R speedup_vs_default=X ...
//           ... speedup_vs_best_1d=Y       (auto only: the last line, all on one line; X is
//                                           none when the default plan cannot run)
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/collective_main.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/settings.hpp"
#include "shardnet/cost/auto_plan.hpp"
#include "shardnet/cost/calibrate.hpp"
#include "shardnet/cost/planner.hpp"

namespace sn = shardnet;
namespace sc = shardnet::cost;

namespace {

struct options {
    std::size_t ranks = 0, batch = 256, data_parallel = 1;
    std::vector<std::size_t> layers;
    std::vector<std::string> partitions = {"auto"};
    std::string machine = "cluster", write, model_grid, optimizer = "adam", precision = "fp32";
    std::size_t reproducible_across = 0;
    std::string scaling;
    std::size_t max_ranks = 1024;
    bool calibrate = false, verbose = false, clip = false;
    double budget = 60;
};

std::string fixed(double v, int digits = 3) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
    return buffer;
}

std::string describe(const sc::machine& m) {
    std::ostringstream out;
    out << "machine: " << m.name << ", latency " << fixed(m.latency_s * 1e6, 2) << " us, bandwidth "
        << fixed(m.bandwidth_bytes_per_s / 1e9, 2) << " GB/s, reduction "
        << (m.reduce_bytes_per_s > 0 ? fixed(m.reduce_bytes_per_s / 1e9, 2) + " GB/s" : "free")
        << ", element-wise passes "
        << (m.memory_bytes_per_s > 0 ? fixed(m.memory_bytes_per_s / 1e9, 2) + " GB/s" : "free")
        << ", " << fixed(m.memory_bytes / double(1u << 30), 1) << " GiB per rank, GEMM "
        << (m.gemm_table.empty() ? fixed(m.gemm_gflops, 0) + " GFLOP/s at every shape"
                                 : std::to_string(m.gemm_table.size()) + " measured shapes");
    return out.str();
}

/// One layer's breakdown, in milliseconds.
std::string layer_line(const sc::layer_prediction& l) {
    std::ostringstream out;
    std::string name(to_string(l.partition));
    if (l.partition == sc::partition_kind::block2d)
        name += l.orient == sc::orientation::a ? "(A)" : "(B)";
    out << "  " << name << std::string(name.size() < 14 ? 14 - name.size() : 1, ' ') << "local "
        << l.local_rows << " x " << l.local_cols << "  gemm " << fixed(l.gemm_s() * 1e3)
        << " ms, model comm "
        << fixed((l.communication_s() - l.communication_s(sc::step_phase::data_parallel)) * 1e3)
        << " ms, data-parallel " << fixed(l.communication_s(sc::step_phase::data_parallel) * 1e3)
        << " ms, element-wise " << fixed(l.elementwise_s * 1e3) << " ms, total "
        << fixed(l.seconds() * 1e3) << " ms, " << fixed(l.memory_bytes / double(1u << 20), 1)
        << " MiB";
    return out.str();
}

void print_step(const sc::step_prediction& s, bool collectives) {
    for (std::size_t i = 0; i < s.layers.size(); ++i) {
        const auto& l = s.layers[i];
        std::cout << "layer " << i + 1 << " (" << l.in << " x " << l.out << "):\n"
                  << layer_line(l) << "\n";
        if (collectives)
            for (const auto& c : l.collectives)
                std::cout << "      " << to_string(c.phase) << ": "
                          << (c.kind == sc::collective_kind::all_reduce ? "all-reduce"
                                                                        : "all-gather")
                          << " of " << c.elements << " elements (" << c.bytes() << " bytes) over "
                          << c.group << " ranks (" << to_string(c.cost.algorithm) << ") "
                          << fixed(c.cost.seconds * 1e3) << " ms\n";
    }
    double loss = 0;
    for (const auto& c : s.step_collectives)
        loss += c.cost.seconds;
    std::cout << "loss and bookkeeping collectives: " << fixed(loss * 1e3) << " ms\n";
    std::cout << "step: grid " << sc::grid_text(s.grid) << ", " << s.replica_batch
              << " rows per replica, " << fixed(s.seconds * 1e3) << " ms, "
              << fixed(s.memory_bytes / double(1u << 30), 2) << " GiB per rank\n";
}

sc::world_grid explicit_grid(const options& o) {
    if (o.ranks % o.data_parallel != 0)
        throw sn::error(sn::detail::concat("--data-parallel: expected a divisor of --ranks ",
                                           o.ranks, ", got ", o.data_parallel));
    const std::size_t model = o.ranks / o.data_parallel;
    if (o.model_grid.empty()) return {o.data_parallel, 1, model};
    const sn::grid_shape g = sn::parse_grid_shape(o.model_grid, "--model-grid");
    if (g.size() != model)
        throw sn::error(sn::detail::concat("--model-grid: expected RxC with R*C = ", model,
                                           " (ranks / data-parallel), got '", o.model_grid, "'"));
    return {o.data_parallel, g.rows, g.cols};
}

/// The squarest R x C of `model` ranks (R <= C).
sc::world_grid square_grid(std::size_t model) {
    std::size_t r = 1;
    for (std::size_t d = 1; d * d <= model; ++d)
        if (model % d == 0) r = d;
    return {1, r, model / r};
}

/// One row per P: samples/s of 1D over all P ranks (the default), the best 1D plan, block2d on
/// the squarest grid, pure data parallelism, and the planner's choice; nan where it does not
/// fit in memory (or P exceeds the batch for data parallelism).
void print_scaling(const sc::machine& m, sc::network_shape base, const options& o) {
    std::cout << "# " << o.scaling << " scaling on machine " << m.name << ", global batch "
              << base.batch << (o.scaling == "weak" ? ", widths times sqrt(P)" : "") << "\n"
              << "# P default_1d best_1d block2d data_parallel planner planner_grid "
                 "planner_partitions widths\n";
    auto rate = [&](const sc::step_prediction& s) {
        return s.memory_bytes <= m.memory_bytes ? fixed(s.samples_per_s(), 1) : std::string("nan");
    };
    // nan where the strategy cannot run at all (reproducible_across: block2d, or a model group
    // larger than N).
    auto rate_of = [&](auto&& predict) {
        try {
            return rate(predict());
        } catch (const sn::error&) {
            return std::string("nan");
        }
    };
    for (std::size_t p = 1; p <= o.max_ranks; p *= 2) {
        sc::network_shape net = base;
        if (o.scaling == "weak")
            for (auto& w : net.widths)
                w = static_cast<std::size_t>(
                    std::lround(static_cast<double>(w) * std::sqrt(static_cast<double>(p))));
        std::vector<sc::partition_kind> all2d(net.layers(), sc::partition_kind::block2d);
        std::vector<sc::partition_kind> replicated(net.layers(), sc::partition_kind::replicated);
        std::string widths;
        for (auto w : net.widths) {
            if (!widths.empty()) widths += '-';
            widths += std::to_string(w);
        }
        std::cout << p << " " << rate_of([&] { return sc::default_plan(m, net, p).prediction; })
                  << " " << rate_of([&] {
                         return sc::best_plan(m, net, p, sc::partition_family::one_d).prediction;
                     })
                  << " " << rate_of([&] { return sc::predict_step(m, net, square_grid(p), all2d); })
                  << " "
                  << (p <= net.batch ? rate(sc::predict_step(m, net, {p, 1, 1}, replicated))
                                     : std::string("nan"))
                  << " ";
        try {
            const auto best = sc::best_plan(m, net, p, sc::partition_family::all);
            std::cout << rate(best.prediction) << " " << sc::grid_text(best.grid) << " "
                      << sc::partitions_text(best.partitions);
        } catch (const sn::error&) {
            std::cout << "nan - -";
        }
        std::cout << " " << widths << "\n";
    }
}

int run(sn::mpi_communicator& world, int argc, char** argv) {
    options o;
    CLI::App app{"Predict a shardnet training step's time and choose partitions"};
    app.add_option("--ranks", o.ranks, "ranks to plan for (not with --scaling)");
    app.add_option("--layers", o.layers, "widths: input,hidden...,output")
        ->delimiter(',')
        ->required();
    app.add_option("--batch", o.batch, "global batch size (a replica takes ceil(batch / D))");
    app.add_option("--partition", o.partitions,
                   "per layer column, row, replicated or block2d; or auto to plan")
        ->delimiter(',');
    app.add_option("--machine", o.machine, "cluster (built-in) or a machine file");
    app.add_flag("--calibrate", o.calibrate, "measure this machine first");
    app.add_option("--write", o.write, "with --calibrate: write the measured machine file here");
    app.add_option("--budget", o.budget, "with --calibrate: seconds it may take");
    app.add_option("--data-parallel", o.data_parallel, "explicit partitions: replicas D");
    app.add_option("--model-grid", o.model_grid, "explicit partitions: model grid RxC");
    app.add_option("--optimizer", o.optimizer, "sgd (1 state copy) or adam (2)")
        ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
    app.add_option("--precision", o.precision,
                   "fp32, or bf16 mixed precision (as train_mlp --precision)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    app.add_option("--reproducible-across", o.reproducible_across,
                   "N: sums over the model group reproducible on 1 to N ranks (as train_mlp)");
    app.add_flag("--clip", o.clip,
                 "the optimizer clips gradients by their global norm (as train_mlp --clip)");
    app.add_flag("--verbose", o.verbose, "print every collective");
    app.add_option("--scaling", o.scaling,
                   "strong: --layers and --batch on P = 1, 2, 4, ... --max-ranks; weak: every "
                   "width times sqrt(P); prints a table of samples/s per strategy")
        ->check(CLI::IsMember({"strong", "weak"}));
    app.add_option("--max-ranks", o.max_ranks, "with --scaling: the largest P");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // Every rank parses the same command line, so all fail or all succeed together.
        if (world.rank() == 0) app.exit(e);
        return e.get_exit_code();
    }
    // Ranks started with different options would calibrate different shapes, pairing off
    // unrelated collectives in calibrate(): compare them first, as train_mlp does, and stop
    // every rank with the option that differs.
    sn::settings given;
    for (const CLI::Option* option : app.get_options()) {
        if (option->count() == 0) continue;
        std::string value;
        for (const std::string& result : option->results())
            value += (value.empty() ? "" : ",") + result;
        given.set(option->get_name(), value);
    }
    sn::agree_same_settings(world, given, "shardnet_plan's options");
    const bool root = world.rank() == 0;
    const bool automatic = o.partitions.size() == 1 && o.partitions[0] == "auto";
    auto agreed = [&](auto&& f) {
        try {
            return f();
        } catch (const sn::error& e) {
            throw sn::agreed_error(e.what(), world.size());  // same input, same outcome
        }
    };

    sc::network_shape net;
    net.widths = o.layers;
    net.batch = o.batch;
    net.optimizer_slots = o.optimizer == "sgd" ? 1 : 2;
    net.compute = sn::parse_precision(o.precision);
    net.reproducible_across = o.reproducible_across;
    net.clips_gradients = o.clip;
    std::vector<sc::partition_kind> partitions;
    sc::world_grid grid;
    sc::machine m = agreed([&] {
        sc::check_shape(net, {});
        if (o.calibrate && !o.scaling.empty())
            throw sn::error("--scaling: expected without --calibrate (it plans a machine file)");
        if (!o.scaling.empty()) return sc::machine_named(o.machine);
        if (o.ranks == 0) throw sn::error("--ranks: expected at least 1, got 0");
        if (!automatic) {
            if (o.partitions.size() != net.layers())
                throw sn::error(sn::detail::concat("--partition: expected ", net.layers(),
                                                   " partitions (one per layer) or auto, got ",
                                                   o.partitions.size()));
            for (const auto& p : o.partitions)
                partitions.push_back(sc::parse_partition(p));
            grid = explicit_grid(o);
        }
        if (!o.write.empty() && !o.calibrate)
            throw sn::error("--write: expected with --calibrate (it writes the measured machine)");
        return sc::machine_named(o.machine);
    });

    if (o.calibrate) {
        // The shapes to measure: the explicit plan's, or those of the plans the planner weighs
        // with the flat rate of the machine given (the default, the best 1D and the best plan);
        // a shape no plan of these runs is priced by its nearest measured neighbour.
        std::vector<sc::gemm_shape> shapes;
        agreed([&] {  // every rank plans the same, so a plan that fits nowhere stops them all
            if (!automatic)
                sc::add_gemm_shapes(shapes, sc::predict_step(m, net, grid, partitions));
            else {
                const sc::plan_choice c = sc::choose_plans(m, net, o.ranks);
                if (c.default_plan) sc::add_gemm_shapes(shapes, c.default_plan->prediction);
                for (const sc::plan* p : {&c.best_1d, &c.chosen})
                    sc::add_gemm_shapes(shapes, p->prediction);
            }
        });
        sc::calibration_options co;
        // GEMMs take half the budget, collectives a third, the memory pass the rest.
        co.gemm_budget_s = o.budget * 0.5;
        co.collective_budget_s = o.budget * 0.3;
        co.memory_budget_s = std::min(2.0, o.budget * 0.05);
        const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
        m.name = "calibrated";
        const auto report = sc::calibrate(world, m, shapes, co);
        // Memory per rank: this machine's, shared by the ranks started here.
        if (pages > 0 && page > 0)
            m.memory_bytes = static_cast<double>(pages) * static_cast<double>(page) /
                             static_cast<double>(world.size());
        if (root) {
            std::cout << "calibrated in " << fixed(report.seconds, 1) << " s on "
                      << report.world_size << " rank(s)\n";
            for (const auto& r : m.gemm_table)
                std::cout << "  gemm " << (r.operands == sn::precision::bf16 ? "bf16 " : "")
                          << to_string(r.kind) << " " << r.m << " x " << r.n << " x " << r.k << ": "
                          << fixed(r.gflops, 1) << " GFLOP/s\n";
            std::cout << "  element-wise (SGD-like pass): " << fixed(m.memory_bytes_per_s / 1e9, 2)
                      << " GB/s\n";
            if (report.collectives_measured) {
                for (const auto& s : report.samples)
                    std::cout << "  " << s.kind << " of " << s.bytes << " bytes over "
                              << report.world_size << " ranks: " << fixed(s.seconds * 1e6, 1)
                              << " us\n";
                std::cout << "  fitted: latency " << fixed(m.latency_s * 1e6, 2)
                          << " us, bandwidth " << fixed(m.bandwidth_bytes_per_s / 1e9, 2)
                          << " GB/s, reduction "
                          << (m.reduce_bytes_per_s > 0 ? fixed(m.reduce_bytes_per_s / 1e9, 2)
                                                       : std::string("free"))
                          << "\n";
            } else {
                std::cout << "  collectives: not measured on 1 rank; latency and bandwidth are "
                             "those of --machine "
                          << o.machine << " (start under mpirun -np N to measure them)\n";
            }
        }
        // Rank 0 writes; every rank learns whether it could.
        sn::agree_on(world, [&] {
            if (!root || o.write.empty()) return;
            std::ofstream out(o.write, std::ios::binary);
            out << sc::write_machine(m);
            if (!out.flush())
                throw sn::error(sn::detail::concat("--write '", o.write, "' cannot be written"));
            std::cout << "wrote " << o.write << "\n";
        });
    }
    // Plans are computed on every rank (the same on each), so that an error stops all of them.
    std::optional<sc::plan_choice> choice;
    std::optional<sc::step_prediction> explicit_step;
    if (automatic && o.scaling.empty()) agreed([&] { choice = sc::choose_plans(m, net, o.ranks); });
    if (!automatic && o.scaling.empty())
        agreed([&] { explicit_step = sc::predict_step(m, net, grid, partitions); });
    if (!root) return 0;
    if (!o.scaling.empty()) {
        print_scaling(m, net, o);
        return 0;
    }
    std::cout << describe(m) << "\n";

    if (!automatic) {
        const sc::step_prediction& s = *explicit_step;
        print_step(s, o.verbose);
        if (s.memory_bytes > m.memory_bytes)
            std::cout << "warning: needs " << fixed(s.memory_bytes / double(1u << 30), 2)
                      << " GiB per rank, the machine has "
                      << fixed(m.memory_bytes / double(1u << 30), 2) << "\n";
        std::cout << "predicted: samples_per_s=" << fixed(s.samples_per_s(), 1)
                  << " step_ms=" << fixed(s.seconds * 1e3) << std::endl;
        return 0;
    }

    const sc::plan* best = &choice->chosen;
    std::cout << "network: " << net.widths.size() - 1 << " layers, global batch " << net.batch
              << ", " << o.optimizer << ", " << o.precision << ", " << o.ranks << " ranks";
    if (net.reproducible_across) std::cout << ", reproducible across " << net.reproducible_across;
    if (net.clips_gradients) std::cout << ", clipping";
    std::cout << "\n";
    std::cout << "per layer and partition on the chosen grid " << sc::grid_text(best->grid)
              << " (input arriving in the layout the partition wants):\n";
    for (std::size_t i = 0; i < net.layers(); ++i) {
        std::cout << "layer " << i + 1 << " (" << net.widths[i] << " x " << net.widths[i + 1]
                  << "):\n";
        for (auto k : {sc::partition_kind::column, sc::partition_kind::row,
                       sc::partition_kind::replicated, sc::partition_kind::block2d})
            for (auto orient : {sc::orientation::a, sc::orientation::b}) {
                if (orient == sc::orientation::b && k != sc::partition_kind::block2d) continue;
                if (k == sc::partition_kind::block2d && net.reproducible_across) continue;
                const auto l = sc::predict_layer(m, net, best->grid, i, k, orient,
                                                 sc::detail::input_of(k, orient));
                std::cout << layer_line(l) << "\n";
            }
    }
    auto summary = [&](const char* name, const sc::plan& p) {
        std::cout << name << ": " << sc::partitions_text(p.partitions)
                  << " grid=" << sc::grid_text(p.grid)
                  << " step_ms=" << fixed(p.prediction.seconds * 1e3)
                  << " samples_per_s=" << fixed(p.prediction.samples_per_s(), 1)
                  << " memory=" << fixed(p.prediction.memory_bytes / double(1u << 30), 2) << "GiB"
                  << (p.prediction.memory_bytes > m.memory_bytes ? " (does not fit)" : "") << "\n";
    };
    if (choice->default_plan)
        summary("default", *choice->default_plan);
    else
        std::cout << "default: cannot run (a model group of all " << o.ranks
                  << " ranks is more than --reproducible-across " << net.reproducible_across
                  << ")\n";
    summary("best_1d", choice->best_1d);
    summary("best", *best);
    std::cout << "chosen plan in detail:\n";
    print_step(best->prediction, o.verbose);
    std::cout << "predicted: samples_per_s=" << fixed(best->prediction.samples_per_s(), 1)
              << " step_ms=" << fixed(best->prediction.seconds * 1e3) << "\n";
    std::cout << choice->line() << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    return sn::collective_main(argc, argv, "shardnet_plan",
                               [&](sn::mpi_communicator& world) { return run(world, argc, argv); });
}
