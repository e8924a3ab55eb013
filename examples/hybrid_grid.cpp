// hybrid_grid: data x model parallelism on 4 ranks. The world is split into 2 replicas of the
// model, each sharded over 2 ranks; every replica reads half of each batch, and gradients are
// summed across replicas before the update.
//
//   mpiexec -n 4 ./hybrid_grid
//
// It checks itself: after training, the two replicas must hold the same weights and the test
// accuracy must be high.
#include <cmath>
#include <cstdint>
#include <iostream>
#include <vector>

#include "shardnet/comm/collective_main.hpp"
#include "shardnet/shardnet.hpp"

namespace sn = shardnet;

int main(int argc, char** argv) {
    // Errors are agreed on by every rank or abort the job: see collective_main.
    return sn::collective_main(argc, argv, "hybrid_grid", [&](sn::mpi_communicator& world) {
        const std::size_t data_parallel = world.size() % 2 == 0 ? 2 : 1;
        sn::process_grid<sn::mpi_communicator> grid(world, data_parallel);

        // Who holds what: ranks 0,1 form replica 0 and ranks 2,3 replica 1 (a model-parallel
        // group is made of neighbours, so on several nodes it stays inside one node).
        const std::int64_t mine[2] = {std::int64_t(grid.data_rank()),
                                      std::int64_t(grid.model_rank())};
        std::vector<std::int64_t> all(2 * world.size());
        world.all_gather(mine, 2, all.data());
        if (world.rank() == 0)
            for (std::size_t r = 0; r < world.size(); ++r)
                std::cout << "rank " << r << ": replica " << all[2 * r] << ", shard "
                          << all[2 * r + 1] << "\n";

        // The network is built over the model-parallel group only: its shards are per replica.
        using net_type = sn::sequential<sn::dense<float, sn::column_split, sn::activation::relu>,
                                        sn::dense<float, sn::row_split, sn::activation::relu>,
                                        sn::dense<float, sn::column_split>>;
        sn::network_options net_options;
        net_options.seed = 3;
        net_type net(grid.model(), {16, 64, 64, 4}, net_options);
        const std::size_t batch = 32;  // global; each replica gets batch / data_parallel rows
        if (world.rank() == 0) std::cout << net.plan(batch / data_parallel, data_parallel);

        sn::synthetic_options data;
        data.samples = 2000;
        data.width = 16;
        data.classes = 4;
        data.seed = 3;
        const auto split = sn::make_synthetic_split<float>(data, 500);
        sn::optimizer<float> opt(sn::adam(3e-3));
        sn::trainer_options options;
        options.epochs = 3;
        options.batch = batch;
        options.progress_bar = false;
        sn::trainer trainer(grid, net, opt, options);
        const auto result = trainer.fit(split.train, &split.test);

        // Replicas must agree on every weight: compare a checksum of each rank's shards across the
        // data-parallel group (ranks holding the same shard in different replicas).
        double checksum = 0;
        for (const auto& p : net.parameters())
            for (std::size_t k = 0; k < p.size; ++k)
                checksum += double(p.value[k]) * double(k % 7 + 1);
        double low = checksum, high = checksum;
        grid.data().all_reduce(&low, 1, sn::reduce_op::min);
        grid.data().all_reduce(&high, 1, sn::reduce_op::max);
        const double accuracy = result.epochs.back().test_accuracy;
        const bool ok = low == high && accuracy >= 0.9;
        // Every rank's verdict, so that a disagreement anywhere fails the run.
        std::int64_t failed = ok ? 0 : 1;
        world.all_reduce(&failed, 1, sn::reduce_op::max);
        if (world.rank() == 0)
            std::cout << "replicas hold identical weights: " << (low == high ? "yes" : "NO")
                      << "; test accuracy " << accuracy << (failed ? " (FAILED)" : " (ok)") << "\n";
        return failed ? 1 : 0;
    });
}
