// Overlap of communication with computation, explicit and testable: start an all-reduce,
// compute, wait. Communicators without a non-blocking all-reduce fall back to a blocking one.
#pragma once

#include <cstddef>

#include "shardnet/comm/communicator.hpp"

namespace shardnet {

namespace detail {
template <class C, class T>
concept has_async_all_reduce = requires(C& c, T* data, std::size_t n, reduce_op op) {
    {c.all_reduce_async(data, n, op).wait()};
};

/// Lets a pending request advance if its type can (`test()`, as MPI_Test): MPI moves a
/// non-blocking collective forward only inside MPI calls, so long computations poll between
/// their parts. Requests without test() are left alone.
template <class Request>
void poll(Request& r) {
    if constexpr (requires { r.test(); }) r.test();
}

/// Stands in for a request when the all-reduce already ran to completion.
struct completed_request {
    void wait() {}
};
}  // namespace detail

/// Collective over comm's group: starts `all_reduce(data, n, op)` and returns an object whose
/// `wait()` completes it. Until then `data` must not be touched.
template <communicator Comm, class T>
[[nodiscard]] auto start_all_reduce(Comm& comm, T* data, std::size_t n, reduce_op op) {
    if constexpr (detail::has_async_all_reduce<Comm, T>) {
        return comm.all_reduce_async(data, n, op);
    } else {
        comm.all_reduce(data, n, op);
        return detail::completed_request{};
    }
}

}  // namespace shardnet
