// The layer kinds a network chosen at run time can name: the built-in partitions and
// activations, looked up by name, each instantiated once per element type, group and GEMM.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/layers/activation.hpp"
#include "shardnet/layers/dense.hpp"
#include "shardnet/net/any_layer.hpp"
#include "shardnet/net/network_core.hpp"
#include "shardnet/partition/block2d.hpp"
#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/partition.hpp"
#include "shardnet/partition/replicated.hpp"
#include "shardnet/partition/row_split.hpp"

namespace shardnet {

/// One layer of a network chosen at run time, by name.
struct layer_spec {
    /// column_split (or column), row_split (or row), replicated, block2d or
    /// block2d_transposed. In a network, a block2d layer right after one whose output is
    /// sharded over the grid's columns becomes block2d_transposed, so that consecutive 2D
    /// layers alternate orientation and need no conversion.
    std::string partition = "column_split";
    /// identity, relu, gelu, tanh or sigmoid.
    std::string activation = "relu";
};

namespace detail {

inline constexpr std::string_view builtin_partition_names =
    "column_split (column), row_split (row), replicated, block2d, block2d_transposed";
inline constexpr std::string_view builtin_activation_names = "identity, relu, gelu, tanh, sigmoid";

/// Calls f.template operator()<Partition>() for the built-in partition called `name`.
/// @throws error naming the choices if there is none.
template <class F>
decltype(auto) with_builtin_partition(std::string_view name, F&& f) {
    if (name == column_split::name || name == "column")
        return f.template operator()<column_split>();
    if (name == row_split::name || name == "row") return f.template operator()<row_split>();
    if (name == replicated::name) return f.template operator()<replicated>();
    if (name == block2d::name) return f.template operator()<block2d>();
    if (name == block2d_transposed::name) return f.template operator()<block2d_transposed>();
    throw error(
        concat("unknown partition '", name, "': expected one of ", builtin_partition_names));
}

/// Calls f.template operator()<Activation>() for the built-in activation called `name`.
/// @throws error naming the choices if there is none.
template <class F>
decltype(auto) with_builtin_activation(std::string_view name, F&& f) {
    if (name == activation::identity::name) return f.template operator()<activation::identity>();
    if (name == activation::relu::name) return f.template operator()<activation::relu>();
    if (name == activation::gelu::name) return f.template operator()<activation::gelu>();
    if (name == activation::tanh::name) return f.template operator()<activation::tanh>();
    if (name == activation::sigmoid::name) return f.template operator()<activation::sigmoid>();
    throw error(
        concat("unknown activation '", name, "': expected one of ", builtin_activation_names));
}

}  // namespace detail

/// The parameter map of the built-in partition called `name`.
/// @throws error naming the choices if there is none.
inline partition_map builtin_partition_map(std::string_view name) {
    return detail::with_builtin_partition(name, []<class P>() { return map_of<P>(); });
}

/// `layers` with every partition under its canonical name (column -> column_split) and every
/// block2d layer that follows an output sharded over the grid's columns turned into
/// block2d_transposed (see layer_spec). Validates the names.
/// @throws error naming the layer and the choices for an unknown partition or activation.
inline std::vector<layer_spec> resolve_layer_specs(std::vector<layer_spec> layers) {
    layout previous = layout::replicated;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        layer_spec& l = layers[i];
        try {
            l.partition = detail::with_builtin_partition(
                l.partition, []<class P>() { return std::string(P::name); });
            if (l.partition == block2d::name && previous == layout::sharded_over_cols)
                l.partition = std::string(block2d_transposed::name);
            previous = builtin_partition_map(l.partition).output;
            detail::with_builtin_activation(l.activation, []<class A>() { return 0; });
        } catch (const error& e) {
            throw error(detail::concat("layer ", i + 1, ": ", e.what()));
        }
    }
    return layers;
}

/// Builds layer `index` of a network (named fc<index + 1>, initialized as sequential<...>
/// initializes it) from its resolved spec.
template <class T, communicator Group, gemm_policy Gemm>
std::unique_ptr<any_layer<T, Group>> make_builtin_layer(Group& group, const layer_spec& spec,
                                                        std::size_t in, std::size_t out,
                                                        const network_options& options,
                                                        std::size_t index) {
    return detail::with_builtin_partition(spec.partition, [&]<class P>() {
        return detail::with_builtin_activation(
            spec.activation, [&]<class A>() -> std::unique_ptr<any_layer<T, Group>> {
                using layer_type = dense<T, P, A, Gemm>;
                return std::make_unique<layer_adapter<layer_type, Group>>(
                    layer_type(group, in, out, detail::layer_options<A>(options, index)));
            });
    });
}

}  // namespace shardnet
