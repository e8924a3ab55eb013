// Fuzzes the checkpoint manifest decoder: as is (framing, magic, size, CRC checks) and re-framed
// with a correct size and CRC, so that mutations reach the Boost.Serialization payload parser.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "shardnet/io/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto* bytes = reinterpret_cast<const char*>(data);
    try {
        shardnet::decode_manifest(bytes, size, "fuzz");
    } catch (const shardnet::error&) {
    }
    if (size >= shardnet::detail::manifest_header_bytes) {
        std::string framed(bytes, size);
        const std::uint64_t payload = size - shardnet::detail::manifest_header_bytes;
        std::memcpy(framed.data(), shardnet::detail::manifest_magic, 8);
        shardnet::detail::put_u32(framed.data() + 8, shardnet::checkpoint_format_version);
        shardnet::detail::put_u64(framed.data() + 16, payload);
        shardnet::detail::put_u32(
            framed.data() + 12,
            shardnet::crc32::of(framed.data() + shardnet::detail::manifest_header_bytes, payload));
        try {
            shardnet::decode_manifest(framed.data(), framed.size(), "fuzz-framed");
        } catch (const shardnet::error&) {
        }
    }
    return 0;
}
