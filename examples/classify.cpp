// classify: labels images with a network that train_mlp trained, loaded from its checkpoint on
// any number of ranks, and prints the accuracy.
//
//   mpiexec -n 2 ./train_mlp --checkpoint-dir ck --checkpoint-every 1000   # train, save
//   mpiexec -n 3 ./classify --checkpoint-dir ck                 # Fashion-MNIST's test set
//   mpiexec -n 4 ./classify --checkpoint-dir ck --partition block2d,block2d,block2d
//                           --model-grid 2x2 --grid grid.png    # (one line) and a picture
//   mpiexec -n 4 ./classify --checkpoint-dir ck --data-parallel 2  # 2 replicas of 2 ranks
//
// The network (widths, activations, bias) comes from the checkpoint's manifest; how it is split
// is this run's choice: the checkpoint reshards on load to any rank count, grid and partitions
// (by default column, row, column, ... over all ranks). With --data-parallel R the world holds R
// replicas of the network, each split over world size / R ranks, and the batches of images are
// dealt to them in turn (each batch whole to one replica, the batch one replica alone would
// run: the predictions, and the accuracy, do not depend on R). The last line printed is
// classified: samples=N correct=K accuracy=A ranks=P replicas=R, with A printed as train_mlp
// prints its test_accuracy, so that the two can be compared digit for digit.
//
// Standardization: train_mlp standardizes features with the training set's mean and standard
// deviation, and its checkpoints do not store them. They need not: the checkpoint records a
// checksum of the standardized training set (data.train in its run identity), so classify
// recomputes the statistics from the training images and checks them against that checksum.
// A wrong training set, or statistics that would differ in one bit, stop with an error instead
// of a silently lower accuracy. A run with --no-normalize is recognized the same way.
//
// --grid FILE.png draws the first --grid-count test images with their predicted and true
// labels, misclassified ones in red, through gnuplot (Debian's gnuplot-nox).
//
// Every error stops every rank with the same message (shardnet::collective_main).
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "agreed_command_line.hpp"
#include "shardnet/comm/collective_main.hpp"
#include "shardnet/io/output_file.hpp"
#include "shardnet/shardnet.hpp"

namespace sn = shardnet;
using real = float;
namespace fs = std::filesystem;

namespace {

/// Where Debian's dataset-fashion-mnist puts its gzipped IDX files.
constexpr const char* fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
/// Fashion-MNIST's classes, by label.
constexpr const char* fashion_mnist_classes[] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};

struct config {
    std::string checkpoint_dir;
    std::vector<std::string> partitions;  // empty: column, row, column, ...
    std::string model_grid;               // "RxC"; empty: 1 x (world size / data_parallel)
    std::int64_t data_parallel = 1;
    std::string data_dir = fashion_mnist_dir;
    std::string train_spec, test_spec;  // IMAGES,LABELS; empty: Fashion-MNIST's
    std::int64_t batch = 1000;
    std::string grid_png;
    std::int64_t grid_count = 36;
};

/// Ranks must run the same options: one list, checked by agree_same_settings.
constexpr sn::setting_field config_fields[] = {
    {"--checkpoint-dir", sn::setting_role::same_on_ranks},
    {"--partition", sn::setting_role::same_on_ranks},
    {"--model-grid", sn::setting_role::same_on_ranks},
    {"--data-parallel", sn::setting_role::same_on_ranks},
    {"--data-dir", sn::setting_role::same_on_ranks},
    {"--train", sn::setting_role::same_on_ranks},
    {"--test", sn::setting_role::same_on_ranks},
    {"--batch", sn::setting_role::same_on_ranks},
    {"--grid", sn::setting_role::same_on_ranks},
    {"--grid-count", sn::setting_role::same_on_ranks},
};

/// An IDX images/labels pair: where it is and how messages name it.
struct idx_pair {
    std::string images, labels;
};

