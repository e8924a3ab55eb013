// Output files a run writes besides checkpoints (metrics, losses, reports): checked when the
// run starts, so that a bad path fails before hours of training and an output can never be
// one of the run's inputs; written so that a reader never sees half a file, and a full disk is
// an error, not a silent loss.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "shardnet/core/error.hpp"

namespace shardnet {

/// Whether a and b name the same file (or would: nonexistent paths compare by their absolute,
/// normalized form). Not collective.
inline bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
    std::error_code ec;
    if (std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec))
        return std::filesystem::equivalent(a, b, ec);
    return std::filesystem::weakly_canonical(a, ec) == std::filesystem::weakly_canonical(b, ec);
}

/// Checks that `path` can be written as the output named `what` ("--metrics"): its directory
/// exists and is writable, it is not a directory, and it is none of `inputs`. Creates and
/// truncates nothing. Not collective (agree on it).
/// @throws error naming the option, the path and the reason.
inline void check_output_path(const std::filesystem::path& path, std::string_view what,
                              const std::vector<std::filesystem::path>& inputs) {
    auto fail = [&](const auto&... parts) {
        throw error(detail::concat(what, " '", path.string(), "': ", parts...));
    };
    for (const auto& input : inputs)
        if (!input.empty() && same_file(path, input))
            fail("is also an input of this run ('", input.string(),
                 "'); an output never overwrites an input");
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail("is a directory, expected a file");
    std::filesystem::path parent = path.parent_path();
    if (parent.empty()) parent = ".";
    if (!std::filesystem::is_directory(parent, ec))
        fail("its directory '", parent.string(), "' does not exist");
    const bool exists = std::filesystem::exists(path, ec);
    if (::access(exists ? path.c_str() : parent.c_str(), W_OK) != 0)
        fail("cannot be written: ", std::strerror(errno));
}

/// Writes `content` to `path` so that the file holds either its old content or all of the
/// new: a regular file is written beside it, synced and renamed over it; anything else (a
/// terminal, a pipe, /dev/full) is written directly. Not collective.
/// @throws error naming `what` and the path if any write, sync or rename fails (a full disk).
inline void write_file_atomically(const std::filesystem::path& path, std::string_view content,
                                  std::string_view what) {
    auto fail = [&](const std::string& why) {
        throw error(detail::concat(what, " '", path.string(), "' cannot be written: ", why));
    };
    std::error_code ec;
    const bool direct =
        std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec);
    const std::filesystem::path target =
        direct ? path : std::filesystem::path(path.string() + ".tmp-" + std::to_string(::getpid()));
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail(std::strerror(errno));
    const char* p = content.data();
    std::size_t left = content.size();
    std::string why;
    while (left > 0 && why.empty()) {
        const ::ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            why = std::strerror(n < 0 ? errno : ENOSPC);
        else {
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }
    if (why.empty() && !direct && ::fsync(fd) != 0) why = std::strerror(errno);
    if (::close(fd) != 0 && why.empty()) why = std::strerror(errno);
    if (why.empty() && !direct && ::rename(target.c_str(), path.c_str()) != 0)
        why = std::strerror(errno);
    if (why.empty() && !direct) {  // make the rename itself durable
        std::filesystem::path parent = path.parent_path();
        const int dir_fd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY);
        if (dir_fd >= 0) {
            ::fsync(dir_fd);
            ::close(dir_fd);
        }
    }
    if (!why.empty()) {
        if (!direct) std::filesystem::remove(target, ec);
        fail(why);
    }
}

}  // namespace shardnet
