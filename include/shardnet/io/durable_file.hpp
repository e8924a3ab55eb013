// Files that survive a crash: written with plain POSIX calls, fsync'ed before they count, and
// directories published by one atomic rename, so a reader sees either the old state or the
// complete new one, never a half-written file that looks valid.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "shardnet/core/error.hpp"
#include "shardnet/io/checksum.hpp"

namespace shardnet {

namespace detail {

inline std::string errno_text() {
    return std::strerror(errno);
}

}  // namespace detail

/// A file created (or truncated) for writing. Tracks its size and the CRC-32 of everything
/// written; close() fsyncs before closing, so a file that closed without an error is on disk.
class durable_writer {
  public:
    /// @throws error naming the file if it cannot be created.
    explicit durable_writer(std::filesystem::path path) : path_(std::move(path)) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0)
            throw error(detail::concat("checkpoint file '", path_.string(),
                                       "' cannot be created: ", detail::errno_text()));
    }
    durable_writer(const durable_writer&) = delete;
    durable_writer& operator=(const durable_writer&) = delete;
    ~durable_writer() {
        if (fd_ >= 0) ::close(fd_);  // only on an error path: the file is abandoned anyway
    }

    /// Appends bytes. @throws error naming the file on a write error (a full disk).
    void write(const void* data, std::size_t bytes) {
        const char* p = static_cast<const char*>(data);
        crc_.update(p, bytes);
        size_ += bytes;
        while (bytes > 0) {
            const ::ssize_t written = ::write(fd_, p, bytes);
            if (written < 0 && errno == EINTR) continue;
            if (written <= 0)
                throw error(detail::concat("checkpoint file '", path_.string(),
                                           "' cannot be written: ", detail::errno_text()));
            p += written;
            bytes -= static_cast<std::size_t>(written);
        }
    }

    /// fsyncs and closes. @throws error naming the file if either fails.
    void close() {
        const int fd = std::exchange(fd_, -1);
        // Close even when fsync fails (the descriptor would leak otherwise); report the first
        // failure.
        const bool synced = ::fsync(fd) == 0;
        const int sync_errno = errno;
        const bool closed = ::close(fd) == 0;
        if (!synced) errno = sync_errno;
        if (!synced || !closed)
            throw error(detail::concat("checkpoint file '", path_.string(),
                                       "' cannot be synced to disk: ", detail::errno_text()));
    }

    std::uint64_t size() const { return size_; }
    std::uint32_t checksum() const { return crc_.value(); }
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
    crc32 crc_;
};

/// fsyncs a directory, which makes the names created, renamed or removed in it durable.
/// @throws error naming the directory on failure.
inline void sync_directory(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
        const std::string why = detail::errno_text();
        if (fd >= 0) ::close(fd);
        throw error(detail::concat("checkpoint directory '", dir.string(),
                                   "' cannot be synced to disk: ", why));
    }
    ::close(fd);
}

/// Publishes a fully written and synced directory `from` under the name `to` (same parent)
/// with one rename(2), then syncs the parent: readers see all of it or none of it.
/// @pre `to` does not exist.
/// @throws error naming both paths on failure.
inline void publish_directory(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        throw error(detail::concat("checkpoint '", from.string(), "' cannot be published as '",
                                   to.string(), "': ", detail::errno_text()));
    sync_directory(to.parent_path().empty() ? std::filesystem::path(".") : to.parent_path());
}

}  // namespace shardnet
