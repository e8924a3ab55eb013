// The communicator concept: the one extension point through which every collective flows.
// A user type that satisfies it can replace MPI (or wrap it) in every shardnet template.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace shardnet {

/// Element-wise reduction of all_reduce and reduce_scatter.
enum class reduce_op { sum, max, min };

constexpr std::string_view to_string(reduce_op op) {
    switch (op) {
        case reduce_op::sum:
            return "sum";
        case reduce_op::max:
            return "max";
        case reduce_op::min:
            return "min";
    }
    return "?";
}

/// The collectives a communicator offers on buffers of T (pointer + count, never serialized).
/// All are collective over the communicator's group and must be entered by every rank with
/// matching counts.
/// - `all_reduce(data, n, op)`: in place, every rank ends with the reduction of all ranks' data.
/// - `broadcast(data, n, root)`: every rank ends with root's n elements.
/// - `all_gather(in, n, out)`: out (size() * n elements) holds every rank's n elements in rank
///   order.
/// - `all_gather(in, out, counts)`: varying counts; rank r contributes counts[r] elements and
///   out holds sum(counts) elements in rank order.
/// - `reduce_scatter(in, out, counts)`: in holds sum(counts) elements on every rank; rank r
///   receives in out the counts[r] elements of the element-wise sum that start at
///   counts[0] + ... + counts[r-1].
template <class C, class T>
concept collectives_on = requires(C& c, T* out, const T* in, std::size_t n,
                                  std::span<const std::size_t> counts, reduce_op op,
                                  std::size_t root) {
    c.all_reduce(out, n, op);
    c.broadcast(out, n, root);
    c.all_gather(in, n, out);
    c.all_gather(in, out, counts);
    c.reduce_scatter(in, out, counts);
};

/// A communicator policy: a group of ranks and the collectives shardnet needs, on float and
/// double (arithmetic), std::int64_t (control: flags, sizes) and char (broadcast of messages).
///
/// Requires: rank() and size() of this rank in the group; barrier(); split(color, key), which
/// is collective and returns the sub-group of ranks that passed the same color, ordered by key,
/// as a communicator of the same type.
/// A communicator may also offer `all_reduce_async(data, n, op)` returning an object whose
/// `wait()` completes it (see comm/async.hpp); without it shardnet falls back to all_reduce.
/// bf16 mixed precision (core/precision.hpp) also moves bfloat16: all_gather, and all_reduce
/// with reduce_op::sum (adding as floats, as mpi_communicator's does; partition/partial_sum.hpp).
template <class C>
concept communicator = std::move_constructible<C> &&
    requires(C& c, const C& cc, int color, int key, char* text, std::size_t n, std::size_t root) {
    { cc.rank() } -> std::convertible_to<std::size_t>;
    { cc.size() } -> std::convertible_to<std::size_t>;
    c.barrier();
    { c.split(color, key) } -> std::same_as<C>;
    c.broadcast(text, n, root);
} && collectives_on<C, float> && collectives_on<C, double> && collectives_on<C, std::int64_t>;

}  // namespace shardnet
