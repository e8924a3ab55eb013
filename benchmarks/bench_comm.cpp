// Bandwidth of shardnet::mpi_communicator's collectives against the raw MPI calls they wrap, in
// the same run: all_reduce (MPI_Allreduce), all_reduce_async + wait (MPI_Iallreduce + MPI_Wait),
// all_gather with equal counts (MPI_Allgather) and with varying counts (MPI_Allgatherv), on float
// messages of 4 KiB to 64 MiB. The wrapper must add no copies and no serialization, so the target
// is ratio = ours/raw >= 0.95 in bus bandwidth at every size.
//   mpiexec -n 2 build/bench/benchmarks/bench_comm
// Options: --max-bytes 67108864 --min-seconds 0.2 --min-reps 20
// Bus bandwidth as in nccl-tests: bytes/time * 2(P-1)/P for all-reduce and * (P-1)/P for
// all-gather, where bytes is the whole buffer (for all-gather the gathered output). A call takes
// as long as its slowest rank; the lines report the median call.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <bit>
#include <boost/mpi/environment.hpp>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <iomanip>
#include <iostream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "shardnet/comm/mpi_communicator.hpp"

namespace sn = shardnet;

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

// Small values, so that the sums of repeated in-place all-reduces stay finite between resets.
void fill(std::span<float> data, std::size_t rank) {
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = 1e-3f * static_cast<float>(1 + (i * 7 + rank) % 13);
}

struct settings {
    double min_seconds = 0.2;
    std::size_t min_reps = 20;
    // Bounds the run when a small message takes only microseconds.
    std::size_t max_reps = 5000;
    // In-place sums multiply the data by about P per call; refill before it can overflow.
    std::size_t reset_every = 1;
};

struct result {
    std::string op;
    std::size_t bytes = 0, reps = 0;
    double ours_us = 0, mpi_us = 0, ours_busbw = 0, mpi_busbw = 0, ratio = 0;
};

/// Times `ours` and `raw` alternately, so that load from other processes hits both alike.
/// `reset` refills the buffers outside the timed region every settings::reset_every pairs.
/// Where a buffer lies in memory was measured to move large gathers by 5-9% (giving each side
/// the other's buffers flipped the sign), so `swap_sides` exchanges the sides' buffers after
/// every pair, untimed, and every other pair runs raw first: calls still touch the two buffers
/// in turn (each was last used two calls earlier, whoever calls), and each side gets each
/// buffer, and each position in the pair, half the time.
template <class Ours, class Raw, class Reset, class Swap>
result compare(sn::mpi_communicator& world, const std::string& op, std::size_t bytes,
               double bus_factor, const settings& s, Ours ours, Raw raw, Reset reset,
               Swap swap_sides) {
    const MPI_Comm comm = world.native();
    const auto timed = [comm](auto& call) {
        MPI_Barrier(comm);
        const auto start = clock_type::now();
        call();
        return std::chrono::duration<double>(clock_type::now() - start).count();
    };
    // The first calls at a size set up MPI's internal paths (shared-memory segments, protocol
    // switch); the last one estimates a call, and every rank must derive the same count from it.
    reset();
    double estimate = 0;
    for (int i = 0; i < 3; ++i) {
        const double t_ours = timed(ours);
        estimate = std::max(t_ours, timed(raw));
    }
    SHARDNET_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &estimate, 1, MPI_DOUBLE, MPI_MAX, comm));
    const std::size_t most = std::max(s.min_reps, s.max_reps);
    const double wanted = std::ceil(s.min_seconds / std::max(estimate, 1e-9));
    const std::size_t reps =
        std::max(s.min_reps, static_cast<std::size_t>(std::min(wanted, static_cast<double>(most))));

    std::vector<double> ours_t(reps), raw_t(reps);
    for (std::size_t i = 0; i < reps; ++i) {
        if (i % s.reset_every == 0) reset();
        if (i % 2 == 0) {
            ours_t[i] = timed(ours);
            raw_t[i] = timed(raw);
        } else {
            raw_t[i] = timed(raw);
            ours_t[i] = timed(ours);
        }
        swap_sides();
    }
    // Element-wise max: per call, the slowest rank.
    world.all_reduce(ours_t.data(), reps, sn::reduce_op::max);
    world.all_reduce(raw_t.data(), reps, sn::reduce_op::max);

    result r;
    r.op = op;
    r.bytes = bytes;
    r.reps = reps;
    const double t_ours = median(ours_t), t_raw = median(raw_t);
    r.ours_us = t_ours * 1e6;
    r.mpi_us = t_raw * 1e6;
    r.ours_busbw = static_cast<double>(bytes) / t_ours * bus_factor / 1e9;
    r.mpi_busbw = static_cast<double>(bytes) / t_raw * bus_factor / 1e9;
    r.ratio = t_raw / t_ours;
    if (world.rank() == 0) {
        std::cout << std::fixed << std::setprecision(3) << "comm: op=" << r.op
                  << " ranks=" << world.size() << " bytes=" << r.bytes << " ours_us=" << r.ours_us
                  << " mpi_us=" << r.mpi_us << " ours_busbw_gbs=" << r.ours_busbw
                  << " mpi_busbw_gbs=" << r.mpi_busbw << " ratio=" << r.ratio << std::endl;
    }
    return r;
}

