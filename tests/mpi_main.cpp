// doctest main for a suite that runs under mpiexec (Debian's doctest 2.4.9 has no
// doctest_mpi.h). Rank 0 prints as usual; other ranks' output is kept and printed, under a
// rank header, only when that rank failed. The exit code is the worst over all ranks.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <iostream>
#include <sstream>

int main(int argc, char** argv) {
    boost::mpi::environment env(argc, argv, boost::mpi::threading::funneled);
    boost::mpi::communicator world;

    doctest::Context context;
    context.applyCommandLine(argc, argv);
    std::ostringstream captured;
    if (world.rank() != 0) context.setCout(&captured);
    int result = context.run();

    if (world.rank() != 0 && result != 0)
        std::cerr << "---- rank " << world.rank() << " failed ----\n"
                  << captured.str() << std::flush;
    int worst = 0;
    boost::mpi::all_reduce(world, result, worst, boost::mpi::maximum<int>());
    if (context.shouldExit()) return result;
    return worst;
}
