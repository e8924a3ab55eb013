// A program outside the project: it only includes shardnet and links shardnet::shardnet.
#include <shardnet/shardnet.hpp>

#include <boost/mpi/environment.hpp>
#include <iostream>

int main(int argc, char** argv) {
    boost::mpi::environment env(argc, argv);
    shardnet::mpi_communicator world;
    shardnet::dense<double, shardnet::column_split, shardnet::activation::tanh> layer(world, 5, 3);
    shardnet::matrix<double> x = shardnet::matrix<double>::from_shape({2, 5});
    x.fill(0.5);
    const auto& y = layer.forward(world, x);
    const bool ok = y.shape(0) == 2 && y.shape(1) == layer.weight_cols().size();
    if (world.rank() == 0) std::cout << "consumer: " << (ok ? "ok" : "wrong shape") << "\n";
    return ok ? 0 : 1;
}