/// "IMAGES,LABELS" as given to --train or --test, or Fashion-MNIST's pair of that kind.
idx_pair data_files(const config& c, const std::string& spec, const char* option,
                    const char* fashion_prefix) {
    if (spec.empty()) {
        const fs::path dir = c.data_dir;
        return {(dir / (std::string(fashion_prefix) + "-images-idx3-ubyte.gz")).string(),
                (dir / (std::string(fashion_prefix) + "-labels-idx1-ubyte.gz")).string()};
    }
    const auto comma = spec.find(',');
    if (comma == std::string::npos || spec.find(',', comma + 1) != std::string::npos)
        throw sn::error(std::string(option) + ": expected IMAGES,LABELS (IDX files, gzipped or " +
                        "not), got '" + spec + "'");
    return {spec.substr(0, comma), spec.substr(comma + 1)};
}

/// Loads an IDX pair whose labels must be below `classes`; a missing default set names the
/// package that provides it.
sn::dataset<real> load_pair(const idx_pair& files, bool fashion_default, std::size_t classes) {
    if (fashion_default)
        for (const auto& path : {files.images, files.labels})
            if (std::error_code ec; !fs::is_regular_file(path, ec))
                throw sn::error("Fashion-MNIST file '" + path +
                                "' not found: install the Debian package dataset-fashion-mnist "
                                "(apt-get install dataset-fashion-mnist), or pass --train and "
                                "--test");
    sn::idx_options options;
    options.num_classes = classes;
    return sn::load_idx<real>(files.images, files.labels, options);
}

/// The newest checkpoint in `dir` whose manifest reads, or `dir` itself if it is one (holds a
/// manifest.bin). Damaged newer ones are named on stderr by rank 0. Not collective.
struct chosen_checkpoint {
    fs::path path;
    sn::checkpoint_manifest manifest;
    std::string skipped;  ///< newer checkpoints passed over, and why
};

chosen_checkpoint find_checkpoint(const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw sn::error("--checkpoint-dir '" + dir + "': no such directory");
    if (fs::exists(fs::path(dir) / "manifest.bin", ec))
        return {dir, sn::read_manifest(fs::path(dir) / "manifest.bin"), {}};
    chosen_checkpoint chosen;
    for (auto& entry : sn::scan_checkpoints(dir)) {
        if (entry.manifest) {
            chosen.path = entry.path;
            chosen.manifest = std::move(*entry.manifest);
            return chosen;
        }
        chosen.skipped += "skipped '" + entry.path.string() + "': " + entry.problem + "\n";
    }
    throw sn::error("--checkpoint-dir '" + dir + "': " +
                    (chosen.skipped.empty()
                         ? std::string("holds no checkpoint (train_mlp --checkpoint-dir DIR "
                                       "--checkpoint-every N writes them)")
                         : "holds no readable checkpoint:\n" + chosen.skipped));
}

/// The standardization the checkpoint's training run applied, recomputed from the training
/// set and checked against the checksum of the standardized training set that the run
/// recorded. Nothing (no standardization) if the run used --no-normalize. Not collective.
std::optional<sn::standardizer<real>> training_standardizer(const sn::checkpoint_manifest& m,
                                                            const config& c, std::size_t classes) {
    const sn::settings identity = sn::settings::parse(m.position.run_settings);
    const auto recorded = identity.get("data.train");
    if (!recorded)
        throw sn::error(
            "checkpoint records no training-set checksum (written by a shardnet older "
            "than checkpoint format 2, or not by a trainer): the standardization of "
            "its features cannot be recovered");
    const idx_pair files = data_files(c, c.train_spec, "--train", "train");
    sn::dataset<real> train = load_pair(files, c.train_spec.empty(), classes);
    const std::string name = "training set '" + files.images + "'";
    const std::string raw = sn::data_fingerprint(train);
    if (raw == *recorded) return std::nullopt;  // trained with --no-normalize
    auto scaler = sn::standardizer<real>::fit(train.features, name);
    scaler.apply(train.features, name);
    const std::string standardized = sn::data_fingerprint(train);
    if (standardized != *recorded)
        throw sn::error(name + " is not the one the checkpoint was trained on: the run recorded " +
                        *recorded + ", these images give " + standardized +
                        " (pass that run's --train IMAGES,LABELS; its mean and standard "
                        "deviation standardize the images to classify)");
    return scaler;
}

