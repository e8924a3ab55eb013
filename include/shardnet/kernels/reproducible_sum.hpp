// Sums over a split dimension that come out bitwise the same whatever the number of ranks
// splitting it: the reduction behind dense_options::reproducible.
//
// Why sums differ at all: a row_split layer's output is the sum over its input features, and
// each rank adds its own block of them before the all-reduce adds the blocks; P ranks round
// P partial sums, one rank rounds one. Float addition is not associative, so the last bits
// move with P, and in bf16 a moved bit can flip a rounding and grow from there.
//
// How: the dimension is cut into chunks at every boundary a split over 1 .. max_parts ranks
// could have (reproducible_chunk_bounds), so each rank's block is whole chunks for any such
// split. Each chunk's partial product is computed on its own, with the same operands and the
// same GEMM call wherever it lives, so it is the same float everywhere. The chunks are then
// added exactly: each is rounded once onto a fixed-point grid that every rank agrees on (from
// the largest partial anywhere), and the grid values are summed as 64-bit integers, whose
// addition is associative, by the ordinary all-reduce. The integer total is rounded back to
// T once. Cost: one product call per chunk, two vectorized passes over the partials (the largest,
// then onto the grid), one all-reduce of a scalar (the largest partial) and the sum itself in
// 8-byte integers.
//
// Precision: the grid's step is 2^(61 - ceil(log2 chunks)) below the largest partial of the
// whole product (about 2^-58 of it for up to 4 ranks). For float that is finer than float's own
// rounding for every output within 2^-34 of the largest; smaller outputs are resolved to the
// grid, an absolute error of a step. For double the grid is coarser than double's rounding for
// all but the largest outputs: still the same bits everywhere, to about 2^-58 of the largest.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/kernels/dense_products.hpp"
#include "shardnet/kernels/fixed_point_grid.hpp"
#include "shardnet/kernels/gemm_policy.hpp"

namespace shardnet {

/// The chunk boundaries of a dimension of n features that make its sums reproducible across
/// 1 .. max_parts ranks: every boundary balanced_shard(n, p, ·) has for p = 1 .. max_parts,
/// sorted, from 0 to n (n = 0: just {0}). Between 1 and about 0.3·max_parts² + 1 chunks.
inline std::vector<std::size_t> reproducible_chunk_bounds(std::size_t n, std::size_t max_parts) {
    std::vector<std::size_t> bounds{0, n};
    for (std::size_t parts = 2; parts <= max_parts; ++parts)
        for (std::size_t index = 1; index < parts; ++index)
            bounds.push_back(balanced_shard(n, parts, index).begin);
    std::sort(bounds.begin(), bounds.end());
    bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
    return bounds;
}

/// A product summed over a contraction dimension split across a group of ranks, bitwise
/// independent of the group's size (up to max_parts) and of which rank holds which block (see
/// the top of the file). One per contracted dimension of a layer; it owns the workspace, which
/// grows on first use and is then reused (no allocation in a steady training loop).
/// Default-constructed, it is off (enabled() is false).
template <class T>
class reproducible_sum {
  public:
    reproducible_sum() = default;

    /// For a dimension of `depth` features of which this rank holds `block` (a balanced_shard
    /// of it over at most max_parts ranks).
    /// @throws error if max_parts is 0 or block is not whole chunks (not such a shard).
    reproducible_sum(std::size_t depth, shard_range block, std::size_t max_parts) {
        if (max_parts == 0) throw error("reproducible_sum: max_parts must be at least 1");
        const std::vector<std::size_t> bounds = reproducible_chunk_bounds(depth, max_parts);
        chunks_ = bounds.size() - 1;
        const auto first = std::find(bounds.begin(), bounds.end(), block.begin);
        const auto last = std::find(bounds.begin(), bounds.end(), block.end);
        if (block.end > depth || first == bounds.end() || last == bounds.end())
            throw error(detail::concat(
                "reproducible_sum: the block [", block.begin, ", ", block.end, ") of ", depth,
                " features is not a split over at most ", max_parts, " ranks"));
        for (auto b = first; b <= last; ++b)
            local_bounds_.push_back(*b - block.begin);
    }

