// The partition concept: how a dense layer's weight is split over a model-parallel grid and
// the math (with its collectives) that makes the split invisible to the result; and
// partition_map, the one place that says which block of W and b a rank holds and which ranks
// hold copies of it.
#pragma once

#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/gemm_policy.hpp"
#include "shardnet/kernels/reproducible_sum.hpp"

namespace shardnet {

/// The groups of a process grid, as types: a parameter's type names the groups its gradient
/// must be summed over before an optimizer may use it.
struct model_parallel_group {};
struct data_parallel_group {};

/// A list of groups. Every parameter is replicated across data-parallel replicas, so every
/// list holds data_parallel_group; a partition whose local weight gradient is only a partial
/// sum over the model-parallel group (each rank saw part of the contraction) adds
/// model_parallel_group.
template <class... Groups>
struct reduced_over {
    static constexpr bool model = (std::is_same_v<Groups, model_parallel_group> || ...);
    static constexpr bool data = (std::is_same_v<Groups, data_parallel_group> || ...);
};

namespace detail {
template <class P>
struct weight_gradient_groups {
    using type = reduced_over<data_parallel_group>;
};
template <class P>
requires requires {
    typename P::weight_gradient_groups;
}
struct weight_gradient_groups<P> {
    using type = typename P::weight_gradient_groups;
};
template <class P>
struct bias_gradient_groups {
    using type = reduced_over<data_parallel_group>;
};
template <class P>
requires requires {
    typename P::bias_gradient_groups;
}
struct bias_gradient_groups<P> {
    using type = typename P::bias_gradient_groups;
};
}  // namespace detail

/// The groups the weight (bias) gradient of a layer with partition P must be summed over:
/// P::weight_gradient_groups (P::bias_gradient_groups) if P declares it, otherwise the
/// data-parallel group only, which is right for column_split, row_split and replicated.
template <class P>
using weight_gradient_groups_t = typename detail::weight_gradient_groups<P>::type;
template <class P>
using bias_gradient_groups_t = typename detail::bias_gradient_groups<P>::type;

/// Elements one layer all-reduces per pass of a batch, and over how many ranks.
struct step_traffic {
    std::size_t forward_all_reduce = 0;
    std::size_t backward_all_reduce = 0;
    std::size_t forward_group = 1;   ///< ranks in the forward all-reduce
    std::size_t backward_group = 1;  ///< ranks in the backward all-reduce
};

/// Where a layer's parameters live on a model grid: the single answer to "which block of W
/// and b does this rank hold, and which ranks hold copies". W (in x out) is split as the
/// layer's activations are: its rows as the input layout splits the in features, its
/// columns (and the bias) as the output layout splits the out features. Ranks whose blocks
/// are equal hold copies; the lowest-ranked of them is the one that writes the block to a
/// checkpoint and counts it in a global norm.
struct partition_map {
    layout input = layout::replicated;
    layout output = layout::replicated;