/// The default partitions: column, row, column, ...: the Megatron pairs, one all-reduce each.
std::vector<sn::layer_spec> layer_specs(const config& c, const sn::checkpoint_manifest& m) {
    if (!c.partitions.empty() && c.partitions.size() != m.layers.size())
        throw sn::error("--partition names " + std::to_string(c.partitions.size()) +
                        " layers, the checkpoint's network has " + std::to_string(m.layers.size()));
    std::vector<sn::layer_spec> specs(m.layers.size());
    for (std::size_t i = 0; i < specs.size(); ++i) {
        specs[i].partition =
            c.partitions.empty() ? (i % 2 == 0 ? "column" : "row") : c.partitions[i];
        specs[i].activation = m.layers[i].activation;
        if (m.layers[i].bias != m.layers.front().bias)
            throw sn::error("checkpoint: layer " + std::to_string(i + 1) +
                            " has a bias and layer 1 has none, or the reverse: a network "
                            "with bias on some layers only is not supported");
    }
    return specs;
}

/// The network the manifest describes: its widths and activations, this run's partitions.
std::vector<std::size_t> widths_of(const sn::checkpoint_manifest& m) {
    std::vector<std::size_t> widths;
    for (const auto& layer : m.layers) {
        if (!widths.empty() && widths.back() != layer.in)
            throw sn::error("checkpoint: layer " + std::to_string(widths.size()) + " outputs " +
                            std::to_string(widths.back()) + " features, the next takes " +
                            std::to_string(layer.in));
        if (widths.empty()) widths.push_back(static_cast<std::size_t>(layer.in));
        widths.push_back(static_cast<std::size_t>(layer.out));
    }
    if (widths.empty()) throw sn::error("checkpoint: holds a network of no layers");
    return widths;
}

/// A label's name in the grid: Fashion-MNIST's class name, or the number.
std::string class_name(const config& c, std::size_t label) {
    if (c.test_spec.empty() && label < std::size(fashion_mnist_classes))
        return fashion_mnist_classes[label];
    return std::to_string(label);
}

/// gnuplot's string syntax: double quotes, with '"' and '\' escaped.
std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (char ch : text) {
        if (ch == '"' || ch == '\\') out += '\\';
        out += ch;
    }
    return out + "\"";
}

