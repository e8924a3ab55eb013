// The entry point of an MPI program that keeps shardnet's error rule: an error is either
// agreed on by every rank (each throws the same agreed_error, and all return from main
// together) or fatal for the whole job (the rank that saw it prints it and aborts every rank
// with MPI_Abort). No path reaches MPI_Finalize while a peer may still wait in a collective,
// which is what hangs a job when one rank returns from main alone.
#pragma once

#include <boost/mpi/environment.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/core/error.hpp"

namespace shardnet {

namespace detail {

/// Prints an error only this rank saw and ends the whole job: every rank, within seconds.
[[noreturn]] inline void abort_job(std::string_view program, int rank, int size,
                                   std::string_view message) {
    std::cerr << program << ": error on rank " << rank << " of " << size << ": " << message
              << " (aborting every rank)" << std::endl;
    boost::mpi::environment::abort(1);
    std::abort();  // not reached: MPI_Abort does not return
}

}  // namespace detail

/// Runs `body(world)` as an MPI program under the error rule, and returns main's exit code.
///
/// - body's return value is this rank's exit code;
/// - an agreed_error thrown on every rank of the world: rank 0 prints
///   "<program>: error: <message>", every rank returns 1;
/// - anything else (a shardnet::error one rank saw, an agreed_error of a smaller group,
///   std::bad_alloc, any exception, or std::terminate): the rank prints
///   "<program>: error on rank R of N: <message>" and aborts the job (MPI_Abort), so mpirun
///   ends every rank instead of hanging.
///
/// Initializes MPI with threading::funneled (needed to overlap communication).
/// @tparam Body callable as int(mpi_communicator& world).
template <class Body>
int collective_main(int argc, char** argv, std::string_view program, Body&& body) {
    boost::mpi::environment env(argc, argv, boost::mpi::threading::funneled);
    mpi_communicator world;
    const int rank = static_cast<int>(world.rank()), size = static_cast<int>(world.size());
    static std::string terminate_name;  // std::set_terminate takes a plain function
    terminate_name = std::string(program);
    std::set_terminate([] {
        std::string message = "terminate called";
        if (auto current = std::current_exception()) try {
                std::rethrow_exception(current);
            } catch (const std::exception& e) {
                message = e.what();
            } catch (...) {
                message = "an unknown exception";
            }
        boost::mpi::communicator w;
        detail::abort_job(terminate_name, w.rank(), w.size(), message);
    });
    try {
        return body(world);
    } catch (const agreed_error& e) {
        if (e.group_size() != world.size()) detail::abort_job(program, rank, size, e.what());
        if (rank == 0) std::cerr << program << ": error: " << e.what() << std::endl;
        return 1;
    } catch (const std::exception& e) {
        detail::abort_job(program, rank, size, e.what());
    } catch (...) {
        detail::abort_job(program, rank, size, "an unknown exception");
    }
}

}  // namespace shardnet
