// A shard file: what one rank of a model-parallel group writes of its own blocks. A short
// fixed header (magic, version, part, step) followed by records, each one Boost.Serialization
// archive of a block of one tensor, small enough (a bounded number of rows) that a reader on
// another grid reads only the records that overlap its block, one at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <boost/serialization/array_wrapper.hpp>

#include "shardnet/core/error.hpp"
#include "shardnet/io/bounded_archive.hpp"
#include "shardnet/io/manifest.hpp"

namespace shardnet {

namespace detail {

inline constexpr char shard_magic[8] = {'S', 'N', 'E', 'T', 'S', 'H', 'R', 'D'};
inline constexpr std::size_t shard_header_bytes = 24;

/// magic, format version, part (model rank), step: ties the file to its manifest.
inline std::string encode_shard_header(std::uint32_t part, std::uint64_t step) {
    std::string bytes(shard_header_bytes, '\0');
    std::memcpy(bytes.data(), shard_magic, 8);
    put_u32(bytes.data() + 8, checkpoint_format_version);
    put_u32(bytes.data() + 12, part);
    put_u64(bytes.data() + 16, step);
    return bytes;
}

/// @throws error "checkpoint shard '<what>': ..." unless the header is the expected one.
inline void check_shard_header(const char* data, std::size_t size, std::string_view what,
                               std::uint32_t part, std::uint64_t step) {
    auto fail = [&](const auto&... parts) {
        throw error(concat("checkpoint shard '", what, "': ", parts...));
    };
    if (size < shard_header_bytes) fail("truncated header (", size, " bytes)");
    if (std::memcmp(data, shard_magic, 8) != 0) fail("not a shardnet shard file (wrong magic)");
    if (get_u32(data + 8) < oldest_checkpoint_format_version ||
        get_u32(data + 8) > checkpoint_format_version)
        fail("format version ", get_u32(data + 8), ", expected ", oldest_checkpoint_format_version,
             " to ", checkpoint_format_version);
    if (get_u32(data + 12) != part || get_u64(data + 16) != step)
        fail("belongs to part ", get_u32(data + 12), " at step ", get_u64(data + 16),
             ", the manifest expects part ", part, " at step ", step,
             " (a file from another checkpoint?)");
}

}  // namespace detail

/// One block of one tensor. On load, the expected block (from the manifest) is set first and
/// the stored one must match it before any value is read.
template <class T>
struct shard_record {
    std::uint32_t parameter = 0, slot = 0;
    std::uint64_t row_begin = 0, rows = 0, col_begin = 0, cols = 0;
    std::vector<T> values;  ///< rows x cols, row-major

    template <class Archive>
    void serialize(Archive& ar, unsigned) {
        const shard_record expected = header_copy();
        ar& parameter& slot& row_begin& rows& col_begin& cols;
        if constexpr (Archive::is_loading::value) {
            if (parameter != expected.parameter || slot != expected.slot ||
                row_begin != expected.row_begin || rows != expected.rows ||
                col_begin != expected.col_begin || cols != expected.cols)
                throw error(detail::concat(
                    "record holds parameter ", parameter, " slot ", slot, " rows ", row_begin, "+",
                    rows, " cols ", col_begin, "+", cols, ", the manifest says parameter ",
                    expected.parameter, " slot ", expected.slot, " rows ", expected.row_begin, "+",
                    expected.rows, " cols ", expected.col_begin, "+", expected.cols));
            values.resize(static_cast<std::size_t>(rows * cols));  // bounded by the manifest
        }
        if (!values.empty()) ar& boost::serialization::make_array(values.data(), values.size());
    }

    /// The record a manifest entry announces (no values yet).
    static shard_record expected_from(const checkpoint_record& r) {
        shard_record s;
        s.parameter = r.parameter;
        s.slot = r.slot;
        s.row_begin = r.row_begin;
        s.rows = r.rows;
        s.col_begin = r.col_begin;
        s.cols = r.cols;
        return s;
    }

  private:
    shard_record header_copy() const {
        shard_record copy;
        copy.parameter = parameter;
        copy.slot = slot;
        copy.row_begin = row_begin;
        copy.rows = rows;
        copy.col_begin = col_begin;
        copy.cols = cols;
        return copy;
    }
};

/// Decodes one record's bytes, checking its CRC and that it is the block the manifest
/// announces. `what` names the file.
/// @pre entry passed checkpoint_manifest::validate (its size is bounded by the file's).
/// @throws error "checkpoint shard '<what>': ..." on any mismatch.
template <class T>
shard_record<T> decode_shard_record(const char* data, std::size_t size,
                                    const checkpoint_record& entry, std::string_view what) {
    if (crc32::of(data, size) != entry.crc)
        throw error(detail::concat("checkpoint shard '", what,
                                   "': checksum mismatch in the record at offset ", entry.offset,
                                   ": the file is corrupted"));
    shard_record<T> record = shard_record<T>::expected_from(entry);
    detail::from_archive_bytes(
        data, size, record,
        detail::concat("checkpoint shard '", what, "' (record at offset ", entry.offset, ")"));
    return record;
}

}  // namespace shardnet
