// Fuzzes the CSV loader on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "shardnet/train/csv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    try {
        shardnet::load_csv_from_stream<float>(in, "fuzz.csv");
    } catch (const shardnet::error&) {
    }
    return 0;
}
