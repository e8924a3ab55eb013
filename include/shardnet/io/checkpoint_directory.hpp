// Checkpoint directories: how checkpoints are named and listed, which run each belongs to,
// the lock that keeps two runs out of one directory, and the leftovers of unfinished saves.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <cerrno>
#include <ctime>

#include "shardnet/core/error.hpp"
#include "shardnet/core/printable.hpp"
#include "shardnet/io/durable_file.hpp"
#include "shardnet/io/manifest.hpp"

namespace shardnet {

/// "step-000000000042": the directory name of the checkpoint after `step` steps. Zero-padded
/// so that names sort like steps.
inline std::string checkpoint_name(std::uint64_t step) {
    std::string digits = std::to_string(step);
    return "step-" + std::string(digits.size() < 12 ? 12 - digits.size() : 0, '0') + digits;
}

/// The step of a published checkpoint's directory name, or nothing for any other name
/// (including the temporary directories of unfinished saves, and names that are not exactly
/// checkpoint_name(step): "step-42" would be read and removed under another name).
inline std::optional<std::uint64_t> checkpoint_step(std::string_view name) {
    if (name.size() < 6 || name.substr(0, 5) != "step-" || name.size() > 5 + 19) return {};
    std::uint64_t step = 0;
    for (char c : name.substr(5)) {
        if (c < '0' || c > '9') return {};
        step = step * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (checkpoint_name(step) != name) return {};
    return step;
}

/// Steps of the published checkpoints in `dir`, ascending; empty if dir does not exist.
/// Not collective: reads the directory on this rank.
inline std::vector<std::uint64_t> list_checkpoints(const std::filesystem::path& dir) {
    std::vector<std::uint64_t> steps;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (auto step = checkpoint_step(it->path().filename().string())) steps.push_back(*step);
    std::sort(steps.begin(), steps.end());
    return steps;
}

/// The newest published checkpoint in `dir`, if any. A published checkpoint is complete by
/// construction (it appears by one rename after all its files were synced). Not collective.
inline std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir) {
    const auto steps = list_checkpoints(dir);
    if (steps.empty()) return {};
    return dir / checkpoint_name(steps.back());
}

namespace detail {

inline void remove_quietly(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
}

/// Rank 0's part of a save that runs before any shard is written: the directory exists and
/// this save's staging directory is empty. Only this step's leftovers are touched: another
/// saver's staging may be in use (the run's lock clears the others, see
/// checkpoint_directory_lock).
inline void prepare_staging(const std::filesystem::path& dir,
                            const std::filesystem::path& staging) {
    try {
        std::filesystem::create_directories(dir);
        remove_quietly(staging);
        std::filesystem::create_directory(staging);
    } catch (const std::filesystem::filesystem_error& e) {
        throw error(concat("checkpoint directory '", dir.string(),
                           "' cannot be prepared: ", e.code().message()));
    }
}

}  // namespace detail

/// One entry of a checkpoint directory named like a checkpoint, and what could be read of it.
struct checkpoint_entry {
    std::uint64_t step = 0;
    std::filesystem::path path;
    /// The manifest, if the entry is a directory whose manifest reads and validates.
    std::optional<checkpoint_manifest> manifest;
    /// Why the manifest could not be read (a stray file, a damaged or foreign directory).
    std::string problem;
};

/// Every entry of `dir` named like a published checkpoint, newest first, with its manifest
/// read (not its shard files). Not collective. Empty if dir does not exist.
inline std::vector<checkpoint_entry> scan_checkpoints(const std::filesystem::path& dir) {
    std::vector<checkpoint_entry> entries;
    for (std::uint64_t step : list_checkpoints(dir)) {
        checkpoint_entry e;
        e.step = step;
        e.path = dir / checkpoint_name(step);
        std::error_code ec;
        if (!std::filesystem::is_directory(e.path, ec))
            e.problem = "not a checkpoint directory";
        else
            try {
                e.manifest = read_manifest(e.path / "manifest.bin");
            } catch (const error& failure) {
                e.problem = failure.what();
            }
        entries.push_back(std::move(e));
    }
    std::reverse(entries.begin(), entries.end());
    return entries;
}

/// An exclusive hold on a checkpoint directory for the life of a run: a second run that
/// tries to take it (on any node that shares the file system's locks) fails with a message
/// naming the holder. Held by one rank (world rank 0). Taken with flock(2) on DIR/.lock, so
/// the kernel releases it when the holder ends, even by SIGKILL: a crashed run never leaves
/// the directory locked. Once held, staging directories left by crashed saves are removed.
class checkpoint_directory_lock {
  public:
    /// Creates `dir` if needed and takes the lock. Not collective (agree on the outcome).
    /// @throws error naming the directory and the holder's host, pid and start time.
    explicit checkpoint_directory_lock(const std::filesystem::path& dir) : dir_(dir) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        const std::filesystem::path file = dir / ".lock";
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0)
            throw error(detail::concat("checkpoint directory '", dir.string(), "' cannot be used: ",
                                       detail::errno_text(), ec ? " (" + ec.message() + ")" : ""));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) {
                const std::string why = detail::errno_text();
                ::close(fd_);
                fd_ = -1;
                throw error(detail::concat("checkpoint directory '", dir.string(),
                                           "' cannot be locked (does this file system support "
                                           "flock?): ",
                                           why));
            }
            std::string holder(256, '\0');
            const ::ssize_t got = ::pread(fd_, holder.data(), holder.size(), 0);
            holder.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
            while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0'))
                holder.pop_back();
            ::close(fd_);
            fd_ = -1;
            throw error(detail::concat(
                "checkpoint directory '", dir.string(), "' is in use by another run (",
                holder.empty() ? "holder unknown" : detail::printable(holder, 200),
                "); wait for it to end or choose another directory"));
        }
        const std::string me = holder_description();
        if (::ftruncate(fd_, 0) != 0 ||
            ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<::ssize_t>(me.size())) {
            // The lock holds without its description; only another run's message is poorer.
        }
        remove_stale_staging();
    }
    checkpoint_directory_lock(const checkpoint_directory_lock&) = delete;
    checkpoint_directory_lock& operator=(const checkpoint_directory_lock&) = delete;
    ~checkpoint_directory_lock() {
        if (fd_ >= 0) ::close(fd_);  // releases the flock
    }

  private:
    static std::string holder_description() {
        char host[256] = {};
        ::gethostname(host, sizeof(host) - 1);
        const std::time_t now = std::time(nullptr);
        char when[32] = {};
        std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
        return detail::concat("host ", host, ", pid ", ::getpid(), ", since ", when, "\n");
    }

    /// Staging directories of saves that never finished: with the lock held, no save can be
    /// under way, so each is a leftover. A save that replaced step-N was killed between its two
    /// renames if step-N is missing: the complete new copy (.tmp-, its manifest readable) is
    /// published, or else the old one (.old-) is put back. Everything else is removed.
    void remove_stale_staging() {
        std::error_code ec;
        std::vector<std::filesystem::path> leftovers;
        for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end;
             it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (name.rfind(".tmp-step-", 0) == 0 || name.rfind(".old-step-", 0) == 0)
                leftovers.push_back(it->path());
        }
        std::sort(leftovers.begin(), leftovers.end());  // ".old-" before ".tmp-" of a step
        for (auto it = leftovers.rbegin(); it != leftovers.rend(); ++it) {
            const std::string name = it->filename().string();
            const std::filesystem::path published = dir_ / name.substr(5);  // "step-..."
            bool complete = name.rfind(".old-", 0) == 0;
            if (!complete) try {
                    read_manifest(*it / "manifest.bin");
                    complete = true;
                } catch (const error&) {
                }
            if (complete && !std::filesystem::exists(published, ec) &&
                ::rename(it->c_str(), published.c_str()) == 0)
                continue;
            detail::remove_quietly(*it);
        }
    }

    std::filesystem::path dir_;
    int fd_ = -1;
};

namespace detail {

/// Removes the checkpoints of the run that wrote `kept_step` beyond the newest `keep` of that
/// run; never `kept_step` itself, never another run's checkpoint, never an entry whose
/// manifest cannot be read (it is not known to be ours). Not collective.
inline void prune_checkpoints(const std::filesystem::path& dir, std::uint64_t kept_step,
                              std::size_t keep, const std::string& run_settings) {
    std::size_t mine = 0;
    for (const auto& e : scan_checkpoints(dir)) {
        if (!e.manifest || e.manifest->position.run_settings != run_settings) continue;
        if (++mine > keep && e.step != kept_step) remove_quietly(e.path);
    }
}

}  // namespace detail

}  // namespace shardnet
