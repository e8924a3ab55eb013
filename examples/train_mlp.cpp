// train_mlp: trains a model-parallel MLP classifier, the main job of shardnet.
//
//   mpiexec -n 2 ./train_mlp    # Fashion-MNIST, 784-256-256-10 split column,row,column
//   mpiexec -n 2 ./train_mlp --data synthetic --layers 64,256,256,10    # built-in data
//   mpiexec -n 4 ./train_mlp --data-parallel 2 --optimizer adamw --epochs 5
//   ./train_mlp --train train.csv --test test.csv --layers 784,512,10 --partition column,row
//
// The default data is Fashion-MNIST (60,000 training and 10,000 test images of 28x28 pixels, 10
// classes) from Debian's dataset-fashion-mnist; --data synthetic needs no files. The defaults
// (784-256-256-10, Adam, lr 0.002, batch 128, 10 epochs) are what we recommend for it on 2 ranks:
// about 0.90 test accuracy in well under a minute on two cores (README.md has the figures).
//
// The network is chosen at run time (shardnet::network): any depth, and per layer a partition
// (column, row, replicated, block2d) and an activation (--activation; relu for hidden layers
// and identity for the last by default). 2D layers run on --model-grid RxC. The last line
// printed is a machine-readable summary: final: epochs=E train_loss=X test_loss=Y
// test_accuracy=Z samples_per_s=R
//
// Fault tolerance: --checkpoint-dir DIR --checkpoint-every N saves a sharded checkpoint every N
// steps (keeping the newest --keep of this run); --resume continues from the newest intact one
// of the same run, and the run then ends bitwise as if never interrupted. A directory holding
// checkpoints is refused by a fresh run unless --overwrite. SHARDNET_TEST_KILL=RANK:STEP (tests
// only) makes that world rank kill itself with SIGKILL once STEP steps are done;
// SHARDNET_TEST_FAIL=RANK:STEP makes it throw an error the other ranks cannot see.
//
// Every error either stops every rank with the same message (bad options, bad data, ranks
// started differently) or aborts the whole job: shardnet::collective_main keeps that rule.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "agreed_command_line.hpp"
#include "shardnet/comm/collective_main.hpp"
#include "shardnet/cost/auto_plan.hpp"
#include "shardnet/io/output_file.hpp"
#include "shardnet/shardnet.hpp"
#include "shardnet/train/memory_preflight.hpp"

namespace sn = shardnet;
using real = float;

