// Loading a checkpoint with resharding: a rank reads only the records that overlap its block,
// whatever grid, rank count or partition wrote them, stages everything, and commits only when
// all ranks agree.
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
#include "shardnet/io/checkpoint_blocks.hpp"
#include "shardnet/io/shard_file.hpp"

namespace shardnet {

namespace detail {

/// Checks a manifest against the network (and optimizer) it is about to be loaded into.
template <class T, class Optimizer>
void check_compatible(const checkpoint_manifest& m, const std::vector<parameter_block<T>>& blocks,
                      const std::vector<checkpoint_layer>& layers, const Optimizer& opt,
                      const std::filesystem::path& path) {
    auto fail = [&](const auto&... parts) {
        throw error(concat("checkpoint '", path.string(), "': ", parts...));
    };
    if (m.element_type != element_type_name<T>())
        fail("holds ", m.element_type, " values, the network uses ", element_type_name<T>());
    if (m.layers.size() != layers.size())
        fail("holds a network of ", m.layers.size(), " layers, this one has ", layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const auto &saved = m.layers[i], &mine = layers[i];
        if (saved.in != mine.in || saved.out != mine.out || saved.bias != mine.bias)
            fail("layer ", i + 1, " is ", saved.in, " -> ", saved.out,
                 saved.bias ? " with" : " without", " bias, this network's is ", mine.in, " -> ",
                 mine.out, mine.bias ? " with" : " without", " bias");
        if (saved.activation != mine.activation)
            fail("layer ", i + 1, " uses activation ", saved.activation, ", this network's uses ",
                 mine.activation);
    }
    if (m.parameters.size() != blocks.size())
        fail("holds ", m.parameters.size(), " parameters, the network has ", blocks.size());
    for (std::size_t p = 0; p < blocks.size(); ++p)
        if (m.parameters[p].rows != blocks[p].global_rows ||
            m.parameters[p].cols != blocks[p].global_cols || m.parameters[p].name != blocks[p].name)
            fail("parameter ", p, " is '", m.parameters[p].name, "' ", m.parameters[p].rows, " x ",
                 m.parameters[p].cols, ", the network's is '", blocks[p].name, "' ",
                 blocks[p].global_rows, " x ", blocks[p].global_cols);
    if (opt.state_slots() > 0 &&
        (m.optimizer != opt.method_name() || m.optimizer_slots != opt.state_slots()))
        fail("holds the state of optimizer '", m.optimizer, "' (", m.optimizer_slots,
             " arrays per parameter), the run uses '", opt.method_name(), "' (", opt.state_slots(),
             ")");
}

/// Reads every record that overlaps this rank's blocks into staging buffers (one per
/// parameter and slot), verifying each file it touches (size, header, CRC) first. Nothing
/// outside the buffers it returns is modified.
template <class T>
std::vector<std::vector<T>> read_blocks(const checkpoint_manifest& m,
                                        const std::filesystem::path& path,
                                        const std::vector<parameter_block<T>>& blocks,
                                        std::size_t slots) {
    const std::size_t per = slots + 1;
    std::vector<std::vector<T>> staged(blocks.size() * per);
    std::vector<std::vector<std::uint8_t>> covered(staged.size());
    for (std::size_t p = 0; p < blocks.size(); ++p)
        for (std::size_t s = 0; s < per; ++s) {
            staged[p * per + s].assign(blocks[p].size(), T(0));
            covered[p * per + s].assign(blocks[p].size(), 0);
        }
    std::vector<std::optional<std::ifstream>> files(m.files.size());
    std::string buffer;
    for (const auto& r : m.records) {
        if (r.slot >= per) continue;
        const auto& b = blocks[r.parameter];
        const std::uint64_t row0 = std::max<std::uint64_t>(r.row_begin, b.rows.begin);
        const std::uint64_t row1 = std::min<std::uint64_t>(r.row_begin + r.rows, b.rows.end);
        const std::uint64_t col0 = std::max<std::uint64_t>(r.col_begin, b.cols.begin);
        const std::uint64_t col1 = std::min<std::uint64_t>(r.col_begin + r.cols, b.cols.end);
        if (row0 >= row1 || col0 >= col1) continue;  // not ours: never read

        const auto& f = m.files[r.file];
        const std::string file_path = (path / f.name()).string();
        auto fail = [&](const auto&... parts) {
            throw error(concat("checkpoint shard '", file_path, "': ", parts...));
        };
        auto& in = files[r.file];
        if (!in) {
            in.emplace(file_path, std::ios::binary);
            if (!*in) fail("missing or unreadable");
            // Verify the whole file once, streamed in bounded chunks: its size and CRC are in
            // the manifest, so truncation or a flipped bit anywhere is caught before use.
            crc32 crc;
            std::uint64_t size = 0;
            std::vector<char> chunk(std::size_t{1} << 20);
            while (*in) {
                in->read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
                const auto got = static_cast<std::size_t>(in->gcount());
                if (size == 0 && got > 0)
                    check_shard_header(chunk.data(), got, file_path, f.part, m.position.step);
                crc.update(chunk.data(), got);
                size += got;
                if (size > f.size) break;
            }
            if (size != f.size)
                fail(size < f.size ? "truncated" : "longer than expected", ": ", size,
                     " bytes, the manifest says ", f.size);
            if (crc.value() != f.crc) fail("checksum mismatch: the file is corrupted");
            in->clear();
        }
        buffer.resize(static_cast<std::size_t>(r.bytes));  // bounded by the verified file size
        in->seekg(static_cast<std::streamoff>(r.offset));
        if (!in->read(buffer.data(), static_cast<std::streamsize>(buffer.size())))
            fail("cannot read the record at offset ", r.offset);
        const shard_record<T> record =
            decode_shard_record<T>(buffer.data(), buffer.size(), r, file_path);

        auto& target = staged[r.parameter * per + r.slot];
        auto& mark = covered[r.parameter * per + r.slot];
        const std::size_t width = b.cols.size();
        for (std::uint64_t row = row0; row < row1; ++row)
            for (std::uint64_t col = col0; col < col1; ++col) {
                const auto local =
                    static_cast<std::size_t>((row - b.rows.begin) * width + (col - b.cols.begin));
                if (mark[local])
                    fail("records overlap at parameter '", b.name, "' (", row, ", ", col, ")");
                mark[local] = 1;
                target[local] = record.values[static_cast<std::size_t>(
                    (row - r.row_begin) * r.cols + (col - r.col_begin))];
            }
    }
    for (std::size_t i = 0; i < staged.size(); ++i)
        if (std::find(covered[i].begin(), covered[i].end(), std::uint8_t{0}) != covered[i].end())
            throw error(concat(
                "checkpoint '", path.string(), "': ", i % per == 0 ? "values" : "optimizer state",
                " of parameter '", blocks[i / per].name, "' are missing from its shard files"));
    return staged;
}

}  // namespace detail

/// Loads the checkpoint directory `path` into `net` (and `opt`'s state and update count),
/// whatever grid, rank count or partitions wrote it: each rank reads only the shard files
/// and records that overlap its own blocks. Everything is read into staging buffers and
/// checked (manifest against the network, sizes, checksums, coverage) on every rank; only
/// when all ranks succeeded are weights and state replaced.
/// Collective over the grid's world.
/// @throws error on every rank, naming the file and the problem, with net and opt untouched.
/// @return the manifest (its `position` says where training stood).
template <class Net, class Optimizer, communicator Comm>
checkpoint_manifest load_checkpoint(process_grid<Comm>& grid, const std::filesystem::path& path,
                                    Net& net, Optimizer& opt) {
    using T = typename Net::value_type;
    static_assert(checkpointable_optimizer<Optimizer, T>,
                  "load_checkpoint: the optimizer must offer state_slots(), method_name(), "
                  "updates(), prepare_state(params), state(parameter, slot), restore_updates(n)");
    auto [blocks, layers] = detail::describe_network(net);
    checkpoint_manifest m = agree_on(grid.world(), [&] {
        checkpoint_manifest read = read_manifest(path / "manifest.bin");
        detail::check_compatible(read, blocks, layers, opt, path);
        return read;
    });
    const std::size_t slots = opt.state_slots();
    auto staged =
        agree_on(grid.world(), [&] { return detail::read_blocks(m, path, blocks, slots); });

    opt.prepare_state(net.parameters());
    for (std::size_t p = 0; p < blocks.size(); ++p)
        for (std::size_t s = 0; s <= slots; ++s) {
            T* target = s == 0 ? blocks[p].value : opt.state(p, s - 1);
            std::copy(staged[p * (slots + 1) + s].begin(), staged[p * (slots + 1) + s].end(),
                      target);
        }
    opt.restore_updates(static_cast<std::size_t>(m.optimizer_updates));
    // Checkpoints hold the fp32 master weights whatever precision wrote them: a bf16
    // mixed-precision network rounds them into its bf16 copies now.
    if constexpr (requires { net.refresh_low_precision(); }) net.refresh_low_precision();
    return m;
}

/// load_checkpoint of the weights only (for inference): optimizer state in the checkpoint
/// is skipped, never read.
template <class Net, communicator Comm>
checkpoint_manifest load_checkpoint(process_grid<Comm>& grid, const std::filesystem::path& path,
                                    Net& net) {
    no_optimizer<typename Net::value_type> none;
    return load_checkpoint(grid, path, net, none);
}

}  // namespace shardnet
