// The partition concept: how a dense layer's weight is split over a model-parallel group and
// the math (with its collectives) that makes the split invisible to the result.
#pragma once

#include <concepts>
#include <cstddef>
#include <string_view>

#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"

namespace shardnet {

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
/// - `forward(comm, x, w, bias, z)`: z = x·w + bias in the output layout (bias may be null);
/// - `backward(comm, x, w, dz, dx, dw, dbias)`: from dz (output layout) the gradients *dx (input
///   layout), dw and dbias. dx null means the input gradient is not wanted (skip its product and
///   its collectives); dbias null means no bias. dw and dbias are this group's full gradient of
///   the local shard; reductions over data-parallel replicas are not the partition's business.
/// - `traffic(batch, in, out, parts)`: the elements those collectives move, for plans.
/// Both functions are collective over `comm`, the model-parallel group.
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
    P::forward(comm, cm, cm, cb, m);
    P::backward(comm, cm, cm, cm, mp, m, b);
};

}  // namespace shardnet
