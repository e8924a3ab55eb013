// sequential<Layers...>: dense layers composed at compile time. Layouts propagate through the
// types: between two layers the network inserts the conversion the layouts require (nothing
// between a column_split and a row_split layer, nor between a block2d and a
// block2d_transposed layer), and a composition that cannot be right does not compile. The
// work itself is network_core's, which the run-time network<T, Group> shares.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/layers/dense.hpp"
#include "shardnet/net/network_core.hpp"
#include "shardnet/net/visit_layers.hpp"
#include "shardnet/partition/block2d.hpp"

namespace shardnet {

namespace detail {
template <class Layer>
struct is_dense : std::false_type {};
template <class T, class P, class A, class G>
struct is_dense<dense<T, P, A, G>> : std::true_type {};

/// The element type of the first layer; double when it has none, so that the static_asserts
/// below, not a missing typename, report a wrong layer list.
template <class... Layers>
struct first_value_type {
    using type = double;
};
template <class First, class... Rest>
requires requires {
    typename First::value_type;
}
struct first_value_type<First, Rest...> {
    using type = typename First::value_type;
};

/// The output layout of a dense layer type; replicated for anything else (which the
/// static_asserts of sequential refuse with a readable message).
template <class Layer>
constexpr layout output_layout_of() {
    if constexpr (is_dense<Layer>::value)
        return Layer::partition_type::output_layout;
    else
        return layout::replicated;
}

/// Layer with block2d turned into block2d_transposed when its input arrives sharded over the
/// grid's columns (the output of a block2d layer), so that consecutive 2D layers alternate
/// orientation and need no conversion, as in the run-time network.
template <layout Previous, class Layer>
struct oriented {
    using type = Layer;
};
template <layout Previous, class T, class A, class G>
requires(Previous == layout::sharded_over_cols) struct oriented<Previous, dense<T, block2d, A, G>> {
    using type = dense<T, block2d_transposed, A, G>;
};

/// std::tuple of Layers..., each oriented after the one before it.
template <layout Previous, class... Layers>
struct oriented_layers {
    using type = std::tuple<>;
};
template <layout Previous, class Layer, class... Rest>
struct oriented_layers<Previous, Layer, Rest...> {
    using head = typename oriented<Previous, Layer>::type;
    using type = decltype(std::tuple_cat(
        std::declval<std::tuple<head>>(),
        std::declval<typename oriented_layers<output_layout_of<head>(), Rest...>::type>()));
};

template <class... Layers>
std::string describe_layers() {
    std::string layers;
    ((layers += std::string(Layers::partition_type::name) + "/" +
                std::string(Layers::activation_type::name) + " "),
     ...);
    return layers;
}
}  // namespace detail

/// A feed-forward network of dense layers fixed at compile time.
///
/// @tparam Layers dense<T, Partition, Activation, Gemm> types, all with the same T. The
///         network takes a replicated batch x widths[0] input and gives its output in
///         output_layout (sharded logits stay sharded for the loss). A block2d layer right
///         after a block2d layer is built as block2d_transposed (layer<I>() has that type), so
///         that consecutive 2D layers need no conversion; write block2d_transposed to say so.
///
/// Built for one model-parallel group; every collective method is collective over it. Its
/// members (forward, backward, reduce_gradients, parameters, plan...) are network_core's.
/// Not copyable or movable: optimizers hold pointers into its parameters.
template <class... Layers>
class sequential : public detail::network_core<sequential<Layers...>,
                                               typename detail::first_value_type<Layers...>::type> {
    static_assert(sizeof...(Layers) > 0, "shardnet::sequential needs at least one layer");
    static_assert((detail::is_dense<Layers>::value && ...),
                  "shardnet::sequential<Layers...>: every layer must be a shardnet::dense<T, "
                  "Partition, Activation, Gemm>");

  public:
    /// The layers as built, a std::tuple: Layers..., block2d orientation alternated.
    using layers_type = typename detail::oriented_layers<layout::replicated, Layers...>::type;

  private:
    using last_layer = std::tuple_element_t<sizeof...(Layers) - 1, layers_type>;
    using core =
        detail::network_core<sequential, typename detail::first_value_type<Layers...>::type>;

  public:
    using value_type = typename core::value_type;
    static_assert((std::is_same_v<typename Layers::value_type, value_type> && ...),
                  "shardnet::sequential: all layers must use the same element type T");
    static_assert((!Layers::partition_type::output_layout.has_partial() && ...),
                  "shardnet::sequential: a layer's output is a partial sum, which no layer or loss "
                  "takes; end the layer with a partition whose output is reduced");
    static_assert((!Layers::partition_type::input_layout.has_partial() && ...),
                  "shardnet::sequential: no layer takes a partial-sum input");
    static constexpr std::size_t depth = sizeof...(Layers);
    /// What each rank holds of the output: the last layer's output layout. The same as
    /// output(); with_loss_group gives a loss the group and layout to take it in.
    static constexpr layout output_layout = last_layer::partition_type::output_layout;
    /// Names the network in messages.
    static constexpr const char* kind = "sequential";

    /// Builds this rank's shards of every layer. widths = {in, hidden..., out}, depth + 1
    /// values. `group` is the model-parallel group: a model_group (a rows x cols grid, which
    /// 2D partitions need) or a plain communicator (a 1 x P grid). Collective over `group`:
    /// ranks compare a fingerprint of the configuration (widths, seed, partitions,
    /// activations) and all throw if any differs.
    template <communicator Comm>
    sequential(Comm& group, const std::vector<std::size_t>& widths, network_options options = {})
        : core(group, widths, options, depth, detail::describe_layers<Layers...>()),
          layers_(
              make_layers(group, this->widths(), options, std::index_sequence_for<Layers...>{})) {
        this->finish_construction();
    }

    template <std::size_t I>
    auto& layer() {
        return std::get<I>(layers_);
    }
    template <std::size_t I>
    const auto& layer() const {
        return std::get<I>(layers_);
    }

    /// Calls f(layer i). What network_core reaches layers through.
    template <class F>
    void with_layer(std::size_t i, F&& f) {
        visit_layers(*this, [&](auto& l, std::size_t index) {
            if (index == i) f(l);
        });
    }
    template <class F>
    void with_layer(std::size_t i, F&& f) const {
        visit_layers(*this, [&](const auto& l, std::size_t index) {
            if (index == i) f(l);
        });
    }

  private:
    template <communicator Comm, std::size_t... I>
    static layers_type make_layers(Comm& group, const std::vector<std::size_t>& widths,
                                   const network_options& options, std::index_sequence<I...>) {
        return layers_type(std::tuple_element_t<I, layers_type>(
            group, widths[I], widths[I + 1],
            detail::layer_options<typename std::tuple_element_t<I, layers_type>::activation_type>(
                options, I))...);
    }

    layers_type layers_;
};

}  // namespace shardnet
