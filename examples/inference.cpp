// inference: predicts with weights trained elsewhere. A 4-16-3 classifier was trained in plain
// Python (examples/data/tiny_mlp/train_tiny_mlp.py) and saved as one CSV file per layer; this
// program reads them, lets each rank keep only its shard, and classifies held-out samples.
//
//   mpiexec -n 3 ./inference examples/data/tiny_mlp
//
// It checks itself: the logits must match the ones the Python trainer computed.
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "shardnet/comm/collective_main.hpp"
#include "shardnet/shardnet.hpp"

namespace sn = shardnet;

namespace {

/// A CSV file of numbers as a matrix: one row per line, every line the same width.
sn::matrix<float> read_matrix(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw sn::error("cannot open " + path);
    std::vector<float> values;
    std::size_t rows = 0, cols = 0;
    for (std::string line; std::getline(file, line); ++rows) {
        std::istringstream fields(line);
        std::size_t width = 0;
        for (std::string field; std::getline(fields, field, ','); ++width)
            values.push_back(std::stof(field));
        if (rows > 0 && width != cols)
            throw sn::error(path + ": line " + std::to_string(rows + 1) + " has " +
                            std::to_string(width) + " values, expected " + std::to_string(cols));
        cols = width;
    }
    sn::matrix<float> m = sn::matrix<float>::from_shape({rows, cols});
    std::copy(values.begin(), values.end(), m.begin());
    return m;
}

/// A layer file holds W (in x out, the x·W convention: transpose a PyTorch `weight`) and, as
/// its last line, the bias. import_weights keeps only this rank's block of both.
template <class Layer, class Comm>
void import_layer(Layer& layer, Comm& group, const std::string& path) {
    // Every rank reads the file, so a missing or malformed one must fail on all ranks at once.
    const sn::matrix<float> file = sn::agree_on(group, [&] { return read_matrix(path); });
    const std::size_t in = file.shape(0) - 1, out = file.shape(1);
    sn::matrix<float> weight = sn::matrix<float>::from_shape({in, out});
    sn::vector<float> bias = sn::vector<float>::from_shape({out});
    for (std::size_t i = 0; i < in; ++i)
        for (std::size_t j = 0; j < out; ++j)
            weight(i, j) = file(i, j);
    for (std::size_t j = 0; j < out; ++j)
        bias(j) = file(in, j);
    layer.import_weights(group, weight, &bias);  // checks the shapes, collectively
}

}  // namespace

int main(int argc, char** argv) {
    // Errors are agreed on by every rank or abort the job: see collective_main.
    return sn::collective_main(argc, argv, "inference", [&](sn::mpi_communicator& world) {
        const std::string dir = argc > 1 ? argv[1] : "examples/data/tiny_mlp";
        // The Megatron pair: fc1 keeps a block of the 16 hidden units per rank (any P works,
        // 16 need not divide), fc2 sums the ranks' partial logits with one all-reduce.
        using net_type = sn::sequential<sn::dense<float, sn::column_split, sn::activation::relu>,
                                        sn::dense<float, sn::row_split>>;
        net_type net(world, {4, 16, 3});
        import_layer(net.layer<0>(), world, dir + "/fc1.csv");
        import_layer(net.layer<1>(), world, dir + "/fc2.csv");

        const auto samples =
            sn::agree_on(world, [&] { return sn::load_csv<float>(dir + "/samples.csv"); });
        const auto expected = sn::agree_on(world, [&] { return read_matrix(dir + "/logits.csv"); });
        const auto& logits = net.forward(world, samples.features);  // replicated on every rank

        std::size_t correct = 0;
        double worst = 0;
        for (std::size_t i = 0; i < samples.size(); ++i) {
            std::size_t best = 0;
            for (std::size_t k = 0; k < logits.shape(1); ++k) {
                if (logits(i, k) > logits(i, best)) best = k;
                const double scale = 1.0 + std::abs(double(expected(i, k)));
                worst = std::max(worst, std::abs(double(logits(i, k) - expected(i, k))) / scale);
            }
            correct += best == samples.labels[i];
        }
        const bool ok = worst < 1e-4;
        if (world.rank() == 0) {
            std::cout << "inference: " << world.size() << " ranks, rank 0 holds W1 block "
                      << net.layer<0>().weight().shape(0) << " x "
                      << net.layer<0>().weight().shape(1) << " of 4 x 16\n"
                      << "accuracy on " << samples.size() << " held-out samples: " << correct << "/"
                      << samples.size() << "\n"
                      << "largest relative difference from the trainer's logits: " << worst
                      << (ok ? " (ok)" : " (MISMATCH)") << "\n";
        }
        return ok ? 0 : 1;
    });
}
