// The smallest model-parallel network: a column_split layer feeding a row_split layer (the
// Megatron MLP pattern), one forward and one backward pass, checked against the same math
// done by one rank alone. Run: mpiexec -n 2 ./two_layer
#include <cmath>
#include <iostream>

#include "shardnet/comm/collective_main.hpp"
#include "shardnet/shardnet.hpp"

int main(int argc, char** argv) {
    // Errors are agreed on by every rank or abort the job: see collective_main.
    return shardnet::collective_main(
        argc, argv, "two_layer", [&](shardnet::mpi_communicator& world) {
            const std::size_t batch = 4, in = 6, hidden = 10, out = 3;

            // Each rank generates only its shard of W1 (in x hidden/P) and W2 (hidden/P x out).
            shardnet::dense_options first, second;
            first.layer = 0, first.name = "fc1";
            second.layer = 1, second.name = "fc2";
            shardnet::dense<float, shardnet::column_split, shardnet::activation::relu> fc1(
                world, in, hidden, first);
            shardnet::dense<float, shardnet::row_split> fc2(world, hidden, out, second);

            shardnet::matrix<float> x = shardnet::matrix<float>::from_shape({batch, in});
            for (std::size_t i = 0; i < batch; ++i)
                for (std::size_t j = 0; j < in; ++j)
                    x(i, j) = std::sin(float(i * in + j));

            // Forward: no communication in fc1, one all-reduce in fc2. Backward: the reverse.
            const auto& h = fc1.forward(world, x);  // this rank's block of hidden features
            const auto& y = fc2.forward(world, h);  // replicated on every rank
            shardnet::matrix<float> dy = y;         // gradient of 0.5 * |y|^2
            const auto& dh = fc2.backward(world, dy);
            const auto& dx = fc1.backward(world, dh);

            // The same network on one rank, from the gathered global weights.
            shardnet::local_communicator alone;
            shardnet::dense<float, shardnet::column_split, shardnet::activation::relu> ref1(
                alone, in, hidden, first);
            shardnet::dense<float, shardnet::row_split> ref2(alone, hidden, out, second);
            const auto w1 = fc1.gather_weight(world);
            const auto w2 = fc2.gather_weight(world);
            ref1.import_weights(alone, w1);
            ref2.import_weights(alone, w2);
            const auto& y_ref = ref2.forward(alone, ref1.forward(alone, x));
            shardnet::matrix<float> dy_ref = y_ref;
            const auto& dx_ref = ref1.backward(alone, ref2.backward(alone, dy_ref));

            double worst = 0;
            for (std::size_t k = 0; k < y.size(); ++k)
                worst = std::max(worst, double(std::abs(y.data()[k] - y_ref.data()[k])));
            for (std::size_t k = 0; k < dx.size(); ++k)
                worst = std::max(worst, double(std::abs(dx.data()[k] - dx_ref.data()[k])));

            if (world.rank() == 0) {
                std::cout << "two_layer: " << world.size() << " ranks, " << fc1.describe()
                          << " then " << fc2.describe() << "\n";
                std::cout << "rank 0 holds W1 block " << fc1.weight().shape(0) << " x "
                          << fc1.weight().shape(1) << " and W2 block " << fc2.weight().shape(0)
                          << " x " << fc2.weight().shape(1) << "\n";
                std::cout << "y[0] =";
                for (std::size_t j = 0; j < out; ++j)
                    std::cout << " " << y(0, j);
                std::cout << "\ndx[0] =";
                for (std::size_t j = 0; j < in; ++j)
                    std::cout << " " << dx(0, j);
                std::cout << "\nmax difference from one-rank math: " << worst
                          << (worst < 1e-5 ? " (ok)" : " (MISMATCH)") << "\n";
            }
            return worst < 1e-5 ? 0 : 1;
        });
}
