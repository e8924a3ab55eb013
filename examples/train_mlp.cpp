// train_mlp: trains a model-parallel MLP classifier, the main job of shardnet.
//
//   mpiexec -n 2 ./train_mlp                       # built-in data, 64-256-256-10,
//   column,row,column mpiexec -n 4 ./train_mlp --data-parallel 2 --optimizer adamw --epochs 5
//   ./train_mlp --train train.csv --test test.csv --layers 784,512,10 --partition column,row
//
// Partitions are compile-time policies; the command line picks among the instantiated
// combinations (up to four layers of column, row or replicated). The last line printed is a
// machine-readable summary: final: epochs=E train_loss=X test_loss=Y test_accuracy=Z
// samples_per_s=R
//
// Fault tolerance: --checkpoint-dir DIR --checkpoint-every N saves a sharded checkpoint every N
// steps (keeping the newest --keep); --resume continues from the newest one, and the run then
// ends bitwise as if never interrupted. SHARDNET_TEST_KILL=RANK:STEP (tests only) makes that
// world rank kill itself with SIGKILL once STEP steps are done.
#include <CLI/CLI.hpp>
#include <boost/mpi/environment.hpp>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "shardnet/shardnet.hpp"

namespace sn = shardnet;
using real = float;

namespace {

constexpr std::size_t max_layers = 4;

enum class partition_choice { column, row, replicated };

struct config {
    std::vector<std::size_t> layers = {64, 256, 256, 10};
    std::vector<partition_choice> partitions = {partition_choice::column, partition_choice::row,
                                                partition_choice::column};
    std::size_t data_parallel = 1, epochs = 10, batch = 64;
    double lr = 1e-3, label_smoothing = 0.0, clip = 0.0;
    std::string optimizer = "adam";
    std::uint64_t seed = 1;
    std::string train_path, test_path, format = "csv", metrics;
    bool no_normalize = false;
    std::optional<bool> progress_bar;
    std::size_t train_samples = 8000, test_samples = 2000;
    // checkpoints and fault tolerance
    std::string checkpoint_dir, losses_path;
    std::size_t checkpoint_every = 0, keep = 3;
    bool resume = false, checksum = false, overlap_gradients = false;
    std::string on_non_finite = "stop";
};

/// SHARDNET_TEST_KILL=RANK:STEP: a deterministic stand-in for a node failing mid-run.
std::function<void(std::size_t)> test_kill_hook(std::size_t world_rank) {
    const char* spec = std::getenv("SHARDNET_TEST_KILL");
    unsigned long rank = 0, step = 0;
    if (spec == nullptr || std::sscanf(spec, "%lu:%lu", &rank, &step) != 2 || rank != world_rank)
        return {};
    return [step](std::size_t done) {
        if (done == step) std::raise(SIGKILL);
    };
}

struct data_sets {
    sn::dataset<real> train, test;
};

data_sets load_data(const config& c) {
    if (c.train_path.empty()) {
        sn::synthetic_options o;
        o.samples = c.train_samples;
        o.width = c.layers.front();
        o.classes = c.layers.back();
        o.seed = c.seed;
        auto split = sn::make_synthetic_split<real>(o, c.test_samples);
        return {std::move(split.train), std::move(split.test)};
    }
    auto load = [&](const std::string& spec) {
        if (c.format == "csv") return sn::load_csv<real>(spec);
        const auto comma = spec.find(',');
        if (comma == std::string::npos)
            throw sn::error("--format idx takes IMAGES,LABELS file pairs, got '" + spec + "'");
        return sn::load_idx<real>(spec.substr(0, comma), spec.substr(comma + 1));
    };
    data_sets d{load(c.train_path), {}};
    if (!c.test_path.empty()) d.test = load(c.test_path);
    return d;
}

sn::optimizer_options optimizer_for(const config& c, std::size_t total_steps) {
    sn::optimizer_options o = c.optimizer == "sgd"     ? sn::sgd(c.lr, 0.9)
                              : c.optimizer == "adamw" ? sn::adamw(c.lr)
                                                       : sn::adam(c.lr);
    o.clip_norm = c.clip;
    o.schedule = sn::lr_schedule::cosine(total_steps / 20, total_steps, 0.05);
    return o;
}

template <class... Layers>
int train(const config& c, sn::process_grid<sn::mpi_communicator>& grid) {
    const bool root = grid.world().rank() == 0;
    // Every rank reads the data; errors are agreed on so all ranks stop together.
    data_sets data = sn::agree_on(grid.world(), [&] { return load_data(c); });
    if (!c.no_normalize) {
        const auto scaler = sn::standardizer<real>::fit(data.train.features);
        scaler.apply(data.train.features);
        if (!data.test.empty()) scaler.apply(data.test.features);
    }

    sn::network_options net_options;
    net_options.seed = c.seed;
    sn::sequential<Layers...> net(grid.model(), c.layers, net_options);
    const std::size_t replica_batch = (c.batch + c.data_parallel - 1) / c.data_parallel;
    if (root) std::cout << net.plan(replica_batch, c.data_parallel) << std::flush;

    const std::size_t steps = c.epochs * ((data.train.size() + c.batch - 1) / c.batch);
    sn::optimizer<real> opt(optimizer_for(c, steps));
    sn::trainer_options options;
    options.epochs = c.epochs;
    options.batch = c.batch;
    options.seed = c.seed;
    options.label_smoothing = c.label_smoothing;
    options.metrics_path = c.metrics;
    options.progress_bar = c.progress_bar;
    options.checkpoint_dir = c.checkpoint_dir;
    options.checkpoint_every = c.checkpoint_every;
    options.checkpoint_keep = c.keep;
    options.resume = c.resume;
    options.overlap_gradient_reduction = c.overlap_gradients;
    options.non_finite =
        c.on_non_finite == "skip" ? sn::non_finite_policy::skip_step : sn::non_finite_policy::stop;
    options.after_step = test_kill_hook(grid.world().rank());
    sn::trainer trainer(grid, net, opt, options);
    const auto result = trainer.fit(data.train, data.test.empty() ? nullptr : &data.test);

    // Exact-resume evidence: the full loss sequence (17 digits round-trip a double) and a
    // checksum of every rank's weight shards.
    if (root && !c.losses_path.empty()) {
        std::ofstream losses(c.losses_path);
        losses << std::setprecision(17);
        for (double loss : result.step_losses)
            losses << loss << '\n';
        if (!losses) throw sn::error("--losses: cannot write '" + c.losses_path + "'");
    }
    if (c.checksum) {
        const auto mine = static_cast<std::int64_t>(sn::local_weights_checksum(net));
        std::vector<std::int64_t> all(grid.world().size());
        grid.world().all_gather(&mine, 1, all.data());
        if (root)
            std::cout << "checksum: weights=" << std::hex
                      << sn::crc32::of(all.data(), all.size() * sizeof(all[0])) << std::dec
                      << " losses=" << std::hex
                      << sn::crc32::of(result.step_losses.data(),
                                       result.step_losses.size() * sizeof(double))
                      << std::dec << " steps=" << result.step_losses.size() << std::endl;
    }

    if (root) {
        const auto& last = result.epochs.back();
        std::cout << "final: epochs=" << c.epochs << " train_loss=" << last.train_loss
                  << " test_loss=" << last.test_loss << " test_accuracy=" << last.test_accuracy
                  << " samples_per_s=" << static_cast<long long>(last.samples_per_s) << std::endl;
    }
    return 0;
}

// Turns the run-time partition list into a compile-time layer list: hidden layers use relu,
// the last one is linear (its logits go to the loss).
template <class... Chosen>
int dispatch(const config& c, sn::process_grid<sn::mpi_communicator>& grid) {
    constexpr std::size_t index = sizeof...(Chosen);
    const bool last = index + 1 == c.partitions.size();
    auto next = [&]<class Partition>() {
        if (last)
            return train<Chosen..., sn::dense<real, Partition, sn::activation::identity>>(c, grid);
        if constexpr (index + 1 < max_layers)
            return dispatch<Chosen..., sn::dense<real, Partition, sn::activation::relu>>(c, grid);
        return 1;  // unreachable: the depth was checked
    };
    switch (c.partitions[index]) {
        case partition_choice::column:
            return next.template operator()<sn::column_split>();
        case partition_choice::row:
            return next.template operator()<sn::row_split>();
        case partition_choice::replicated:
            return next.template operator()<sn::replicated>();
    }
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    boost::mpi::environment env(argc, argv, boost::mpi::threading::funneled);
    sn::mpi_communicator world;
    config c;
    CLI::App app{"Train a model-parallel MLP classifier with shardnet"};
    std::vector<std::string> partition_names = {"column", "row", "column"};
    app.add_option("--layers", c.layers, "widths: input,hidden...,classes")->delimiter(',');
    app.add_option("--partition", partition_names, "per layer: column, row or replicated")
        ->delimiter(',')
        ->check(CLI::IsMember({"column", "row", "replicated"}));
    app.add_option("--data-parallel", c.data_parallel, "data-parallel replicas")
        ->check(CLI::PositiveNumber);
    app.add_option("--epochs", c.epochs, "epochs")->check(CLI::PositiveNumber);
    app.add_option("--batch", c.batch, "global batch size")->check(CLI::PositiveNumber);
    app.add_option("--lr", c.lr, "learning rate")->check(CLI::PositiveNumber);
    app.add_option("--optimizer", c.optimizer, "sgd, adam or adamw")
        ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
    app.add_option("--seed", c.seed, "seed of weights, data order and built-in data");
    app.add_option("--train", c.train_path, "training set (csv file, or IMAGES,LABELS for idx)");
    app.add_option("--test", c.test_path, "test set, same format");
    app.add_option("--format", c.format, "csv or idx")->check(CLI::IsMember({"csv", "idx"}));
    app.add_flag("--no-normalize", c.no_normalize, "do not standardize features");
    app.add_option("--metrics", c.metrics, "write per-step metrics to this CSV file");
    app.add_option("--label-smoothing", c.label_smoothing, "label smoothing in [0, 1)");
    app.add_option("--clip", c.clip, "clip gradients to this global norm (0: off)");
    app.add_option("--train-samples", c.train_samples, "built-in data: training samples");
    app.add_option("--test-samples", c.test_samples, "built-in data: test samples");
    app.add_option("--checkpoint-dir", c.checkpoint_dir, "write checkpoints into this directory");
    app.add_option("--checkpoint-every", c.checkpoint_every, "save a checkpoint every N steps")
        ->check(CLI::PositiveNumber);
    app.add_option("--keep", c.keep, "keep the newest K checkpoints (0: all)");
    app.add_flag("--resume", c.resume, "continue from the newest checkpoint in --checkpoint-dir");
    app.add_option("--on-non-finite", c.on_non_finite,
                   "a NaN/Inf loss or gradient: stop (error naming the step) or skip the step")
        ->check(CLI::IsMember({"stop", "skip"}));
    app.add_option("--losses", c.losses_path, "write every step's loss to this file");
    app.add_flag("--overlap-gradients", c.overlap_gradients,
                 "with --data-parallel: reduce each layer's gradients during backward");
    app.add_flag("--checksum", c.checksum, "print a checksum of the final weights and losses");
    bool lines = false;
    app.add_flag("--no-progress-bar", lines, "one line per epoch even on a terminal");
    try {
        app.parse(argc, argv);
        if (lines) c.progress_bar = false;
    } catch (const CLI::ParseError& e) {
        return world.rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
    }

    try {
        c.partitions.clear();
        for (const auto& name : partition_names)
            c.partitions.push_back(name == "column" ? partition_choice::column
                                   : name == "row"  ? partition_choice::row
                                                    : partition_choice::replicated);
        if (c.partitions.size() + 1 != c.layers.size())
            throw sn::error(sn::detail::concat("--partition names ", c.partitions.size(),
                                               " layers but --layers gives ", c.layers.size(),
                                               " widths (expected ", c.partitions.size() + 1, ")"));
        if (c.partitions.size() > max_layers)
            throw sn::error(sn::detail::concat("train_mlp is built for up to ", max_layers,
                                               " layers, got ", c.partitions.size()));
        sn::process_grid<sn::mpi_communicator> grid(world, c.data_parallel);
        return dispatch<>(c, grid);
    } catch (const sn::error& e) {
        if (world.rank() == 0) std::cerr << "train_mlp: error: " << e.what() << std::endl;
        return 1;
    }
}