std::string human_bytes(std::size_t b) {
    if (b >= (1u << 20) && b % (1u << 20) == 0) return std::to_string(b >> 20) + " MiB";
    if (b >= (1u << 10) && b % (1u << 10) == 0) return std::to_string(b >> 10) + " KiB";
    return std::to_string(b) + " B";
}

void print_table(const std::vector<result>& rows) {
    std::cout << "\n"
              << std::left << std::setw(17) << "op" << std::right << std::setw(9) << "size"
              << std::setw(13) << "ours us" << std::setw(13) << "mpi us" << std::setw(11)
              << "ours GB/s" << std::setw(11) << "mpi GB/s" << std::setw(8) << "ratio"
              << std::setw(7) << "reps"
              << "\n";
    for (const auto& r : rows) {
        std::cout << std::left << std::setw(17) << r.op << std::right << std::setw(9)
                  << human_bytes(r.bytes) << std::fixed << std::setprecision(1) << std::setw(13)
                  << r.ours_us << std::setw(13) << r.mpi_us << std::setprecision(3) << std::setw(11)
                  << r.ours_busbw << std::setw(11) << r.mpi_busbw << std::setw(8) << r.ratio
                  << std::setw(7) << r.reps << (r.ratio < 0.95 ? "  < 0.95" : "") << "\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    boost::mpi::environment env(argc, argv, boost::mpi::threading::funneled);
    sn::mpi_communicator world;
    CLI::App app{"shardnet collectives against raw MPI"};
    std::size_t max_bytes = std::size_t{64} << 20;
    settings s;
    app.add_option("--max-bytes", max_bytes, "largest message (from 4 KiB, powers of 4)");
    app.add_option("--min-seconds", s.min_seconds, "timed seconds per side and size, at least");
    app.add_option("--min-reps", s.min_reps, "timed calls per side and size, at least");
    CLI11_PARSE(app, argc, argv);
    if (max_bytes < 4096 || s.min_reps == 0) {
        if (world.rank() == 0) std::cerr << "--max-bytes must be >= 4096, --min-reps >= 1\n";
        return 2;
    }

    const std::size_t ranks = world.size(), me = world.rank();
    const double p = static_cast<double>(ranks);
    const double reduce_factor = 2.0 * (p - 1) / p, gather_factor = (p - 1) / p;
    // About 60 doublings keep 1e-3 * 13 far below FLT_MAX; each call multiplies by P.
    s.reset_every =
        std::max<std::size_t>(1, 60 / std::max<std::size_t>(1, std::bit_width(ranks - 1)));
    const MPI_Comm comm = world.native();

    // Each side has its own buffers, so neither finds the other's data already in cache.
    const std::size_t max_n = max_bytes / sizeof(float);
    std::vector<float> ours_buf(max_n), raw_buf(max_n), ours_in(max_n / ranks + 1),
        raw_in(max_n / ranks + 1);
    fill(ours_in, me);
    fill(raw_in, me);
    fill(ours_buf, me);
    fill(raw_buf, me);
    float* ours = ours_buf.data();
    float* raw = raw_buf.data();
    const float* ours_src = ours_in.data();
    const float* raw_src = raw_in.data();
    const auto swap_sides = [&] {
        std::swap(ours, raw);
        std::swap(ours_src, raw_src);
    };

    std::vector<std::size_t> sizes;
    for (std::size_t b = 4096; b <= max_bytes; b *= 4)
        sizes.push_back(b);

    if (me == 0) {
        std::cout << "# bench_comm: float, ranks=" << ranks << ", per call the slowest rank, median"
                  << " of >= " << s.min_reps << " reps and >= " << s.min_seconds
                  << " s per side; busbw GB/s = bytes/time * "
                  << (ranks > 1 ? "" : "(0 on 1 rank) ")
                  << "2(P-1)/P all-reduce, (P-1)/P all-gather" << std::endl;
    }
    std::vector<result> rows;
    const auto none = [] {};

    for (const std::size_t bytes : sizes) {
        const std::size_t n = bytes / sizeof(float);
        const int count = sn::detail::to_mpi_count(n);
        const auto reset = [&] {
            fill({ours, n}, me);
            fill({raw, n}, me);
        };
        // The raw side makes the same in-place call, so only the wrapper's own cost differs.
        rows.push_back(compare(
            world, "all_reduce", bytes, reduce_factor, s,
            [&] { world.all_reduce(ours, n, sn::reduce_op::sum); },
            [&] {
                SHARDNET_MPI_CHECK(
                    MPI_Allreduce(MPI_IN_PLACE, raw, count, MPI_FLOAT, MPI_SUM, comm));
            },
            reset, swap_sides));
    }
    for (const std::size_t bytes : sizes) {
        const std::size_t n = bytes / sizeof(float);
        const int count = sn::detail::to_mpi_count(n);
        const auto reset = [&] {
            fill({ours, n}, me);
            fill({raw, n}, me);
        };
        rows.push_back(compare(
            world, "all_reduce_async", bytes, reduce_factor, s,
            [&] { world.all_reduce_async(ours, n, sn::reduce_op::sum).wait(); },
            [&] {
                MPI_Request request = MPI_REQUEST_NULL;
                SHARDNET_MPI_CHECK(
                    MPI_Iallreduce(MPI_IN_PLACE, raw, count, MPI_FLOAT, MPI_SUM, comm, &request));
                SHARDNET_MPI_CHECK(MPI_Wait(&request, MPI_STATUS_IGNORE));
            },
            reset, swap_sides));
    }
    for (const std::size_t bytes : sizes) {
        const std::size_t per_rank = bytes / sizeof(float) / ranks;
        const int count = sn::detail::to_mpi_count(per_rank);
        rows.push_back(compare(
            world, "all_gather", per_rank * ranks * sizeof(float), gather_factor, s,
            [&] { world.all_gather(ours_src, per_rank, ours); },
            [&] {
                SHARDNET_MPI_CHECK(
                    MPI_Allgather(raw_src, count, MPI_FLOAT, raw, count, MPI_FLOAT, comm));
            },
            none, swap_sides));
    }
    for (const std::size_t bytes : sizes) {
        // A block partition, as an uneven split of a layer would give.
        const std::size_t n = bytes / sizeof(float);
        std::vector<std::size_t> counts(ranks);
        std::vector<int> raw_counts(ranks), raw_offsets(ranks);
        for (std::size_t r = 0, offset = 0; r < ranks; ++r) {
            counts[r] = n / ranks + (r < n % ranks ? 1 : 0);
            raw_counts[r] = sn::detail::to_mpi_count(counts[r]);
            raw_offsets[r] = sn::detail::to_mpi_count(offset);
            offset += counts[r];
        }
        const std::span<const std::size_t> ours_counts(counts);
        rows.push_back(compare(
            world, "all_gather_v", bytes, gather_factor, s,
            [&] { world.all_gather(ours_src, ours, ours_counts); },
            [&] {
                SHARDNET_MPI_CHECK(MPI_Allgatherv(raw_src, raw_counts[me], MPI_FLOAT, raw,
                                                  raw_counts.data(), raw_offsets.data(), MPI_FLOAT,
                                                  comm));
            },
            none, swap_sides));
    }
    if (me == 0) print_table(rows);
    return 0;
}
