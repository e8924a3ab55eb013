// The sum over a group of a layer's partial products (row_split's z, column_split's dx, block2d's
// both), in the precision the layer computes in: fp32 sums travel as fp32; a bf16 mixed-precision
// layer's travel as bf16, half the bytes, as its gathered activations do (core/precision.hpp).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "shardnet/comm/async.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/kernels/gemm_pack.hpp"

namespace shardnet {

namespace detail {

/// packing_buffer slots of the bf16 sums' own (the GEMMs use 0 and 1): a started sum's buffer
/// is in flight while the dW product runs, so it must never be a panel a GEMM packs into.
inline constexpr int sum_slot = 2, started_sum_slot = 3;

/// Whether a layer with GEMM operands In sums its partials in bf16.
template <class In, class T>
inline constexpr bool sums_in_bf16 = std::is_same_v<In, bfloat16>&& std::is_same_v<T, float>;

}  // namespace detail

/// A started sum of partial products: wait() completes it and leaves the sum in the caller's
/// buffer. Destroying it without wait() waits for the collective but leaves the buffer as it was.
template <class Request>
class pending_partial_sum {
  public:
    /// An fp32 (or double) sum: the request works on the caller's buffer itself.
    explicit pending_partial_sum(Request request) : request_(std::move(request)) {}
    /// A bf16 sum: the request works on `low`; wait() widens it back into `data`.
    pending_partial_sum(Request request, const bfloat16* low, float* data, std::size_t n)
        : request_(std::move(request)), low_(low), data_(data), n_(n) {}

    void wait() {
        request_.wait();
        if (low_ != nullptr) to_float(low_, data_, n_);
        low_ = nullptr;
    }

  private:
    Request request_;
    const bfloat16* low_ = nullptr;
    float* data_ = nullptr;
    std::size_t n_ = 0;
};

/// data[0, n) summed over comm's group, in place. With In = bfloat16 (a bf16 mixed-precision
/// layer, T = float) the values are rounded to bf16, summed as bf16 (one rounding per addition)
/// and widened back: the layer rounds its activations and dZ to bf16 next anyway, so this adds one
/// rounding of each rank's partial (2^-9 relative) and halves the bytes. On one rank nothing is
/// rounded (the all-reduce, of the bf16 buffer, is still called: a communicator that counts
/// collectives sees the same calls on any group size). Collective over comm.
template <class In, communicator Comm, class T>
void sum_partials(Comm& comm, T* data, std::size_t n) {
    if constexpr (detail::sums_in_bf16<In, T>) {
        bfloat16* low = detail::packing_buffer<bfloat16, detail::sum_slot>(n);
        const bool alone = comm.size() == 1;
        if (!alone) to_bfloat16(data, low, n);
        comm.all_reduce(low, n, reduce_op::sum);
        if (!alone) to_float(low, data, n);
    } else {
        comm.all_reduce(data, n, reduce_op::sum);
    }
}

/// sum_partials() started, to overlap with other work: complete it with wait() on the result.
/// Collective over comm. The bf16 buffers are this thread's grow-only scratch (packing_buffer,
/// kernels/gemm_pack.hpp, in slots no GEMM uses): one started sum at a time.
template <class In, communicator Comm, class T>
[[nodiscard]] auto start_sum_partials(Comm& comm, T* data, std::size_t n) {
    if constexpr (detail::sums_in_bf16<In, T>) {
        bfloat16* low = detail::packing_buffer<bfloat16, detail::started_sum_slot>(n);
        if (comm.size() == 1)  // nothing to round or widen back
            return pending_partial_sum(start_all_reduce(comm, low, n, reduce_op::sum));
        to_bfloat16(data, low, n);
        return pending_partial_sum(start_all_reduce(comm, low, n, reduce_op::sum), low, data, n);
    } else {
        return pending_partial_sum(start_all_reduce(comm, data, n, reduce_op::sum));
    }
}

}  // namespace shardnet
