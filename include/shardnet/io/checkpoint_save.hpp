// Saving a sharded checkpoint over a process grid: every rank of one replica writes only its
// own blocks, rank 0 writes the manifest, and the directory is published by one atomic rename.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/io/bounded_archive.hpp"
#include "shardnet/io/checkpoint_blocks.hpp"
#include "shardnet/io/checkpoint_directory.hpp"
#include "shardnet/io/durable_file.hpp"
#include "shardnet/io/shard_file.hpp"

namespace shardnet {

namespace detail {

inline constexpr std::size_t record_fields = 10;

/// Writes this rank's shard file; returns its metadata as int64 for the gather to rank 0:
/// part, size, crc, then record_fields per record.
template <class T, class Optimizer>
std::vector<std::int64_t> write_shard_file(const std::filesystem::path& staging, std::size_t part,
                                           std::uint64_t step,
                                           const std::vector<parameter_block<T>>& blocks,
                                           Optimizer& opt, std::size_t record_bytes) {
    durable_writer out(staging / shard_file_name(part));
    const std::string header = encode_shard_header(static_cast<std::uint32_t>(part), step);
    out.write(header.data(), header.size());
    std::vector<std::int64_t> meta = {static_cast<std::int64_t>(part), 0, 0};
    const std::size_t slots = opt.state_slots();
    for (std::size_t p = 0; p < blocks.size(); ++p) {
        const auto& b = blocks[p];
        if (!b.writes || b.size() == 0) continue;
        const std::size_t cols = b.cols.size(), rows = b.rows.size();
        const std::size_t rows_per_record =
            std::max<std::size_t>(1, record_bytes / (cols * sizeof(T)));
        for (std::size_t r0 = 0; r0 < rows; r0 += rows_per_record) {
            const std::size_t n = std::min(rows_per_record, rows - r0);
            for (std::size_t slot = 0; slot <= slots; ++slot) {
                const T* data = slot == 0 ? b.value : opt.state(p, slot - 1);
                shard_record<T> record;
                record.parameter = static_cast<std::uint32_t>(p);
                record.slot = static_cast<std::uint32_t>(slot);
                record.row_begin = b.rows.begin + r0;
                record.rows = n;
                record.col_begin = b.cols.begin;
                record.cols = cols;
                record.values.assign(data + r0 * cols, data + (r0 + n) * cols);
                const std::string bytes = to_archive_bytes(record);
                const std::uint64_t offset = out.size();
                out.write(bytes.data(), bytes.size());
                for (std::uint64_t v :
                     {std::uint64_t{record.parameter}, std::uint64_t{record.slot},
                      std::uint64_t{crc32::of(bytes.data(), bytes.size())}, offset,
                      std::uint64_t{bytes.size()}, record.row_begin, record.rows, record.col_begin,
                      record.cols, std::uint64_t{0}})
                    meta.push_back(static_cast<std::int64_t>(v));
            }
        }
    }
    out.close();
    meta[1] = static_cast<std::int64_t>(out.size());
    meta[2] = static_cast<std::int64_t>(out.checksum());
    return meta;
}

/// Adds one gathered shard file's metadata to the manifest; returns the next position.
inline std::size_t add_file_meta(checkpoint_manifest& m, const std::vector<std::int64_t>& all,
                                 std::size_t at, std::size_t length) {
    const std::size_t end = at + length;
    const auto u = [&](std::size_t i) { return static_cast<std::uint64_t>(all[i]); };
    const auto file = static_cast<std::uint32_t>(m.files.size());
    m.files.push_back(
        {static_cast<std::uint32_t>(u(at)), u(at + 1), static_cast<std::uint32_t>(u(at + 2))});
    for (std::size_t i = at + 3; i + record_fields <= end; i += record_fields) {
        checkpoint_record r;
        r.file = file;
        r.parameter = static_cast<std::uint32_t>(u(i));
        r.slot = static_cast<std::uint32_t>(u(i + 1));
        r.crc = static_cast<std::uint32_t>(u(i + 2));
        r.offset = u(i + 3);
        r.bytes = u(i + 4);
        r.row_begin = u(i + 5);
        r.rows = u(i + 6);
        r.col_begin = u(i + 7);
        r.cols = u(i + 8);
        m.records.push_back(r);
    }
    return end;
}

}  // namespace detail

/// Writes a checkpoint of `net` (and `opt`'s state, and the training position if given) as
/// `dir`/step-NNN, atomically: the files are written into a temporary directory, synced,
/// and published by one rename; then all but the newest options.keep are removed. Ranks of
/// data-parallel replica 0 write one shard file each with their own blocks only (a block held
/// by several ranks is written once); world rank 0 writes the manifest.
/// Collective over the grid's world.
/// @pre every rank passes the same dir and step; the net was built on grid.model().
/// @throws error on every rank if any rank fails to write; the previous checkpoints are then
///         untouched and the new one does not exist.
/// @return the published directory.
template <class Net, class Optimizer, communicator Comm>
std::filesystem::path save_checkpoint(process_grid<Comm>& grid, const std::filesystem::path& dir,
                                      std::uint64_t step, Net& net, Optimizer& opt,
                                      const training_position* position = nullptr,
                                      const checkpoint_options& options = {}) {
    using T = typename Net::value_type;
    static_assert(checkpointable_optimizer<Optimizer, T>,
                  "save_checkpoint: the optimizer must offer state_slots(), method_name(), "
                  "updates(), prepare_state(params), state(parameter, slot), restore_updates(n)");
    Comm& world = grid.world();
    const bool root = world.rank() == 0;
    const std::filesystem::path final_path = dir / checkpoint_name(step);
    const std::filesystem::path staging = dir / (".tmp-" + checkpoint_name(step));
    agree_on(world, [&] {
        if (root) detail::prepare_staging(dir, staging);
    });

    // A failed save (a full disk, a rank that cannot write) leaves nothing behind: the
    // staging directory would otherwise hold on to the space until the next save.
    try {
        auto [blocks, layers] = detail::describe_network(net);
        opt.prepare_state(net.parameters());
        std::vector<std::int64_t> meta;
        agree_on(world, [&] {
            if (grid.data_rank() != 0) return;
            meta = detail::write_shard_file(staging, grid.model_rank(), step, blocks, opt,
                                            options.record_bytes);
            sync_directory(staging);
        });

        // Every writer's file size, CRC and record table go to rank 0 (small: ten numbers per
        // record), as int64 arrays.
        std::int64_t length = static_cast<std::int64_t>(meta.size());
        std::vector<std::int64_t> lengths(world.size());
        world.all_gather(&length, 1, lengths.data());
        std::vector<std::size_t> counts(lengths.begin(), lengths.end());
        std::size_t total = 0;
        for (std::size_t c : counts)
            total += c;
        std::vector<std::int64_t> all(total);
        world.all_gather(meta.data(), all.data(), counts);

        agree_on(world, [&] {
            if (!root) return;
            checkpoint_manifest m;
            m.element_type = detail::element_type_name<T>();
            m.world_size = world.size();
            m.data_parallel = grid.data_parallel();
            m.model_parallel = grid.model_parallel();
            m.layers = layers;
            for (const auto& b : blocks)
                m.parameters.push_back({b.name, b.global_rows, b.global_cols});
            m.optimizer = std::string(opt.method_name());
            m.optimizer_slots = static_cast<std::uint32_t>(opt.state_slots());
            m.optimizer_updates = opt.updates();
            if (position) {
                m.has_position = 1;
                m.position = *position;
            }
            m.position.step = step;
            for (std::size_t r = 0, at = 0; r < counts.size(); at += counts[r], ++r)
                if (counts[r] > 0) detail::add_file_meta(m, all, at, counts[r]);
            const std::string bytes = encode_manifest(m);
            durable_writer out(staging / "manifest.bin");
            out.write(bytes.data(), bytes.size());
            out.close();
            sync_directory(staging);
            if (options.before_publish) options.before_publish();
            // Saving a step that exists replaces it if the same run wrote it (a resume from an
            // older checkpoint); the old one is moved aside first because rename(2) will not
            // replace a non-empty directory. Anything else at that name (another run's
            // checkpoint, a damaged one, a stray file) is kept as step-N.kept-K, never deleted.
            const std::string mine = position ? position->run_settings : std::string();
            const std::filesystem::path aside = dir / (".old-" + checkpoint_name(step));
            bool replace = false;
            if (std::filesystem::exists(final_path)) try {
                    replace =
                        std::filesystem::is_directory(final_path) &&
                        read_manifest(final_path / "manifest.bin").position.run_settings == mine;
                } catch (const error&) {
                }
            if (std::filesystem::exists(final_path) && !replace) {
                std::filesystem::path kept;
                for (int k = 1; kept.empty() || std::filesystem::exists(kept); ++k)
                    kept = dir / (checkpoint_name(step) + ".kept-" + std::to_string(k));
                publish_directory(final_path, kept);
            }
            if (std::filesystem::exists(final_path)) publish_directory(final_path, aside);
            publish_directory(staging, final_path);
            detail::remove_quietly(aside);
            if (options.keep > 0)
                detail::prune_checkpoints(dir, step, options.keep,
                                          position ? position->run_settings : std::string());
        });
    } catch (...) {
        if (root) detail::remove_quietly(staging);
        throw;
    }
    return final_path;
}

/// save_checkpoint of the weights only (no optimizer state, no training position).
template <class Net, communicator Comm>
std::filesystem::path save_checkpoint(process_grid<Comm>& grid, const std::filesystem::path& dir,
                                      std::uint64_t step, Net& net,
                                      const checkpoint_options& options = {}) {
    no_optimizer<typename Net::value_type> none;
    return save_checkpoint(grid, dir, step, net, none, nullptr, options);
}

}  // namespace shardnet
