// The partition concept: how a dense layer's weight is split over a model-parallel group and
// the math (with its collectives) that makes the split invisible to the result.
#pragma once

#include <concepts>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/gemm_policy.hpp"

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

/// Elements one layer all-reduces over its model-parallel group per pass of a batch.
struct step_traffic {
    std::size_t forward_all_reduce = 0;
    std::size_t backward_all_reduce = 0;
};

/// A partition policy. With W stored in x out and P = parts ranks, it provides:
/// - `name`, `input_layout`, `output_layout`: what a rank holds of the layer's input and of
///   its output (see core/layout.hpp);
/// - `weight_rows(in, parts, part)`, `weight_cols(out, parts, part)`: the global block of W that
///   part holds. The layer's local input width is weight_rows().size(), its local output width
///   and its bias block are weight_cols();
/// - `forward<Gemm>(comm, x, w, bias, z)`: z = x·w + bias in the output layout (bias may be
///   null);
/// - `backward<Gemm>(comm, x, w, dz, dx, dw, dbias)`: from dz (output layout) the gradients *dx
/// (input
///   layout), dw and dbias. dx null means the input gradient is not wanted (skip its product and
///   its collectives); dbias null means no bias. dw and dbias are this group's full gradient of
///   the local shard; reductions over data-parallel replicas are not the partition's business.
/// - `traffic(batch, in, out, parts)`: the elements those collectives move, for plans;
/// - optionally `weight_gradient_groups`, `bias_gradient_groups`: reduced_over<...> types (see
///   above) when gradients need more than the data-parallel reduction.
/// Both functions are collective over `comm`, the model-parallel group, and take the layer's GEMM
/// policy as their first template parameter (default xsimd_gemm), which their local products
/// use: `template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class T> static void
/// forward(Comm&, ...)`.
template <class P>
concept partition_policy = requires(std::size_t n, const matrix<double>& cm, matrix<double>& m,
                                    matrix<double>* mp, const double* cb, double* b,
                                    local_communicator& comm) {
    { P::name } -> std::convertible_to<std::string_view>;
    { P::input_layout } -> std::convertible_to<layout>;
    { P::output_layout } -> std::convertible_to<layout>;
    { P::weight_rows(n, n, n) } -> std::same_as<shard_range>;
    { P::weight_cols(n, n, n) } -> std::same_as<shard_range>;
    { P::traffic(n, n, n, n) } -> std::same_as<step_traffic>;
    P::template forward<xsimd_gemm>(comm, cm, cm, cb, m);
    P::template backward<xsimd_gemm>(comm, cm, cm, cm, mp, m, b);
};

}  // namespace shardnet
