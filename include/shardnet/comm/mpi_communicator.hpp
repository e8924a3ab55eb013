// The default communicator: Boost.MPI for what it offers, the raw MPI_Comm for what it lacks
// (varying-count gathers, reduce-scatter, non-blocking all-reduce, the bfloat16 sum). Buffers
// always travel as MPI arrays of float/double/int64/bfloat16, never through Boost.Serialization.
#pragma once

#include <mpi.h>

#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/exception.hpp>
#include <boost/mpi/operations.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/error.hpp"

/// Checks a raw MPI call and throws the same kind as Boost.MPI does on failure.
#define SHARDNET_MPI_CHECK(call)                                       \
    do {                                                               \
        const int shardnet_mpi_result = (call);                        \
        if (shardnet_mpi_result != MPI_SUCCESS)                        \
            throw ::boost::mpi::exception(#call, shardnet_mpi_result); \
    } while (false)

namespace shardnet {

namespace detail {

template <class T>
MPI_Datatype mpi_type() {
    // MPI has no bfloat16: its values move as their 16 bits, and are summed by bfloat16_sum_op.
    if constexpr (std::is_same_v<T, bfloat16>)
        return MPI_UINT16_T;
    else
        return boost::mpi::get_mpi_datatype<T>(T{});
}

/// The MPI_User_function of bfloat16_sum_op: inout[i] = bf16(float(in[i]) + float(inout[i])),
/// one rounding per addition, as a bf16 all-reduce in PyTorch or NCCL does.
inline void bfloat16_sum(void* in, void* inout, int* length, MPI_Datatype*) {
    const auto* a = static_cast<const bfloat16*>(in);
    auto* b = static_cast<bfloat16*>(inout);
    for (int i = 0; i < *length; ++i)
        b[i] = to_bfloat16(to_float(a[i]) + to_float(b[i]));
}

/// The sum of bfloat16 values carried as MPI_UINT16_T (MPI's own MPI_SUM would add the bit
/// patterns as integers). Created on first use, commutative; MPI frees it at finalize.
inline MPI_Op bfloat16_sum_op() {
    static const MPI_Op op = [] {
        MPI_Op created = MPI_OP_NULL;
        SHARDNET_MPI_CHECK(MPI_Op_create(&bfloat16_sum, 1, &created));
        return created;
    }();
    return op;
}

inline MPI_Op mpi_op(reduce_op op) {
    switch (op) {
        case reduce_op::sum:
            return MPI_SUM;
        case reduce_op::max:
            return MPI_MAX;
        case reduce_op::min:
            return MPI_MIN;
    }
    SHARDNET_ASSERT(false);
    return MPI_SUM;
}

/// The MPI_Op that reduces T by op. bfloat16 values (bf16 mixed precision's partial sums) are
/// summed only: their max and min have no use here, and no MPI_Op.
/// @throws error for a bfloat16 max or min.
template <class T>
MPI_Op mpi_op_for(reduce_op op) {
    if constexpr (std::is_same_v<T, bfloat16>) {
        if (op != reduce_op::sum)
            throw error(concat("mpi_communicator: bfloat16 values reduce by sum only, got ",
                               to_string(op)));
        return bfloat16_sum_op();
    } else {
        return mpi_op(op);
    }
}

/// A pending non-blocking collective. Waiting is idempotent; the destructor waits, so a
/// request can never outlive the buffers of the scope that started it.
class mpi_request {
  public:
    mpi_request() = default;
    explicit mpi_request(MPI_Request r) : request_(r) {}
    mpi_request(mpi_request&& other) noexcept
        : request_(std::exchange(other.request_, MPI_REQUEST_NULL)) {}
    mpi_request& operator=(mpi_request&& other) noexcept {
        if (this != &other) {
            finish_quietly();
            request_ = std::exchange(other.request_, MPI_REQUEST_NULL);
        }
        return *this;
    }
    ~mpi_request() { finish_quietly(); }

    /// Completes the collective. Collective in the sense of the call that started it.
    void wait() {
        if (request_ != MPI_REQUEST_NULL)
            SHARDNET_MPI_CHECK(MPI_Wait(&request_, MPI_STATUS_IGNORE));
    }

    /// Lets the collective progress without blocking; true once it is complete.
    bool test() {
        if (request_ == MPI_REQUEST_NULL) return true;
        int done = 0;
        SHARDNET_MPI_CHECK(MPI_Test(&request_, &done, MPI_STATUS_IGNORE));
        return done != 0;
    }

  private:
    void finish_quietly() noexcept {
        if (request_ != MPI_REQUEST_NULL) MPI_Wait(&request_, MPI_STATUS_IGNORE);
    }
    MPI_Request request_ = MPI_REQUEST_NULL;
};

}  // namespace detail

/// A communicator over an MPI group, held as a boost::mpi::communicator. Copies share the
/// group (like boost::mpi::communicator copies do).
/// @pre MPI is initialized (a boost::mpi::environment lives in main), with at least
///      threading::funneled when non-blocking collectives are overlapped with computation.
class mpi_communicator {
  public:
    /// The world group.
    mpi_communicator() : mpi_communicator(boost::mpi::communicator()) {}
    explicit mpi_communicator(boost::mpi::communicator comm)
        : comm_(std::move(comm)),
          rank_(static_cast<std::size_t>(comm_.rank())),
          size_(static_cast<std::size_t>(comm_.size())) {}

    // Cached at construction: a group never changes, and every collective asks, which at a
    // few microseconds per small collective is not free.
    std::size_t rank() const { return rank_; }
    std::size_t size() const { return size_; }
    /// The underlying Boost.MPI communicator, for what shardnet does not wrap.
    const boost::mpi::communicator& boost_communicator() const { return comm_; }
    /// The raw handle.
    MPI_Comm native() const { return static_cast<MPI_Comm>(comm_); }

    /// Collective over this group.
    void barrier() { comm_.barrier(); }

    /// Collective over this group: the ranks with the same color, ordered by key.
    mpi_communicator split(int color, int key) const {
        return mpi_communicator(comm_.split(color, key));
    }

    /// Collective over this group: in-place element-wise reduction. bfloat16 values are summed
    /// with one rounding per addition; their max and min are refused.
    template <class T>
    void all_reduce(T* data, std::size_t n, reduce_op op) {
        const MPI_Op mpi_op = detail::mpi_op_for<T>(op);
        if (size() == 1) return;
        SHARDNET_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, detail::to_mpi_count(n),
                                         detail::mpi_type<T>(), mpi_op, native()));
    }

    /// Collective over this group: starts an in-place all-reduce; the caller overlaps work and
    /// then calls wait() on the result (or lets it go out of scope, which waits).
    template <class T>
    [[nodiscard]] detail::mpi_request all_reduce_async(T* data, std::size_t n, reduce_op op) {
        const MPI_Op mpi_op = detail::mpi_op_for<T>(op);
        if (size() == 1) return {};
        MPI_Request request = MPI_REQUEST_NULL;
        SHARDNET_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, detail::to_mpi_count(n),
                                          detail::mpi_type<T>(), mpi_op, native(), &request));
        return detail::mpi_request(request);
    }

    /// Collective over this group.
    template <class T>
    void broadcast(T* data, std::size_t n, std::size_t root) {
        // Nothing to send: every rank passes the same n, so all skip together (an empty
        // vector's data() may be null, which Boost.MPI would dereference).
        if (size() == 1 || n == 0) return;
        boost::mpi::broadcast(comm_, data, detail::to_mpi_count(n), static_cast<int>(root));
    }

    /// Collective over this group: equal counts.
    template <class T>
    void all_gather(const T* in, std::size_t n, T* out) {
        const int count = detail::to_mpi_count(n);
        SHARDNET_MPI_CHECK(MPI_Allgather(in, count, detail::mpi_type<T>(), out, count,
                                         detail::mpi_type<T>(), native()));
    }

    /// Collective over this group: varying counts (MPI_Allgatherv).
    template <class T>
    void all_gather(const T* in, T* out, std::span<const std::size_t> counts) {
        fill_counts(counts, true);
        SHARDNET_MPI_CHECK(MPI_Allgatherv(in, scratch_->counts[rank()], detail::mpi_type<T>(), out,
                                          scratch_->counts.data(), scratch_->displacements.data(),
                                          detail::mpi_type<T>(), native()));
    }

    /// Collective over this group: sum of `in` over ranks, rank r keeps block r.
    template <class T>
    void reduce_scatter(const T* in, T* out, std::span<const std::size_t> counts) {
        const MPI_Op sum = detail::mpi_op_for<T>(reduce_op::sum);
        fill_counts(counts, false);
        SHARDNET_MPI_CHECK(MPI_Reduce_scatter(in, out, scratch_->counts.data(),
                                              detail::mpi_type<T>(), sum, native()));
    }

  private:
    // MPI wants int arrays; converting on every call must not allocate in a training step, so
    // the arrays live here and only grow.
    struct count_scratch {
        std::vector<int> counts;
        std::vector<int> displacements;
    };

    void fill_counts(std::span<const std::size_t> counts, bool with_displacements) {
        SHARDNET_ASSERT(counts.size() == size());
        scratch_->counts.resize(counts.size());
        scratch_->displacements.resize(counts.size());
        std::size_t offset = 0;
        for (std::size_t r = 0; r < counts.size(); ++r) {
            scratch_->counts[r] = detail::to_mpi_count(counts[r]);
            if (with_displacements) scratch_->displacements[r] = detail::to_mpi_count(offset);
            offset += counts[r];
        }
    }

    boost::mpi::communicator comm_;
    std::size_t rank_, size_;
    std::shared_ptr<count_scratch> scratch_ = std::make_shared<count_scratch>();
};

}  // namespace shardnet
