// The checkpoint manifest: what a checkpoint holds (model shape, element type, grid, training
// position) and where every block of every tensor lives (file, offset, size, checksum). Rank 0
// writes it last; it is framed by a fixed header with magic, version, size and CRC, so a
// reader rejects a foreign, truncated or corrupted manifest before deserializing anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "shardnet/core/element_type.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/io/bounded_archive.hpp"
#include "shardnet/io/checksum.hpp"
#include "shardnet/version.hpp"

namespace shardnet {

/// The layout of checkpoint files this shardnet writes and reads.
inline constexpr std::uint32_t checkpoint_format_version = 2;
/// The oldest format this shardnet still reads (version 1 has no run identity).
inline constexpr std::uint32_t oldest_checkpoint_format_version = 1;
/// No manifest is larger: a bigger file is refused before it is read.
inline constexpr std::uint64_t max_manifest_bytes = std::uint64_t{1} << 30;

namespace detail {

inline constexpr char manifest_magic[8] = {'S', 'N', 'E', 'T', 'M', 'A', 'N', 'I'};
inline constexpr std::size_t manifest_header_bytes = 32;
/// Names and type strings are short; the bound keeps a hostile length from allocating.
inline constexpr std::uint64_t max_name_bytes = 4096;

inline void put_u32(char* p, std::uint32_t v) {
    std::memcpy(p, &v, 4);
}
inline void put_u64(char* p, std::uint64_t v) {
    std::memcpy(p, &v, 8);
}
inline std::uint32_t get_u32(const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline std::uint64_t get_u64(const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

/// How checkpoints name T (its element_traits name).
template <element_type T>
constexpr std::string_view element_type_name() {
    return element_traits<T>::name;
}

}  // namespace detail

/// One layer as the saving network had it.
struct checkpoint_layer {
    std::string name, partition, activation;
    std::uint64_t in = 0, out = 0;
    std::uint8_t bias = 0;  // not bool: a hostile byte must not be an invalid bool

    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        detail::serialize_string(ar, name, detail::max_name_bytes, "layer name");
        detail::serialize_string(ar, partition, detail::max_name_bytes, "partition name");
        detail::serialize_string(ar, activation, detail::max_name_bytes, "activation name");
        ar& in& out& bias;
    }
};

/// One parameter's global shape (a bias is 1 x out). Optimizer state has the same shape.
struct checkpoint_tensor {
    std::string name;
    std::uint64_t rows = 0, cols = 0;

    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        detail::serialize_string(ar, name, detail::max_name_bytes, "parameter name");
        ar& rows& cols;
    }
};

namespace detail {

/// "shard-00003.bin": the file part 3 of the model-parallel group writes.
inline std::string shard_file_name(std::size_t part) {
    std::string digits = std::to_string(part);
    return "shard-" + std::string(digits.size() < 5 ? 5 - digits.size() : 0, '0') + digits + ".bin";
}

}  // namespace detail

/// One shard file: the part (model rank) that wrote it, its size and CRC-32. Its name inside
/// the checkpoint directory follows from the part, so a manifest cannot point elsewhere.
struct checkpoint_file {
    std::uint32_t part = 0;
    std::uint64_t size = 0;
    std::uint32_t crc = 0;

    std::string name() const { return detail::shard_file_name(part); }

    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& part& size& crc;
    }
};

/// One record: a block [row_begin, row_begin + rows) x [col_begin, col_begin + cols) of slot
/// `slot` (0: the values, 1 and 2: optimizer state) of parameter `parameter`, stored at
/// `offset` in file `file` as `bytes` bytes with CRC-32 `crc`.
struct checkpoint_record {
    std::uint32_t file = 0, parameter = 0, slot = 0, crc = 0;
    std::uint64_t offset = 0, bytes = 0;
    std::uint64_t row_begin = 0, rows = 0, col_begin = 0, cols = 0;

    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& file& parameter& slot& crc& offset& bytes& row_begin& rows& col_begin& cols;
    }
};

/// Where training stands: enough to continue bitwise as if never interrupted. The data order
/// is a pure function of (seed, epoch), so (epoch, step_in_epoch) is the data-order position.
struct training_position {
    std::uint64_t step = 0;                          ///< optimizer steps taken in total
    std::uint64_t epoch = 0;                         ///< the epoch in progress (or about to start)
    std::uint64_t step_in_epoch = 0;                 ///< steps of that epoch already taken
    std::uint64_t seed = 0, batch = 0, samples = 0;  ///< must match on resume
    double epoch_loss_sum = 0;        ///< sum of the running epoch's step losses so far
    std::uint64_t epoch_skipped = 0;  ///< steps of the running epoch skipped as non-finite
    std::vector<double> step_losses;  ///< every step's loss so far
    /// Finished epochs: train_loss, test_loss, test_accuracy, samples_per_s (4 per epoch).
    std::vector<double> epochs;
    /// What identifies the run that wrote it (settings::text(): options, network, data
    /// checksums): a resume refuses a checkpoint of another run and names what differs.
    /// Empty in format version 1.
    std::string run_settings;