namespace {

/// Where Debian's dataset-fashion-mnist puts its four gzipped IDX files.
constexpr const char* fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
constexpr const char* fashion_mnist_files[] = {
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz"};

/// The command line, as parsed. Whole numbers are signed so that "-5" is an error, not 2^64-5.
struct config {
    std::vector<std::int64_t> layers = {784, 256, 256, 10};
    std::vector<std::string> partitions = {"column", "row", "column"};
    std::vector<std::string> activations;  // empty: relu for hidden layers, identity last
    std::string model_grid;                // "RxC"; empty: 1 x (world size / data_parallel)
    std::int64_t data_parallel = 1, epochs = 10, batch = 128;
    double lr = 2e-3, label_smoothing = 0.0, clip = 0.0;
    std::string optimizer = "adam";
    std::uint64_t seed = 1;
    std::string data = "fashion-mnist", data_dir = fashion_mnist_dir;
    std::string train_path, test_path, format = "csv", metrics;
    bool no_normalize = false;
    std::optional<bool> progress_bar;
    std::int64_t train_samples = 8000, test_samples = 2000;
    std::string checkpoint_dir, losses_path;
    std::int64_t checkpoint_every = 0, keep = 3;
    bool resume = false, checksum = false, overlap_gradients = false;
    std::string on_non_finite = "stop";
    bool overwrite = false;
    std::string report_dir;
    std::string precision = "fp32";
    std::int64_t reproducible_across = 0;
};

/// Every field of config, in order, with its command-line name and its part in the checks:
/// ranks must agree on all but the per-rank ones, and the run's identity (recorded in
/// checkpoints) is made of the identifies_run ones. A new field without an entry here does not
/// compile, so no option can go unchecked.
constexpr sn::setting_field config_fields[] = {
    {"--layers", sn::setting_role::identifies_run},
    {"--partition", sn::setting_role::same_on_ranks},  // checkpoints reshard
    {"--activation", sn::setting_role::identifies_run},
    {"--model-grid", sn::setting_role::same_on_ranks},
    {"--data-parallel", sn::setting_role::same_on_ranks},
    {"--epochs", sn::setting_role::identifies_run},  // the learning-rate schedule spans them
    {"--batch", sn::setting_role::identifies_run},
    {"--lr", sn::setting_role::identifies_run},
    {"--label-smoothing", sn::setting_role::identifies_run},
    {"--clip", sn::setting_role::identifies_run},
    {"--optimizer", sn::setting_role::identifies_run},
    {"--seed", sn::setting_role::identifies_run},
    // Which data and where from: the data's content (checksummed by the trainer) identifies
    // the run, not its path.
    {"--data", sn::setting_role::same_on_ranks},
    {"--data-dir", sn::setting_role::same_on_ranks},
    {"--train", sn::setting_role::same_on_ranks},
    {"--test", sn::setting_role::same_on_ranks},
    {"--format", sn::setting_role::same_on_ranks},
    {"--metrics", sn::setting_role::same_on_ranks},
    {"--no-normalize", sn::setting_role::identifies_run},
    {"--no-progress-bar", sn::setting_role::per_rank},
    {"--train-samples", sn::setting_role::identifies_run},
    {"--test-samples", sn::setting_role::identifies_run},
    {"--checkpoint-dir", sn::setting_role::same_on_ranks},
    {"--losses", sn::setting_role::same_on_ranks},
    {"--checkpoint-every", sn::setting_role::same_on_ranks},
    {"--keep", sn::setting_role::same_on_ranks},
    {"--resume", sn::setting_role::same_on_ranks},
    {"--checksum", sn::setting_role::same_on_ranks},
    {"--overlap-gradients", sn::setting_role::same_on_ranks},
    {"--on-non-finite", sn::setting_role::identifies_run},
    {"--overwrite", sn::setting_role::same_on_ranks},
    {"--report", sn::setting_role::same_on_ranks},
    // Not part of the run's identity: checkpoints hold fp32 master weights in either precision,
    // so a run may resume in the other one (as with --partition, the losses then follow a
    // different rounding).
    {"--precision", sn::setting_role::same_on_ranks},
    // Changes the last bits of sums, not the model: like --precision.
    {"--reproducible-across", sn::setting_role::same_on_ranks},
};

/// Settles --data from what was given: --train or --test without --data mean files. An option
/// of one data source given with another source is a usage error, never silently ignored.
void resolve_data(config& c, const CLI::App& app) {
    auto given = [&](const char* name) { return app.count(name) > 0; };
    if (!given("--data") && (given("--train") || given("--test"))) c.data = "files";
    auto only_for = [&](const char* option, const char* data) {
        if (given(option) && c.data != data)
            throw sn::error(std::string(option) + " is for --data " + data + ", got --data " +
                            c.data + (given("--data") ? "" : " (the default)"));
    };
    only_for("--data-dir", "fashion-mnist");
    only_for("--train-samples", "synthetic");
    only_for("--test-samples", "synthetic");
    only_for("--train", "files");
    only_for("--test", "files");
    only_for("--format", "files");
    if (c.data == "files" && c.train_path.empty())
        throw sn::error("--data files needs --train FILE (and optionally --test FILE)");
}

/// Usage errors: values CLI11 parsed but that make no sense. Same arguments, same message.
void validate(const config& c) {
    auto fail = [](const auto&... parts) {
        std::ostringstream message;
        (message << ... << parts);
        throw sn::error(message.str());
    };
    constexpr std::int64_t max_width = 2147483647;
    for (std::int64_t w : c.layers)
        if (w < 1 || w > max_width)
            fail("--layers: every width must be a whole number from 1 to ", max_width, ", got ", w);
    const bool automatic = c.partitions.size() == 1 && c.partitions[0] == "auto";
    if (!automatic && c.partitions.size() + 1 != c.layers.size())
        fail("--partition names ", c.partitions.size(), " layers but --layers gives ",
             c.layers.size(), " widths (expected ", c.partitions.size() + 1, ")");
    if (!automatic && std::count(c.partitions.begin(), c.partitions.end(), "auto") > 0)
        fail("--partition auto chooses every layer's partition: give it alone");
    if (!c.activations.empty() && c.activations.size() + 1 != c.layers.size())
        fail("--activation names ", c.activations.size(), " layers but --layers gives ",
             c.layers.size(), " widths (expected ", c.layers.size() - 1, ")");
    if (!c.model_grid.empty()) sn::parse_grid_shape(c.model_grid, "--model-grid");
    auto at_least = [&](std::int64_t v, std::int64_t low, const char* name) {
        if (v < low) fail(name, ": expected a whole number of at least ", low, ", got ", v);
    };
    at_least(c.data_parallel, 1, "--data-parallel");
    at_least(c.epochs, 1, "--epochs");
    at_least(c.batch, 1, "--batch");
    at_least(c.train_samples, 1, "--train-samples");
    at_least(c.test_samples, 0, "--test-samples");
    at_least(c.keep, 0, "--keep");
    at_least(c.checkpoint_every, 0, "--checkpoint-every");
    if (!std::isfinite(c.lr) || c.lr <= 0)
        fail("--lr: expected a positive finite number, got ", c.lr);
    if (!std::isfinite(c.clip) || c.clip < 0)
        fail("--clip: expected a finite number of at least 0 (0: off), got ", c.clip);
    at_least(c.reproducible_across, 0, "--reproducible-across");
    if (!(c.label_smoothing >= 0 && c.label_smoothing < 1))
        fail("--label-smoothing: expected a number in [0, 1), got ", c.label_smoothing);
    if (c.resume && c.overwrite) fail("--resume and --overwrite exclude each other");
    if ((c.resume || c.checkpoint_every > 0) && c.checkpoint_dir.empty())
        fail(c.resume ? "--resume" : "--checkpoint-every", " needs --checkpoint-dir");
}

/// The files a run reads: outputs may be none of them.
std::vector<std::filesystem::path> input_files(const config& c) {
    std::vector<std::filesystem::path> inputs;
    if (c.data == "fashion-mnist")
        for (const char* name : fashion_mnist_files)
            inputs.push_back(std::filesystem::path(c.data_dir) / name);
    for (const std::string& spec : {c.train_path, c.test_path}) {
        if (spec.empty()) continue;
        const auto comma = c.format == "idx" ? spec.find(',') : std::string::npos;
        inputs.emplace_back(spec.substr(0, comma));
        if (comma != std::string::npos) inputs.emplace_back(spec.substr(comma + 1));
    }
    return inputs;
}

/// Rank 0's check of every output before anything is computed.
void check_outputs(const config& c) {
    auto inputs = input_files(c);
    if (!c.checkpoint_dir.empty()) {
        for (const auto& input : inputs)
            if (sn::same_file(c.checkpoint_dir, input))
                throw sn::error("--checkpoint-dir '" + c.checkpoint_dir +
                                "' is also an input of this run");
        inputs.emplace_back(c.checkpoint_dir);
    }
    if (!c.metrics.empty()) sn::check_output_path(c.metrics, "--metrics", inputs);
    if (!c.losses_path.empty()) {
        if (!c.metrics.empty()) inputs.emplace_back(c.metrics);  // two outputs, one file
        sn::check_output_path(c.losses_path, "--losses", inputs);
    }
    if (!c.report_dir.empty()) {
        const std::filesystem::path dir = c.report_dir;
        if (!std::filesystem::is_directory(dir))
            throw sn::error("--report '" + c.report_dir + "': expected an existing directory");
        for (const char* name : {"confusion.csv", "per_class.csv"})
            sn::check_output_path(dir / name, "--report", inputs);
    }
}

/// Per-class accuracy and the confusion matrix of the test set, printed, and written as CSV
/// into --report DIR if given. Rank 0 prints; the files are written atomically, agreed.
void report_classes(const config& c, const std::vector<std::int64_t>& confusion,
                    std::size_t classes, sn::mpi_communicator& world) {
    std::ostringstream per_class, matrix, table;
    per_class << "class,samples,correct,accuracy\n";
    matrix << "true";
    for (std::size_t p = 0; p < classes; ++p)
        matrix << ",predicted_" << p;
    matrix << "\n";
    table << "per-class test accuracy:";
    for (std::size_t t = 0; t < classes; ++t) {
        std::int64_t samples = 0;
        matrix << t;
        for (std::size_t p = 0; p < classes; ++p) {
            samples += confusion[t * classes + p];
            matrix << ',' << confusion[t * classes + p];
        }
        matrix << "\n";
        const std::int64_t correct = confusion[t * classes + t];
        const double accuracy =
            samples > 0 ? static_cast<double>(correct) / static_cast<double>(samples) : 0.0;
        per_class << t << ',' << samples << ',' << correct << ',' << sn::shortest_decimal(accuracy)
                  << "\n";
        table << ' ' << t << '=' << std::fixed << std::setprecision(3) << accuracy;
    }
    if (world.rank() == 0 && classes <= 20) {
        std::cout << table.str() << "\nconfusion matrix (rows: true class, columns: predicted):\n";
        for (std::size_t t = 0; t < classes; ++t) {
            for (std::size_t p = 0; p < classes; ++p)
                std::cout << std::setw(6) << confusion[t * classes + p];
            std::cout << "\n";
        }
    }
    if (c.report_dir.empty()) return;
    sn::agree_on(world, [&] {
        if (world.rank() != 0) return;
        const std::filesystem::path dir = c.report_dir;
        sn::write_file_atomically(dir / "confusion.csv", matrix.str(), "--report");
        sn::write_file_atomically(dir / "per_class.csv", per_class.str(), "--report");
    });
}

/// SHARDNET_TEST_KILL=RANK:STEP: a deterministic stand-in for a node failing mid-run.
/// SHARDNET_TEST_FAIL=RANK:STEP: that rank alone throws after STEP steps, while the others go on
/// into the next step's collectives: an error no other rank can see (the job must abort).
std::function<void(std::size_t)> test_failure_hook(std::size_t world_rank) {
    unsigned long rank = 0, kill_step = 0, fail_step = 0;
    const char* kill = std::getenv("SHARDNET_TEST_KILL");
    const char* fail = std::getenv("SHARDNET_TEST_FAIL");
    const bool kills =
        kill && std::sscanf(kill, "%lu:%lu", &rank, &kill_step) == 2 && rank == world_rank;
    const bool fails =
        fail && std::sscanf(fail, "%lu:%lu", &rank, &fail_step) == 2 && rank == world_rank;
    if (!kills && !fails) return {};
    return [=](std::size_t done) {
        if (kills && done == kill_step) std::raise(SIGKILL);
        if (fails && done == fail_step)
            throw sn::error("injected failure after step " + std::to_string(done));
    };
}

struct data_sets {
    sn::dataset<real> train, test;
};

/// Fashion-MNIST's training and test sets from `dir`, where Debian's dataset-fashion-mnist
/// installs them. Pixels come out of load_idx in [0, 1] (byte / 255).
data_sets load_fashion_mnist(const std::string& dir) {
    const std::string install =
        ": install the Debian package dataset-fashion-mnist (apt-get install "
        "dataset-fashion-mnist), or pass --data synthetic";
    std::vector<std::string> paths, missing;
    for (const char* name : fashion_mnist_files) {
        paths.push_back((std::filesystem::path(dir) / name).string());
        std::error_code ec;
        if (!std::filesystem::is_regular_file(paths.back(), ec)) missing.push_back(name);
    }
    if (missing.size() == paths.size())
        throw sn::error("Fashion-MNIST not found in '" + dir + "'" + install);
    if (!missing.empty()) {
        std::string names;
        for (const auto& name : missing)
            names += (names.empty() ? "" : ", ") + name;
        throw sn::error("Fashion-MNIST incomplete in '" + dir + "': expected its four files, " +
                        names + " missing" + install);
    }
    sn::idx_options options;
    options.num_classes = 10;  // a corrupt label fails while loading, naming the file
    return {sn::load_idx<real>(paths[0], paths[1], options),
            sn::load_idx<real>(paths[2], paths[3], options)};
}

data_sets load_data(const config& c, const std::vector<std::size_t>& widths) {
    if (c.data == "fashion-mnist") return load_fashion_mnist(c.data_dir);
    if (c.data == "synthetic") {
        sn::synthetic_options o;
        o.samples = static_cast<std::size_t>(c.train_samples);
        o.width = widths.front();
        o.classes = widths.back();
        o.seed = c.seed;
        auto split = sn::make_synthetic_split<real>(o, static_cast<std::size_t>(c.test_samples));
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

/// The layers the command line asks for: its partitions and activations.
std::vector<sn::layer_spec> layer_specs(const config& c) {
    std::vector<sn::layer_spec> specs(c.partitions.size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
        specs[i].partition = c.partitions[i];
        specs[i].activation = !c.activations.empty()         ? c.activations[i]
                              : i + 1 == c.partitions.size() ? "identity"
                                                             : "relu";
    }
    return specs;
}

using net_type = sn::network<real, sn::model_group<sn::mpi_communicator>>;

int train(const config& c, sn::process_grid<sn::mpi_communicator>& grid) {
    auto& world = grid.world();
    const bool root = world.rank() == 0;
    std::vector<std::size_t> widths(c.layers.begin(), c.layers.end());
    const auto batch = static_cast<std::size_t>(c.batch);
    const auto replicas = static_cast<std::size_t>(c.data_parallel);
    // Every rank reads the data; errors are agreed on so all ranks stop together.
    data_sets data = sn::agree_on(world, [&] {
        data_sets d = load_data(c, widths);
        if (!c.no_normalize) {
            const bool files = c.data == "files";
            const std::string train_name = "training set '" + (files ? c.train_path : c.data) + "'";
            const std::string test_name = "test set '" + (files ? c.test_path : c.data) + "'";
            const auto scaler = sn::standardizer<real>::fit(d.train.features, train_name);
            scaler.apply(d.train.features, train_name);
            if (!d.test.empty()) scaler.apply(d.test.features, test_name);
        }
        return d;
    });

    const std::size_t replica_batch = (batch + replicas - 1) / replicas;
    const std::size_t slots = c.optimizer == "sgd" ? 1 : 2;
    const std::vector<sn::layer_spec> specs =
        sn::agree_on(world, [&] { return sn::resolve_layer_specs(layer_specs(c)); });
    std::vector<sn::partition_map> maps;
    for (const auto& s : specs)
        maps.push_back(sn::builtin_partition_map(s.partition));
    sn::check_memory(world,
                     sn::estimate_training_memory(maps, sizeof(real), widths, grid.model_grid(),
                                                  grid.model().position(), replica_batch, slots,
                                                  sn::parse_precision(c.precision)),
                     "this network");
    sn::network_options net_options;
    net_options.seed = c.seed;
    net_options.precision = sn::parse_precision(c.precision);
    net_options.reproducible_across = static_cast<std::size_t>(c.reproducible_across);
    net_type net(grid.model(), widths, specs, net_options);
    if (root) std::cout << net.plan(replica_batch, replicas) << std::flush;

    const std::size_t steps =
        static_cast<std::size_t>(c.epochs) * ((data.train.size() + batch - 1) / batch);
    sn::optimizer<real> opt(optimizer_for(c, steps));
    sn::trainer_options options;
    options.epochs = static_cast<std::size_t>(c.epochs);
    options.batch = batch;
    options.seed = c.seed;
    options.label_smoothing = c.label_smoothing;
    options.metrics_path = c.metrics;
    options.progress_bar = c.progress_bar;
    options.checkpoint_dir = c.checkpoint_dir;
    options.checkpoint_every = static_cast<std::size_t>(c.checkpoint_every);
    options.checkpoint_keep = static_cast<std::size_t>(c.keep);
    options.resume = c.resume;
    options.overwrite = c.overwrite;
    options.overlap_gradient_reduction = c.overlap_gradients;
    options.non_finite =
        c.on_non_finite == "skip" ? sn::non_finite_policy::skip_step : sn::non_finite_policy::stop;
    options.after_step = test_failure_hook(world.rank());
    options.run_settings =
        sn::describe_fields(c, config_fields, sn::setting_role::identifies_run, "train_mlp ");
    sn::trainer trainer(grid, net, opt, options);
    const auto result = trainer.fit(data.train, data.test.empty() ? nullptr : &data.test);

    // Exact-resume evidence: the full loss sequence (shortest round-trip digits) and a
    // checksum of every rank's weight shards.
    if (!c.losses_path.empty())
        sn::agree_on(world, [&] {
            if (!root) return;
            std::string text;
            for (double loss : result.step_losses)
                text += sn::shortest_decimal(loss) + '\n';
            sn::write_file_atomically(c.losses_path, text, "--losses");
        });
    if (c.checksum) {
        const auto mine = static_cast<std::int64_t>(sn::local_weights_checksum(net));
        std::vector<std::int64_t> all(world.size());
        world.all_gather(&mine, 1, all.data());
        if (root)
            std::cout << "checksum: weights=" << std::hex
                      << sn::crc32::of(all.data(), all.size() * sizeof(all[0])) << std::dec
                      << " losses=" << std::hex
                      << sn::crc32::of(result.step_losses.data(),
                                       result.step_losses.size() * sizeof(double))
                      << std::dec << " steps=" << result.step_losses.size() << std::endl;
    }

    if (!data.test.empty())
        report_classes(c, trainer.confusion_matrix(data.test), widths.back(), world);
    if (root) {
        const auto& last = result.epochs.back();
        std::cout << "final: epochs=" << c.epochs
                  << " train_loss=" << sn::shortest_decimal(last.train_loss);
        if (!data.test.empty())
            std::cout << " test_loss=" << sn::shortest_decimal(last.test_loss)
                      << " test_accuracy=" << sn::shortest_decimal(last.test_accuracy);
        std::cout << " samples_per_s=" << static_cast<long long>(last.samples_per_s) << std::endl;
    }
    return 0;
}

/// --partition auto: measures this machine (about 10 s at most) and sets the partitions, the
/// data-parallel replicas and the model grid to the planner's choice, printed before training.
/// Collective over world.
void plan_partitions(config& c, sn::mpi_communicator& world) {
    namespace sc = sn::cost;
    sc::network_shape net;
    net.widths.assign(c.layers.begin(), c.layers.end());
    net.batch = static_cast<std::size_t>(c.batch);
    net.optimizer_slots = c.optimizer == "sgd" ? 1 : 2;
    net.element_bytes = sizeof(real);
    net.compute = sn::parse_precision(c.precision);
    net.reproducible_across = static_cast<std::size_t>(c.reproducible_across);
    net.clips_gradients = c.clip > 0;
    // The built-in cluster's network figures stand where one rank has nothing to measure.
    sc::machine m = sc::cluster_machine();
    const auto report = sc::calibrate_for(world, m, net, 10.0);
    const sc::plan_choice choice =
        sn::agree_on(world, [&] { return sc::choose_plans(m, net, world.size()); });
    // Measurements are agreed, so every rank chose the same; a difference must not hang.
    const std::string line = choice.line();
    const bool same = sn::same_on_all_ranks(world, std::hash<std::string>{}(line));
    sn::agree_on(world, [&] {
        if (!same) throw sn::error("--partition auto: ranks chose different plans");
    });
    if (world.rank() == 0)
        std::cout << "planner: measured this machine in " << std::fixed << std::setprecision(1)
                  << report.seconds << std::defaultfloat << " s ("
                  << (report.collectives_measured ? "GEMMs and collectives" : "GEMMs")
                  << "); default "
                  << (choice.default_plan ? sc::partitions_text(choice.default_plan->partitions) +
                                                " grid=" + sc::grid_text(choice.default_plan->grid)
                                          : std::string("cannot run (--reproducible-across)"))
                  << ", best 1D " << sc::partitions_text(choice.best_1d.partitions)
                  << " grid=" << sc::grid_text(choice.best_1d.grid) << "\n"
                  << line << std::endl;
    c.partitions.clear();
    for (const auto kind : choice.chosen.partitions)
        c.partitions.emplace_back(sc::to_string(kind));
    c.data_parallel = static_cast<std::int64_t>(choice.chosen.grid.data);
    c.model_grid =
        std::to_string(choice.chosen.grid.rows) + "x" + std::to_string(choice.chosen.grid.cols);
}

int run(sn::mpi_communicator& world, int argc, char** argv) {
    config c;
    CLI::App app{"Train a model-parallel MLP classifier with shardnet"};
    app.add_option("--layers", c.layers, "widths: input,hidden...,classes")->delimiter(',');
    app.add_option("--partition", c.partitions,
                   "per layer: column, row, replicated or block2d (2D blocks over --model-grid; "
                   "consecutive block2d layers alternate orientation); or auto: the planner "
                   "measures this machine and chooses them, --data-parallel and --model-grid")
        ->delimiter(',')
        ->check(CLI::IsMember({"column", "row", "replicated", "block2d", "auto"}));
    app.add_option("--activation", c.activations,
                   "per layer: relu, gelu, tanh, sigmoid or identity (default: relu, and "
                   "identity for the last layer)")
        ->delimiter(',')
        ->check(CLI::IsMember({"relu", "gelu", "tanh", "sigmoid", "identity"}));
    app.add_option("--precision", c.precision,
                   "fp32, or bf16: mixed precision (fp32 master weights, gradients and optimizer "
                   "state; bf16 GEMM operands with fp32 accumulation; activations gathered in "
                   "bf16)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    app.add_option("--reproducible-across", c.reproducible_across,
                   "N: the same losses, bit for bit, on 1 to N model-parallel ranks (sums over "
                   "ranks become exact; 0: off, the fastest)");
    app.add_option("--data-parallel", c.data_parallel, "data-parallel replicas");
    app.add_option("--model-grid", c.model_grid,
                   "RxC: each model-parallel group as R rows x C columns of ranks (the world is "
                   "data-parallel x R x C; default 1 x world/data-parallel)");
    app.add_option("--epochs", c.epochs, "epochs");
    app.add_option("--batch", c.batch, "global batch size");
    app.add_option("--lr", c.lr, "learning rate");
    app.add_option("--optimizer", c.optimizer, "sgd, adam or adamw")
        ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
    app.add_option("--seed", c.seed, "seed of weights, data order and synthetic data");
    app.add_option("--data", c.data,
                   "fashion-mnist (the default: Debian's dataset-fashion-mnist), synthetic "
                   "(built-in, generated from --seed) or files (--train, --test); --train "
                   "alone implies files")
        ->check(CLI::IsMember({"fashion-mnist", "synthetic", "files"}));
    app.add_option("--data-dir", c.data_dir,
                   std::string("--data fashion-mnist: the directory of its four .gz files "
                               "(default ") +
                       fashion_mnist_dir + ")");
    app.add_option("--train", c.train_path,
                   "training set (csv file, or IMAGES,LABELS for idx; .gz or plain)");
    app.add_option("--test", c.test_path, "test set, same format");
    app.add_option("--format", c.format, "--data files: csv or idx")
        ->check(CLI::IsMember({"csv", "idx"}));
    app.add_flag("--no-normalize", c.no_normalize, "do not standardize features");
    app.add_option("--metrics", c.metrics, "write per-step metrics to this CSV file");
    app.add_option("--label-smoothing", c.label_smoothing, "label smoothing in [0, 1)");
    app.add_option("--clip", c.clip, "clip gradients to this global norm (0: off)");
    app.add_option("--train-samples", c.train_samples, "--data synthetic: training samples");
    app.add_option("--test-samples", c.test_samples, "--data synthetic: test samples");
    app.add_option("--checkpoint-dir", c.checkpoint_dir, "write checkpoints into this directory");
    app.add_option("--checkpoint-every", c.checkpoint_every, "save a checkpoint every N steps");
    app.add_option("--keep", c.keep, "keep the newest K checkpoints of this run (0: all)");
    app.add_flag("--resume", c.resume, "continue from the newest checkpoint in --checkpoint-dir");
    app.add_option("--report", c.report_dir,
                   "write per-class accuracy and the confusion matrix as CSV into this directory");
    app.add_flag("--overwrite", c.overwrite,
                 "remove the checkpoints already in --checkpoint-dir and start over");
    app.add_option("--on-non-finite", c.on_non_finite,
                   "a NaN/Inf loss or gradient: stop (error naming the step) or skip the step")
        ->check(CLI::IsMember({"stop", "skip"}));
    app.add_option("--losses", c.losses_path, "write every step's loss to this file");
    app.add_flag("--overlap-gradients", c.overlap_gradients,
                 "with --data-parallel: reduce each layer's gradients during backward");
    app.add_flag("--checksum", c.checksum, "print a checksum of the final weights and losses");
    bool lines = false;
    app.add_flag("--no-progress-bar", lines, "one line per epoch even on a terminal");

    // Ranks may have been started with different arguments: a usage error on any rank stops
    // every rank, with the same message and exit code.
    if (const auto stop = examples::parse_on_every_rank(world, app, "train_mlp", [&] {
            app.parse(argc, argv);
            if (lines) c.progress_bar = false;
            resolve_data(c, app);
            validate(c);
            if (c.partitions == std::vector<std::string>{"auto"})
                for (const char* chosen : {"--data-parallel", "--model-grid"})
                    if (app.count(chosen) > 0)
                        throw sn::error(std::string("--partition auto chooses ") + chosen +
                                        " itself: leave it out");
        }))
        return *stop;

    sn::agree_same_settings(world,
                            sn::describe_fields(c, config_fields, sn::setting_role::same_on_ranks),
                            "train_mlp's options");
    sn::agree_on(world, [&] {
        if (world.rank() == 0) check_outputs(c);
    });
    if (c.partitions == std::vector<std::string>{"auto"}) plan_partitions(c, world);
    const sn::grid_shape model_grid = c.model_grid.empty()
                                          ? sn::grid_shape{0, 0}
                                          : sn::parse_grid_shape(c.model_grid, "--model-grid");
    sn::process_grid<sn::mpi_communicator> grid(world, static_cast<std::size_t>(c.data_parallel),
                                                model_grid);
    return train(c, grid);
}

}  // namespace

int main(int argc, char** argv) {
    return sn::collective_main(argc, argv, "train_mlp",
                               [&](sn::mpi_communicator& world) { return run(world, argc, argv); });
}