/// Draws the first `pixels.size() / side²` images (grey bytes, row-major, top row first) in a
/// grid, each titled "predicted / true", misclassified ones in red with a red frame, and
/// writes the PNG to `png` atomically: gnuplot renders into a temporary directory and the
/// finished file replaces `png` in one rename. Not collective (rank 0 draws).
/// @throws error naming gnuplot-nox if gnuplot cannot be run, or gnuplot's failure.
void draw_grid(const fs::path& png, const std::vector<unsigned char>& pixels, std::size_t side,
               const std::vector<std::size_t>& predicted, const std::vector<std::size_t>& truth,
               const config& c) {
    const std::size_t count = predicted.size();
    const auto columns = static_cast<std::size_t>(std::ceil(std::sqrt(double(count))));
    const std::size_t rows = (count + columns - 1) / columns;
    fs::path work = fs::temp_directory_path() / ("classify-grid-XXXXXX");
    std::string work_name = work.string();
    if (!mkdtemp(work_name.data()))
        throw sn::error("--grid: cannot create a temporary directory in " +
                        fs::temp_directory_path().string());
    work = work_name;
    struct cleanup {
        fs::path dir;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } remove_work{work};

    // The pixels go to gnuplot as raw bytes, one side x side array per image.
    {
        std::ofstream out(work / "pixels.bin", std::ios::binary);
        out.write(reinterpret_cast<const char*>(pixels.data()),
                  static_cast<std::streamsize>(pixels.size()));
        if (!out) throw sn::error("--grid: cannot write the pixels into " + work.string());
    }
    std::size_t wrong = 0;
    std::ostringstream script;
    script << "set terminal pngcairo size " << columns * 160 << "," << rows * 180 + 40
           << " font 'sans,9'\n"
           << "set output " << quoted((work / "grid.png").string()) << "\n"
           << "set palette grey negative\nunset colorbox\nunset key\nunset tics\n"
           << "set size ratio -1\n"
           << "set multiplot layout " << rows << "," << columns << " title "
           << quoted("predicted / true (red: misclassified)") << " font 'sans,12'\n";
    for (std::size_t i = 0; i < count; ++i) {
        const bool right = predicted[i] == truth[i];
        wrong += !right;
        const char* colour = right ? "black" : "red";
        script << "set title "
               << quoted(class_name(c, predicted[i]) + " / " + class_name(c, truth[i]))
               << " textcolor rgb '" << colour << "'\n"
               << "set border 15 linewidth " << (right ? 1 : 4) << " linecolor rgb '" << colour
               << "'\n"
               // flipy: IDX stores the top row first, gnuplot draws its first row at the bottom.
               << "plot " << quoted((work / "pixels.bin").string()) << " binary array=(" << side
               << "," << side << ") skip=" << i * side * side
               << " format='%uchar' flipy with image\n";
    }
    script << "unset multiplot\n";
    {
        std::ofstream out(work / "grid.gp");
        out << script.str();
        if (!out) throw sn::error("--grid: cannot write the gnuplot script into " + work.string());
    }
    const std::string command =
        "gnuplot " + quoted((work / "grid.gp").string()) + " 2> " + quoted((work / "err").string());
    const int status = std::system(command.c_str());
    if (status != 0) {
        std::ifstream err(work / "err");
        const std::string message{std::istreambuf_iterator<char>(err), {}};
        throw sn::error("--grid: gnuplot failed (exit status " + std::to_string(status) + ")" +
                        (message.empty() ? std::string() : ": " + message));
    }
    std::ifstream drawn(work / "grid.png", std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(drawn), {}};
    if (bytes.empty()) throw sn::error("--grid: gnuplot wrote no image");
    sn::write_file_atomically(png, bytes, "--grid");
    std::cout << "grid: wrote " << png.string() << " (" << count << " images, " << wrong
              << " misclassified)" << std::endl;
}

/// Whether gnuplot can be run, and has the pngcairo terminal (gnuplot-nox has it).
bool gnuplot_available() {
    return std::system("gnuplot -e \"set terminal pngcairo\" > /dev/null 2>&1") == 0;
}