    shard_range weight_rows(std::size_t in, grid_shape grid, grid_position at) const {
        return feature_block(input, in, grid, at);
    }
    /// Also the block of the bias.
    shard_range weight_cols(std::size_t out, grid_shape grid, grid_position at) const {
        return feature_block(output, out, grid, at);
    }
    /// Whether no lower model rank holds the same block of W.
    bool first_weight_copy(std::size_t in, std::size_t out, grid_shape grid,
                           grid_position at) const {
        const shard_range rows = weight_rows(in, grid, at), cols = weight_cols(out, grid, at);
        for (std::size_t q = 0; q < rank_of_position(grid, at); ++q) {
            const grid_position other = position_of_rank(grid, q);
            if (weight_rows(in, grid, other) == rows && weight_cols(out, grid, other) == cols)
                return false;
        }
        return true;
    }
    /// Whether no lower model rank holds the same block of the bias.
    bool first_bias_copy(std::size_t out, grid_shape grid, grid_position at) const {
        const shard_range cols = weight_cols(out, grid, at);
        for (std::size_t q = 0; q < rank_of_position(grid, at); ++q)
            if (weight_cols(out, grid, position_of_rank(grid, q)) == cols) return false;
        return true;
    }
};

/// A partition policy. With W stored in x out on a model grid, it provides:
/// - `name`, `input_layout`, `output_layout`: what a rank holds of the layer's input and of
///   its output (see core/layout.hpp); they also fix which block of W it holds (partition_map);
/// - `forward<Gemm>(group, x, w, bias, z)`: z = x·w + bias in the output layout (bias may be
///   null);
/// - `backward<Gemm>(group, x, w, dz, dx, dw, dbias)`: from dz (output layout) the gradients
///   *dx (input layout), dw and dbias. dx null means the input gradient is not wanted (skip its
///   product and its collectives); dbias null means no bias. dw and dbias are this group's full
///   gradient of the local shard; reductions over data-parallel replicas are not the
///   partition's business.
/// - `traffic(batch, in, out, grid, position)`: the elements those collectives move, for plans;
/// - optionally `weight_gradient_groups`, `bias_gradient_groups`: reduced_over<...> types (see
///   above) when gradients need more than the data-parallel reduction.
/// Both functions are collective over `group`, the model-parallel group (a plain communicator,
/// seen as a 1 x P grid, or a model_group), and take the layer's GEMM policy as their first
/// template parameter (default xsimd_gemm), which their local products use:
/// `template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class T> static void
/// forward(Comm&, ...)`.
template <class P>
concept partition_policy = requires(std::size_t n, const matrix<double>& cm, matrix<double>& m,
                                    matrix<double>* mp, const double* cb, double* b,
                                    model_group<local_communicator>& group, grid_shape grid,
                                    grid_position at) {
    { P::name } -> std::convertible_to<std::string_view>;
    { P::input_layout } -> std::convertible_to<layout>;
    { P::output_layout } -> std::convertible_to<layout>;
    { P::traffic(n, n, n, grid, at) } -> std::same_as<step_traffic>;
    P::template forward<xsimd_gemm>(group, cm, cm, cb, m);
    P::template backward<xsimd_gemm>(group, cm, cm, cm, mp, m, b);
};

/// A partition that also runs bf16 mixed precision (core/precision.hpp) on groups of type Group:
/// its forward and backward accept bfloat16 x, w and dz with float bias, z, dx, dw (the products
/// of kernels/dense_products.hpp do, when the partition passes its operand type on:
/// `template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T> static void
/// forward(Comm&, const matrix<In>& x, const matrix<In>& w, const T* bias, matrix<T>& z)`).
/// The built-in partitions do; a partition written for one T only is still a partition_policy,
/// and a dense layer refuses bf16 precision with it.
template <class P, class Group>
concept mixed_precision_partition = requires(Group& group, const matrix<bfloat16>& low,
                                             const float* bias, matrix<float>& m, matrix<float>* mp,
                                             float* b) {
    P::template forward<xsimd_gemm>(group, low, low, bias, m);
    P::template backward<xsimd_gemm>(group, low, low, low, mp, m, b);
};

/// A partition that also runs with dense_options::reproducible_across
/// (kernels/reproducible_sum.hpp) on groups of type Group, for operands In and results T: forward
/// and backward take the layer's reproducible_sums<T> as a last argument and sum every partial
/// product over the model-parallel group through it (its over_inputs for a contraction over the
/// input features, over_outputs for one over the output features), so that the result does not
/// depend on the group's size. column_split, row_split and replicated do; block2d does not (its
/// sums run over grid rows and columns), and a dense layer refuses reproducible_across with it.
template <class P, class Group, class In, class T>
concept reproducible_partition = requires(Group& group, const matrix<In>& in, const T* bias,
                                          matrix<T>& m, matrix<T>* mp, T* b,
                                          reproducible_sums<T>& sums) {
    P::template forward<xsimd_gemm>(group, in, in, bias, m, sums);
    P::template backward<xsimd_gemm>(group, in, in, in, mp, m, b, sums);
};

/// The parameter map of partition P.
template <class P>
constexpr partition_map map_of() {
    return {P::input_layout, P::output_layout};
}

}  // namespace shardnet
