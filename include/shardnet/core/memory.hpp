// How much memory this process may still allocate, and sizes written for people: the memory
// preflights compare what a run needs with this before they allocate anything.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

namespace shardnet {

namespace detail {

/// The first number of a one-line file such as a cgroup limit; nothing for "max" or a
/// missing file.
inline bool read_first_number(const char* path, std::uint64_t& value) {
    std::ifstream in(path);
    std::string word;
    if (!(in >> word) || word.empty() || word.find_first_not_of("0123456789") != std::string::npos)
        return false;
    std::istringstream(word) >> value;
    return true;
}

/// MemAvailable of /proc/meminfo in bytes (what the kernel could give without swapping).
inline bool read_mem_available(std::uint64_t& value) {
    std::ifstream in("/proc/meminfo");
    std::string key, unit;
    std::uint64_t kib = 0;
    while (in >> key >> kib) {
        std::getline(in, unit);
        if (key == "MemAvailable:") {
            value = kib * 1024;
            return true;
        }
    }
    return false;
}

}  // namespace detail

/// Bytes this process can still allocate on its node, as the kernel sees it: the smaller of
/// the node's available memory and the room left under this process's cgroup limit (a batch
/// scheduler's allocation). Shared by every process on the node. Not collective.
inline std::uint64_t available_memory_bytes() {
    std::uint64_t available = std::numeric_limits<std::uint64_t>::max();
    if (!detail::read_mem_available(available)) {
        const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0)
            available = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
    }
    std::uint64_t limit = 0, used = 0;
    // cgroup v2, then v1.
    if ((detail::read_first_number("/sys/fs/cgroup/memory.max", limit) &&
         detail::read_first_number("/sys/fs/cgroup/memory.current", used)) ||
        (detail::read_first_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) &&
         detail::read_first_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", used)))
        if (limit > used && limit - used < available) available = limit - used;
    return available;
}

/// "3.9 GiB", "512 KiB", "17 bytes": a size as people read it.
inline std::string format_bytes(std::uint64_t bytes) {
    const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 6) {
        value /= 1024;
        ++unit;
    }
    std::ostringstream out;
    out.precision(unit == 0 ? 0 : (value < 10 ? 2 : value < 100 ? 1 : 0));
    out << std::fixed << value << ' ' << units[unit];
    return out.str();
}

}  // namespace shardnet
