// A command line parsed on every rank of an MPI job at once. Ranks may have been started with
// different arguments, so a usage error on any rank stops every rank with the same message and
// exit code, and --help prints once. Shared by the examples that take options (CLI11).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"

namespace examples {

/// Runs `parse` on every rank: it calls app.parse and may throw shardnet::error for values that
/// make no sense. Collective over `world`.
/// @return the exit code to stop with: 2 after a usage error on any rank (printed once, by rank
///         0, after "<program>: error: "), 0 after --help (the help printed once); or nothing,
///         to go on.
template <shardnet::communicator Comm, class Parse>
std::optional<int> parse_on_every_rank(Comm& world, const CLI::App& app, const char* program,
                                       Parse&& parse) {
    std::optional<std::string> usage;
    std::int64_t help = 0;
    try {
        parse();
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0)
            help = 1;
        else
            usage = e.what();
    } catch (const shardnet::error& e) {
        usage = e.what();
    }
    try {
        shardnet::agree(world, usage);
    } catch (const shardnet::agreed_error& e) {
        if (world.rank() == 0)
            std::cerr << program << ": error: " << e.what() << "\nRun with --help for more.\n";
        return 2;
    }
    world.all_reduce(&help, 1, shardnet::reduce_op::max);
    if (help) {
        if (world.rank() == 0) std::cout << app.help();
        return 0;
    }
    return std::nullopt;
}

}  // namespace examples