    bool enabled() const { return chunks_ != 0; }
    /// Chunks of the whole dimension, and of this rank's block.
    std::size_t chunks() const { return chunks_; }
    std::size_t local_chunks() const {
        return local_bounds_.empty() ? 0 : local_bounds_.size() - 1;
    }

    /// c = Σ over the whole contraction of op(A)·op(B), on every rank of `group`: op(A) is this
    /// rank's m x k block, A stored row-major (lda), its columns the rank's block of the
    /// dimension; op(B) its k x n block, B stored k x n (trans_b no) or n x k (yes) with ldb.
    /// c (m x n, ldc) is overwritten with the same bits on every rank and for every group size
    /// up to max_parts. Collective over `group` (two all-reduces). Non-finite partials fall back
    /// to a plain sum (the result is then inf or NaN either way).
    /// @pre enabled(); k of this rank is local_bounds' last value.
    template <gemm_policy Gemm, communicator Comm, class In>
    void product(Comm& group, transpose trans_b, std::size_t m, std::size_t n, const In* a,
                 std::size_t lda, const In* b, std::size_t ldb, T* c, std::size_t ldc) {
        SHARDNET_ASSERT(enabled());
        const std::size_t tile = m * n, local = local_chunks();
        if (partials_.size() < local * tile) partials_.resize(local * tile);
        if (fixed_.size() < tile) fixed_.resize(tile);

        // Every chunk alone, into its own m x n slab: the same call wherever the chunk lives.
        T agreed = T(0);  // the largest |partial|, inf if any is not finite
        for (std::size_t q = 0; q < local; ++q) {
            const std::size_t begin = local_bounds_[q], depth = local_bounds_[q + 1] - begin;
            const In* b_chunk = trans_b == transpose::no ? b + begin * ldb : b + begin;
            T* slab = partials_.data() + q * tile;
            detail::product<Gemm>(transpose::no, trans_b, m, n, depth, a + begin, lda, b_chunk, ldb,
                                  slab, n);
            agreed = std::max(agreed, detail::largest_magnitude(slab, tile));
        }
        group.all_reduce(&agreed, 1, reduce_op::max);
        if (!std::isfinite(agreed)) return plain_sum(group, m, n, c, ldc);

        // Below 2^61 whatever the chunks add up to.
        const fixed_point_grid grid(static_cast<double>(agreed), chunks_);
        // One pass over the slabs: each element's chunks in turn, onto the grid and added.
        detail::add_onto_grid(partials_.data(), tile, local, tile, grid, fixed_.data());
        group.all_reduce(fixed_.data(), tile, reduce_op::sum);
        for (std::size_t i = 0; i < m; ++i)
            detail::from_grid_values(fixed_.data() + i * n, n, grid, c + i * ldc);
    }

  private:
    // With an inf or NaN anywhere the grid cannot be chosen: the chunks are added in order
    // and all-reduced as T (every rank takes this path, the agreed maximum being the same).
    template <communicator Comm>
    void plain_sum(Comm& group, std::size_t m, std::size_t n, T* c, std::size_t ldc) {
        const std::size_t tile = m * n;
        std::vector<T>& sum = plain_;
        sum.assign(tile, T(0));
        for (std::size_t q = 0; q < local_chunks(); ++q)
            for (std::size_t i = 0; i < tile; ++i)
                sum[i] += partials_[q * tile + i];
        group.all_reduce(sum.data(), tile, reduce_op::sum);
        for (std::size_t i = 0; i < m; ++i)
            std::copy_n(sum.data() + i * n, n, c + i * ldc);
    }

    std::size_t chunks_ = 0;
    std::vector<std::size_t> local_bounds_;  // this rank's chunk boundaries, from 0 to its k
    std::vector<T> partials_, plain_;        // partials_: one m x n slab per local chunk
    std::vector<std::int64_t> fixed_;
};

/// The reproducible sums of one dense layer: over its input features (what row_split's
/// forward reduces) and over its output features (what column_split's input gradient
/// reduces). A partition that supports dense_options::reproducible_across takes them as the last
/// argument of forward and backward (see reproducible_partition, partition/partition.hpp).
template <class T>
struct reproducible_sums {
    reproducible_sum<T> over_inputs;
    reproducible_sum<T> over_outputs;
};

}  // namespace shardnet