int classify(const config& c, sn::mpi_communicator& world) {
    const bool root = world.rank() == 0;
    // Rank 0 reads the manifests and the training set; every rank acts on what it agreed.
    chosen_checkpoint chosen =
        sn::agree_on(world, [&] { return find_checkpoint(c.checkpoint_dir); });
    if (root && !chosen.skipped.empty()) std::cerr << chosen.skipped;
    const sn::checkpoint_manifest& m = chosen.manifest;
    const std::vector<std::size_t> widths = sn::agree_on(world, [&] { return widths_of(m); });
    const std::size_t classes = widths.back();

    std::optional<sn::standardizer<real>> scaler;
    sn::agree_on(world, [&] {
        if (root) scaler = training_standardizer(m, c, classes);
    });
    std::int64_t normalized = scaler ? 1 : 0;
    world.broadcast(&normalized, 1, 0);
    if (normalized) {
        if (!root) {
            scaler.emplace();
            scaler->mean.resize({widths.front()});
            scaler->inv_std.resize({widths.front()});
        }
        // Its width is the checkpoint's input width: the fingerprint matched.
        world.broadcast(scaler->mean.data(), widths.front(), 0);
        world.broadcast(scaler->inv_std.data(), widths.front(), 0);
    }

    const idx_pair test_files = data_files(c, c.test_spec, "--test", "t10k");
    sn::dataset<real> test = sn::agree_on(world, [&] {
        sn::dataset<real> d = load_pair(test_files, c.test_spec.empty(), classes);
        if (d.width() != widths.front())
            throw sn::error("the checkpoint's network takes " + std::to_string(widths.front()) +
                            " features, the images '" + test_files.images + "' have " +
                            std::to_string(d.width()) + " pixels each");
        return d;
    });
    const std::size_t shown = std::min<std::size_t>(static_cast<std::size_t>(c.grid_count),
                                                    c.grid_png.empty() ? 0 : test.size());
    std::vector<unsigned char> pixels(shown * test.width());  // before standardization
    for (std::size_t i = 0; i < pixels.size(); ++i)
        pixels[i] = static_cast<unsigned char>(std::lround(test.features.data()[i] * 255.0f));
    if (scaler) scaler->apply(test.features, "test set '" + test_files.images + "'");

    const sn::grid_shape model_grid = c.model_grid.empty()
                                          ? sn::grid_shape{0, 0}
                                          : sn::parse_grid_shape(c.model_grid, "--model-grid");
    sn::process_grid<sn::mpi_communicator> grid(world, static_cast<std::size_t>(c.data_parallel),
                                                model_grid);
    const std::size_t replicas = grid.data_parallel(), replica = grid.data_rank();
    const std::vector<sn::layer_spec> specs =
        sn::agree_on(world, [&] { return layer_specs(c, m); });
    sn::network_options options;
    options.bias = m.layers.front().bias != 0;
    sn::network<real, sn::model_group<sn::mpi_communicator>> net(grid.model(), widths, specs,
                                                                 options);
    sn::load_checkpoint(grid, chosen.path, net);
    const auto batch = std::min(static_cast<std::size_t>(c.batch), test.size());
    if (root)
        std::cout << "checkpoint: " << chosen.path.string() << " (step " << m.position.step
                  << ", written by " << m.world_size << " ranks"
                  << (scaler ? "" : "; trained without standardization") << ")\n"
                  << net.plan(batch, replicas) << std::flush;

    // Batches in order, dealt to the replicas in turn; every rank of a replica's model group
    // computes its replica's batches.
    sn::softmax_cross_entropy<real> loss(classes);
    sn::matrix<real> rows = sn::matrix<real>::from_shape({batch, test.width()});
    std::vector<std::uint32_t> labels;
    // The labels predicted for the images drawn, each filled in by the replica that classified
    // it and summed over the replicas (the others hold 0 there), then the replica's count of
    // correct predictions: one all-reduce sums both.
    std::vector<std::int64_t> totals(shown + 1, 0);
    std::int64_t& correct = totals.back();
    for (std::size_t begin = replica * batch; begin < test.size(); begin += replicas * batch) {
        const std::size_t n = std::min(batch, test.size() - begin);
        if (rows.shape(0) != n) rows.resize({n, test.width()});
        std::copy_n(test.features.data() + begin * test.width(), n * test.width(), rows.data());
        labels.assign(test.labels.begin() + static_cast<std::ptrdiff_t>(begin),
                      test.labels.begin() + static_cast<std::ptrdiff_t>(begin + n));
        const auto& logits = net.forward(grid.model(), rows);
        // The logits stay where the last layer left them (sharded over a group, or whole):
        // the loss finds the argmax with all-reduces of the per-row maxima, never a gather.
        const sn::loss_value value =
            sn::with_loss_group(grid.model(), net.output(), [&]<sn::layout L>(auto& group) {
                return loss.template evaluate<L>(group, logits, labels, test.size());
            });
        correct += static_cast<std::int64_t>(value.correct);
        for (std::size_t i = 0; i < n && begin + i < shown; ++i)
            totals[begin + i] = static_cast<std::int64_t>(loss.predictions()[i]);
    }
    grid.data().all_reduce(totals.data(), totals.size(), sn::reduce_op::sum);
    const double accuracy = static_cast<double>(correct) / static_cast<double>(test.size());

    if (!c.grid_png.empty())
        sn::agree_on(world, [&] {
            if (!root) return;
            const auto side = static_cast<std::size_t>(std::lround(std::sqrt(test.width())));
            if (side * side != test.width())
                throw sn::error("--grid: images of " + std::to_string(test.width()) +
                                " pixels are not square; the grid needs square images");
            std::vector<std::size_t> truth(
                test.labels.begin(), test.labels.begin() + static_cast<std::ptrdiff_t>(shown));
            draw_grid(c.grid_png, pixels, side,
                      std::vector<std::size_t>(totals.begin(), totals.end() - 1), truth, c);
        });
    if (root)
        std::cout << "classified: samples=" << test.size() << " correct=" << correct
                  << " accuracy=" << sn::shortest_decimal(accuracy) << " ranks=" << world.size()
                  << " replicas=" << replicas << std::endl;
    return 0;
}

