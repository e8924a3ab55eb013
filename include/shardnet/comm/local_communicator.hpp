// A group of one rank with no MPI at all: every collective is a copy or nothing. For
// single-process use, unit tests and programs that must run where MPI is absent.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"

namespace shardnet {

/// Satisfies `communicator` for a group of exactly one rank.
class local_communicator {
  public:
    std::size_t rank() const { return 0; }
    std::size_t size() const { return 1; }
    void barrier() {}
    /// Every color and key gives the same one-rank group.
    local_communicator split(int /*color*/, int /*key*/) const { return {}; }

    template <class T>
    void all_reduce(T* /*data*/, std::size_t /*n*/, reduce_op /*op*/) {}

    template <class T>
    void broadcast(T* /*data*/, std::size_t /*n*/, std::size_t root) {
        SHARDNET_ASSERT(root == 0);
    }
    template <class T>
    void all_gather(const T* in, std::size_t n, T* out) {
        if (in != out) std::copy_n(in, n, out);
    }
    template <class T>
    void all_gather(const T* in, T* out, std::span<const std::size_t> counts) {
        SHARDNET_ASSERT(counts.size() == 1);
        if (in != out) std::copy_n(in, counts[0], out);
    }
    template <class T>
    void reduce_scatter(const T* in, T* out, std::span<const std::size_t> counts) {
        SHARDNET_ASSERT(counts.size() == 1);
        if (in != out) std::copy_n(in, counts[0], out);
    }
};

}  // namespace shardnet
