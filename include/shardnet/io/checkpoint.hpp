// Sharded checkpoints over a process grid: every rank of one replica writes only its own
// blocks, rank 0 writes the manifest, and the directory is published by one atomic rename.
// Loading reshards: a rank reads only the records that overlap its block, whatever grid, rank
// count or partition wrote them, stages everything, and commits only when all ranks agree.
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
#include "shardnet/core/error.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/io/bounded_archive.hpp"
#include "shardnet/io/checksum.hpp"
#include "shardnet/io/durable_file.hpp"
#include "shardnet/io/manifest.hpp"
#include "shardnet/io/shard_file.hpp"
#include "shardnet/net/parameter.hpp"

namespace shardnet {

/// Options of save_checkpoint.
struct checkpoint_options {
    std::size_t keep = 3;  ///< keep the newest `keep` checkpoints in the directory; 0: all
    /// Upper bound of one record's values in bytes: a reader on another grid holds at most one
    /// record (plus its own shard) in memory. At least one row per record.
    std::size_t record_bytes = std::size_t{4} << 20;
    /// Test hook, run on world rank 0 after every file is written and synced and before the
    /// rename that publishes the checkpoint: a throw here is a crash at the worst moment.
    std::function<void()> before_publish;
};

/// An optimizer whose state a checkpoint can hold: `state_slots()` arrays per parameter, each
/// shaped like the parameter's local shard.
template <class O, class T>
concept checkpointable_optimizer = requires(O& o, const O& co, std::vector<parameter_ref<T>>& p,
                                            std::size_t i) {
    { co.state_slots() } -> std::convertible_to<std::size_t>;
    { co.method_name() } -> std::convertible_to<std::string_view>;
    { co.updates() } -> std::convertible_to<std::size_t>;
    o.prepare_state(p);
    { o.state(i, i) } -> std::same_as<T*>;
    o.restore_updates(i);
};

/// Stands for "no optimizer" in save_checkpoint / load_checkpoint (weights only).
template <class T>
struct no_optimizer {
    std::size_t state_slots() const { return 0; }
    std::string_view method_name() const { return "none"; }
    std::size_t updates() const { return 0; }
    void prepare_state(std::vector<parameter_ref<T>>&) {}
    T* state(std::size_t, std::size_t) { return nullptr; }
    void restore_updates(std::size_t) {}
};

/// "step-000000000042": the directory name of the checkpoint after `step` steps. Zero-padded
/// so that names sort like steps.
inline std::string checkpoint_name(std::uint64_t step) {
    std::string digits = std::to_string(step);
    return "step-" + std::string(digits.size() < 12 ? 12 - digits.size() : 0, '0') + digits;
}

/// The step of a published checkpoint's directory name, or nothing for any other name
/// (including the temporary directories of unfinished saves).
inline std::optional<std::uint64_t> checkpoint_step(std::string_view name) {
    if (name.size() < 6 || name.substr(0, 5) != "step-" || name.size() > 5 + 19) return {};
    std::uint64_t step = 0;
    for (char c : name.substr(5)) {
        if (c < '0' || c > '9') return {};
        step = step * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return step;
}

/// Steps of the published checkpoints in `dir`, ascending; empty if dir does not exist.
/// Not collective: reads the directory on this rank.
inline std::vector<std::uint64_t> list_checkpoints(const std::filesystem::path& dir) {
    std::vector<std::uint64_t> steps;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (auto step = checkpoint_step(it->path().filename().string())) steps.push_back(*step);
    std::sort(steps.begin(), steps.end());
    return steps;
}

/// The newest published checkpoint in `dir`, if any. A published checkpoint is complete by
/// construction (it appears by one rename after all its files were synced). Not collective.
inline std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir) {
    const auto steps = list_checkpoints(dir);
    if (steps.empty()) return {};
    return dir / checkpoint_name(steps.back());
}

namespace detail {

/// One parameter's local shard as checkpoints see it: a block of a global rows x cols tensor.
template <class T>
struct parameter_block {
    std::string name;
    std::uint64_t global_rows = 0, global_cols = 0;
    shard_range rows, cols;
    T* value = nullptr;
    /// False when a lower part of the group holds the very same block (replicated
    /// parameters): it is written once.
    bool writes = true;
    std::size_t size() const { return rows.size() * cols.size(); }
};

template <std::size_t I, class Net, class T>
void collect_blocks(Net& net, std::vector<parameter_block<T>>& blocks,
                    std::vector<checkpoint_layer>& layers) {
    auto& l = net.template layer<I>();
    using layer_type = std::remove_reference_t<decltype(l)>;
    using P = typename layer_type::partition_type;
    const std::size_t in = l.input_features(), out = l.output_features();
    const std::size_t parts = l.parts(), part = l.part();
    bool weight_first = true, bias_first = true;
    for (std::size_t q = 0; q < part; ++q) {
        const bool same_cols = P::weight_cols(out, parts, q) == l.weight_cols();
        bias_first = bias_first && !same_cols;
        weight_first =
            weight_first && !(same_cols && P::weight_rows(in, parts, q) == l.weight_rows());
    }
    blocks.push_back({l.name() + ".weight", in, out, l.weight_rows(), l.weight_cols(),
                      l.weight().data(), weight_first});
    if (l.has_bias())
        blocks.push_back({l.name() + ".bias", 1, out, shard_range{0, 1}, l.weight_cols(),
                          l.bias().data(), bias_first});
    layers.push_back({l.name(), std::string(P::name),
                      std::string(layer_type::activation_type::name), in, out,
                      static_cast<std::uint8_t>(l.has_bias() ? 1 : 0)});
    if constexpr (I + 1 < Net::depth) collect_blocks<I + 1>(net, blocks, layers);
}

/// Every parameter's block in the order of net.parameters() (which optimizers index by),
/// and the layer list of the manifest.
template <class Net>
auto describe_network(Net& net) {
    using T = typename Net::value_type;
    std::pair<std::vector<parameter_block<T>>, std::vector<checkpoint_layer>> d;
    collect_blocks<0>(net, d.first, d.second);
    const auto& params = net.parameters();
    SHARDNET_ASSERT(params.size() == d.first.size());
    for (std::size_t p = 0; p < params.size(); ++p)
        SHARDNET_ASSERT(params[p].value == d.first[p].value && params[p].size == d.first[p].size());
    return d;
}

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

inline void remove_quietly(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
}

/// Rank 0's part of a save that runs before any shard is written: the directory exists, the
/// leftovers of crashed saves are gone, the staging directory is empty.
inline void prepare_staging(const std::filesystem::path& dir,
                            const std::filesystem::path& staging) {
    try {
        std::filesystem::create_directories(dir);
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            const std::string name = entry.path().filename().string();
            if (name.rfind(".tmp-step-", 0) == 0 || name.rfind(".old-step-", 0) == 0)
                remove_quietly(entry.path());
        }
        std::filesystem::create_directory(staging);
    } catch (const std::filesystem::filesystem_error& e) {
        throw error(concat("checkpoint directory '", dir.string(),
                           "' cannot be prepared: ", e.code().message()));
    }
}

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
        // Saving a step that exists (a fresh run into an old directory) replaces it; the old
        // one is moved aside first because rename(2) will not replace a non-empty directory.
        const std::filesystem::path aside = dir / (".old-" + checkpoint_name(step));
        if (std::filesystem::exists(final_path)) publish_directory(final_path, aside);
        publish_directory(staging, final_path);
        detail::remove_quietly(aside);
        if (options.keep > 0) {
            const auto steps = list_checkpoints(dir);
            // Never the one just saved, even if a directory from another run holds later steps.
            for (std::size_t i = 0; i + options.keep < steps.size(); ++i)
                if (steps[i] != step) detail::remove_quietly(dir / checkpoint_name(steps[i]));
        }
    });
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

/// The CRC-32 of this rank's parameter shards (values, in parameter order): equal on two runs
/// exactly when their local weights are bitwise equal. Not collective.
template <class Net>
std::uint32_t local_weights_checksum(Net& net) {
    crc32 crc;
    for (const auto& p : net.parameters())
        crc.update(p.value, p.size * sizeof(*p.value));
    return crc.value();
}

}  // namespace shardnet
