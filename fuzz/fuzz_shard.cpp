// Fuzzes shard files: the header check, then the records one after another, each announced by a
// manifest entry built from the record's own leading fields (bounded by the bytes left, as
// checkpoint_manifest::validate bounds them by the file size) and a matching CRC.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "shardnet/io/shard_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto* bytes = reinterpret_cast<const char*>(data);
    try {
        shardnet::detail::check_shard_header(bytes, size, "fuzz", 0, 7);
    } catch (const shardnet::error&) {
    }
    constexpr std::size_t fields = 2 * 4 + 4 * 8;  // parameter, slot, rows and cols ranges
    std::size_t at =
        size < shardnet::detail::shard_header_bytes ? size : shardnet::detail::shard_header_bytes;
    while (size - at >= fields) {
        const char* p = bytes + at;
        shardnet::checkpoint_record entry;
        entry.parameter = shardnet::detail::get_u32(p);
        entry.slot = shardnet::detail::get_u32(p + 4);
        entry.row_begin = shardnet::detail::get_u64(p + 8);
        entry.rows = shardnet::detail::get_u64(p + 16);
        entry.col_begin = shardnet::detail::get_u64(p + 24);
        entry.cols = shardnet::detail::get_u64(p + 32);
        const std::size_t left = size - at;
        // Empty shards are real (widths below the rank count): fuzz past them too.
        if (entry.cols != 0 && entry.rows > (left - fields) / sizeof(float) / entry.cols) break;
        const std::size_t length = fields + entry.rows * entry.cols * sizeof(float);
        entry.offset = at;
        entry.bytes = length;
        entry.crc = shardnet::crc32::of(p, length);
        try {
            shardnet::decode_shard_record<float>(p, length, entry, "fuzz");
        } catch (const shardnet::error&) {
        }
        at += length;
    }
    return 0;
}
