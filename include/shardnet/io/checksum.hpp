// CRC-32 of checkpoint files and records: cheap enough to compute while writing and while
// reading, strong enough to catch truncation, torn writes and flipped bits.
#pragma once

#include <boost/crc.hpp>
#include <cstddef>
#include <cstdint>

namespace shardnet {

/// A running CRC-32 (the zlib/PNG polynomial). Feed bytes in any chunking; value() is the
/// CRC of everything fed so far.
class crc32 {
  public:
    void update(const void* data, std::size_t bytes) { crc_.process_bytes(data, bytes); }
    std::uint32_t value() const { return crc_.checksum(); }

    /// The CRC-32 of one buffer.
    static std::uint32_t of(const void* data, std::size_t bytes) {
        crc32 c;
        c.update(data, bytes);
        return c.value();
    }

  private:
    boost::crc_32_type crc_;
};

}  // namespace shardnet
