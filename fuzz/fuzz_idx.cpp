// Fuzzes the IDX loader: the first byte says where the images file ends and the labels begin.
// Either part that starts with 1F 8B goes through the gzip path (zlib's inflate); the corpus
// has gzip seeds (valid, truncated, bad CRC, two members) so that mutations start from there.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "shardnet/train/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::size_t split = rest.size() * data[0] / 255;
    std::istringstream images(rest.substr(0, split)), labels(rest.substr(split));
    try {
        shardnet::load_idx_from_streams<float>(images, "images.idx", labels, "labels.idx");
    } catch (const shardnet::error&) {
    }
    return 0;
}
