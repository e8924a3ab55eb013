// The one exception type users catch, the internal assertion macro, and the checked size
// conversion used at every MPI boundary.
#pragma once

#include <climits>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>

namespace shardnet {

/// Thrown for every problem a user can cause: bad shapes, bad files, bad configuration.
/// When the problem could differ between ranks, all ranks of the group agree on it first
/// and throw the same message (see comm/agree.hpp), so no rank is left in a collective.
class error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A shardnet::error that every rank of a group of group_size() ranks throws at the same
/// point with the same message: it comes out of an agreement (comm/agree.hpp) or out of a
/// check whose outcome is the same on every rank by construction. When the group is the whole
/// world, every rank may catch it and return from main: no rank is left inside a collective.
/// Any other error is fatal for the job (comm/collective_main.hpp aborts it).
class agreed_error : public error {
  public:
    agreed_error(const std::string& message, std::size_t group_size)
        : error(message), group_size_(group_size) {}
    /// How many ranks throw this error together.
    std::size_t group_size() const noexcept { return group_size_; }

  private:
    std::size_t group_size_;
};

namespace detail {

/// Builds a message from any streamable parts: `concat("layer ", i, ": got ", n)`.
template <class... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return out.str();
}

[[noreturn]] inline void assertion_failed(const char* condition, const char* file, int line) {
    throw std::logic_error(
        concat("shardnet internal error: ", condition, " failed at ", file, ":", line));
}

/// Sizes are std::size_t everywhere; MPI counts are int. This is the one place they meet.
inline int to_mpi_count(std::size_t n) {
    if (n > static_cast<std::size_t>(INT_MAX))
        throw error(concat("message of ", n, " elements exceeds MPI's int count limit ", INT_MAX));
    return static_cast<int>(n);
}

}  // namespace detail
}  // namespace shardnet

/// Internal invariants (never user input): a failure is a bug in shardnet.
#define SHARDNET_ASSERT(condition)                                                              \
    do {                                                                                        \
        if (!(condition)) ::shardnet::detail::assertion_failed(#condition, __FILE__, __LINE__); \
    } while (false)