    template <class Archive>
    void serialize(Archive& ar, std::uint32_t format_version, std::uint64_t budget) {
        ar& step& epoch& step_in_epoch& seed& batch& samples& epoch_loss_sum& epoch_skipped;
        detail::serialize_values(ar, step_losses, budget, "step loss list");
        detail::serialize_values(ar, epochs, budget, "epoch result list");
        if (format_version >= 2) detail::serialize_string(ar, run_settings, budget, "run settings");
    }
};

/// Everything a loader needs to know before it reads a single shard.
struct checkpoint_manifest {
    std::uint32_t format_version = checkpoint_format_version;
    std::string library_version = SHARDNET_VERSION_STRING;
    std::string element_type;  ///< "float32" or "float64"
    std::uint64_t world_size = 0, data_parallel = 0, model_parallel = 0;
    std::vector<checkpoint_layer> layers;
    std::vector<checkpoint_tensor> parameters;
    std::string optimizer;              ///< "sgd", "adam", "adamw" or "none"
    std::uint32_t optimizer_slots = 0;  ///< state arrays per parameter
    std::uint64_t optimizer_updates = 0;
    std::uint8_t has_position = 0;
    training_position position;
    std::vector<checkpoint_file> files;
    std::vector<checkpoint_record> records;
    /// Bytes of the payload being read: bounds every length field. Not stored.
    std::uint64_t budget = max_manifest_bytes;
    /// The version in the file's header, which the payload's must repeat. Not stored.
    std::uint32_t header_version = checkpoint_format_version;

    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        ar& format_version;
        detail::serialize_string(ar, library_version, detail::max_name_bytes, "library version");
        detail::serialize_string(ar, element_type, detail::max_name_bytes, "element type");
        ar& world_size& data_parallel& model_parallel;
        detail::serialize_items(ar, layers, budget, 3 * 8 + 17, "layer list");
        detail::serialize_items(ar, parameters, budget, 24, "parameter list");
        detail::serialize_string(ar, optimizer, detail::max_name_bytes, "optimizer name");
        ar& optimizer_slots& optimizer_updates& has_position;
        position.serialize(ar, format_version, budget);
        detail::serialize_items(ar, files, budget, 16, "file list");
        detail::serialize_items(ar, records, budget, 64, "record list");
    }

    /// Internal consistency: every record inside its tensor and its file, slots within the
    /// optimizer's. Names `what` (the file) in the message.
    /// @throws error on the first inconsistency.
    void validate(std::string_view what) const {
        auto fail = [&](const auto&... parts) {
            throw error(detail::concat("checkpoint manifest '", what, "': ", parts...));
        };
        if (format_version != header_version)
            fail("format version ", format_version, " in the payload, ", header_version,
                 " in the header");
        if (element_type != "float32" && element_type != "float64")
            fail("unknown element type '", element_type, "'");
        if (optimizer_slots > 2) fail("optimizer claims ", optimizer_slots, " state slots (max 2)");
        if (has_position > 1) fail("malformed position flag");
        const std::uint64_t element = element_type == "float32" ? 4 : 8;
        for (std::size_t i = 0; i < files.size(); ++i)
            if (files[i].part >= model_parallel || (i > 0 && files[i].part <= files[i - 1].part))
                fail("file ", i, " claims part ", files[i].part, " of ", model_parallel,
                     " (parts must be distinct, ascending)");
        for (std::size_t i = 0; i < records.size(); ++i) {
            const auto& r = records[i];
            if (r.file >= files.size())
                fail("record ", i, " names file ", r.file, " of ", files.size());
            if (r.parameter >= parameters.size())
                fail("record ", i, " names parameter ", r.parameter, " of ", parameters.size());
            if (r.slot > optimizer_slots) fail("record ", i, " names state slot ", r.slot);
            const auto& t = parameters[r.parameter];
            if (r.row_begin > t.rows || r.rows > t.rows - r.row_begin || r.col_begin > t.cols ||
                r.cols > t.cols - r.col_begin || r.rows == 0 || r.cols == 0)
                fail("record ", i, " (rows ", r.row_begin, "+", r.rows, ", cols ", r.col_begin, "+",
                     r.cols, ") lies outside parameter '", t.name, "' of ", t.rows, " x ", t.cols);
            const auto& f = files[r.file];
            // The payload is a few fixed fields plus rows*cols values; anything else is bogus.
            if (r.rows > f.size / element / r.cols)
                fail("record ", i, " claims ", r.rows, " x ", r.cols, " values, more than file '",
                     f.name(), "' of ", f.size, " bytes holds");
            const std::uint64_t values = r.rows * r.cols;  // no overflow: checked just above
            if (r.bytes < values * element || r.bytes > values * element + 256)
                fail("record ", i, " claims ", r.bytes, " bytes for ", r.rows, " x ", r.cols,
                     " values");
            if (r.offset > f.size || r.bytes > f.size - r.offset)
                fail("record ", i, " (offset ", r.offset, ", ", r.bytes,
                     " bytes) lies outside file '", f.name(), "' of ", f.size, " bytes");
        }
    }
};