/// Rank 0's checks of the outputs and tools before anything is loaded.
void check_outputs(const config& c) {
    if (c.grid_png.empty()) return;
    std::vector<fs::path> inputs;
    for (const auto& [spec, option, prefix] : {std::tuple{c.train_spec, "--train", "train"},
                                               std::tuple{c.test_spec, "--test", "t10k"}}) {
        const idx_pair files = data_files(c, spec, option, prefix);
        inputs.emplace_back(files.images);
        inputs.emplace_back(files.labels);
    }
    sn::check_output_path(c.grid_png, "--grid", inputs);
    if (!gnuplot_available())
        throw sn::error(
            "--grid needs gnuplot with its pngcairo terminal: install the Debian "
            "package gnuplot-nox (apt-get install gnuplot-nox)");
}

int run(sn::mpi_communicator& world, int argc, char** argv) {
    config c;
    CLI::App app{"Classify IDX images with a network trained by train_mlp, from its checkpoint"};
    app.add_option("--checkpoint-dir", c.checkpoint_dir,
                   "train_mlp's --checkpoint-dir (its newest readable checkpoint is used), or one "
                   "checkpoint directory in it")
        ->required();
    app.add_option("--partition", c.partitions,
                   "per layer: column, row, replicated or block2d (default column,row,column,...)")
        ->delimiter(',')
        ->check(CLI::IsMember({"column", "row", "replicated", "block2d"}));
    app.add_option("--model-grid", c.model_grid,
                   "RxC: each replica's ranks as R rows x C columns, for block2d (default 1 x "
                   "ranks / replicas)");
    app.add_option("--data-parallel", c.data_parallel,
                   "replicas of the network, each classifying its share of the batches (the "
                   "world size must be a multiple)");
    app.add_option("--data-dir", c.data_dir,
                   std::string("Fashion-MNIST's directory (default ") + fashion_mnist_dir + ")");
    app.add_option("--train", c.train_spec,
                   "IMAGES,LABELS of the training set, whose statistics standardize the images "
                   "(default: Fashion-MNIST's)");
    app.add_option("--test", c.test_spec,
                   "IMAGES,LABELS to classify, IDX files, gzipped or not (default: "
                   "Fashion-MNIST's test set)");
    app.add_option("--batch", c.batch, "images per forward pass");
    app.add_option("--grid", c.grid_png, "draw test images and their labels into this PNG file");
    app.add_option("--grid-count", c.grid_count, "images in the grid (default 36)");

    if (const auto stop = examples::parse_on_every_rank(world, app, "classify", [&] {
            app.parse(argc, argv);
            if (c.batch < 1) throw sn::error("--batch: expected a whole number of at least 1");
            if (c.data_parallel < 1)
                throw sn::error("--data-parallel: expected a whole number of at least 1, got " +
                                std::to_string(c.data_parallel));
            if (c.grid_count < 1 || c.grid_count > 400)
                throw sn::error("--grid-count: expected a whole number from 1 to 400, got " +
                                std::to_string(c.grid_count));
            if (!c.model_grid.empty()) sn::parse_grid_shape(c.model_grid, "--model-grid");
            if (app.count("--grid-count") > 0 && c.grid_png.empty())
                throw sn::error("--grid-count needs --grid FILE.png");
        }))
        return *stop;
    sn::agree_same_settings(world,
                            sn::describe_fields(c, config_fields, sn::setting_role::same_on_ranks),
                            "classify's options");
    sn::agree_on(world, [&] {
        if (world.rank() == 0) check_outputs(c);
    });
    return classify(c, world);
}

}  // namespace

int main(int argc, char** argv) {
    return sn::collective_main(argc, argv, "classify",
                               [&](sn::mpi_communicator& world) { return run(world, argc, argv); });
}