/// The bytes of a manifest file: fixed header (magic, version, CRC, payload size) + payload.
inline std::string encode_manifest(checkpoint_manifest& m) {
    m.format_version = checkpoint_format_version;  // always written in the current format
    const std::string payload = detail::to_archive_bytes(m);
    std::string bytes(detail::manifest_header_bytes, '\0');
    std::memcpy(bytes.data(), detail::manifest_magic, 8);
    detail::put_u32(bytes.data() + 8, checkpoint_format_version);
    detail::put_u32(bytes.data() + 12, crc32::of(payload.data(), payload.size()));
    detail::put_u64(bytes.data() + 16, payload.size());
    return bytes + payload;
}

/// Parses and validates the bytes of a manifest file. `what` names it in every message.
/// Checks magic, version, size and checksum before deserializing; never allocates more than
/// the input's size per field.
/// @throws error "checkpoint manifest '<what>': <problem>".
inline checkpoint_manifest decode_manifest(const char* data, std::size_t size,
                                           std::string_view what) {
    auto fail = [&](const auto&... parts) {
        throw error(detail::concat("checkpoint manifest '", what, "': ", parts...));
    };
    if (size < detail::manifest_header_bytes)
        fail("truncated: ", size, " bytes, shorter than the ", detail::manifest_header_bytes,
             "-byte header");
    if (std::memcmp(data, detail::manifest_magic, 8) != 0)
        fail("not a shardnet checkpoint manifest (wrong magic)");
    const std::uint32_t version = detail::get_u32(data + 8);
    if (version < oldest_checkpoint_format_version || version > checkpoint_format_version)
        fail("format version ", version, ", this shardnet (", SHARDNET_VERSION_STRING,
             ") reads versions ", oldest_checkpoint_format_version, " to ",
             checkpoint_format_version);
    const std::uint64_t payload = detail::get_u64(data + 16);
    const std::uint64_t have = size - detail::manifest_header_bytes;
    if (payload != have)
        fail(payload > have ? "truncated" : "has trailing bytes", ": the header announces ",
             payload, " payload bytes, the file holds ", have);
    const char* body = data + detail::manifest_header_bytes;
    if (crc32::of(body, have) != detail::get_u32(data + 12))
        fail("checksum mismatch: the file is corrupted");
    checkpoint_manifest m;
    m.budget = have;
    m.header_version = version;
    detail::from_archive_bytes(body, have, m, detail::concat("checkpoint manifest '", what, "'"));
    m.validate(what);
    return m;
}

/// Reads and decodes the manifest file at `path`, refusing files above max_manifest_bytes
/// before reading them. Not collective (callers agree on the outcome).
/// @throws error naming the file.
inline checkpoint_manifest read_manifest(const std::filesystem::path& path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec)
        throw error(detail::concat("checkpoint manifest '", path.string(),
                                   "' cannot be read: ", ec.message()));
    if (size > max_manifest_bytes)
        throw error(detail::concat("checkpoint manifest '", path.string(), "' is ", size,
                                   " bytes, larger than any manifest (", max_manifest_bytes, ")"));
    std::string bytes(static_cast<std::size_t>(size), '\0');
    std::ifstream in(path, std::ios::binary);
    if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
        throw error(detail::concat("checkpoint manifest '", path.string(), "' cannot be read"));
    return decode_manifest(bytes.data(), bytes.size(), path.string());
}

}  // namespace shardnet
