// sequential<Layers...>: dense layers composed at compile time. Layouts propagate through the
// types: between two layers the network inserts the conversion the layouts require (nothing
// between a column_split and a row_split layer, nor between a block2d and a
// block2d_transposed layer), and a composition that cannot be right does not compile.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/async.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/progress.hpp"
#include "shardnet/core/settings.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/layers/dense.hpp"
#include "shardnet/net/conversion.hpp"
#include "shardnet/net/parameter.hpp"
#include "shardnet/net/plan.hpp"
#include "shardnet/net/visit_layers.hpp"

namespace shardnet {

/// Options shared by every layer of a network.
struct network_options {
    std::uint64_t seed = 0;  ///< keys every layer's weights (with the layer's index)
    bool bias = true;
    /// Weight initialization; by default He for relu and gelu layers, Xavier for the others.
    std::optional<init_scheme> init;
};

namespace detail {

/// Every field of network_options: all of them must be the same on every rank of a group.
inline constexpr setting_field network_option_fields[] = {
    {"seed", setting_role::same_on_ranks},
    {"bias", setting_role::same_on_ranks},
    {"init", setting_role::same_on_ranks},
};

/// The layout a network hands its loss: the last layer's output, or the 1D sharded layout
/// when that output is split over one grid dimension only (losses reduce over the whole
/// model-parallel group, where copies of a block would count more than once).
constexpr layout loss_layout(layout last) {
    return last == layout::replicated || last == layout::sharded ? last : layout::sharded;
}

template <class Layer>
init_scheme default_init() {
    using A = typename Layer::activation_type;
    if constexpr (std::is_same_v<A, activation::relu> || std::is_same_v<A, activation::gelu>)
        return init_scheme::he_uniform;
    else
        return init_scheme::xavier_uniform;
}

template <class Layer>
struct is_dense : std::false_type {};
template <class T, class P, class A, class G>
struct is_dense<dense<T, P, A, G>> : std::true_type {};

}  // namespace detail

/// A feed-forward network of dense layers.
///
/// @tparam Layers dense<T, Partition, Activation, Gemm> types, all with the same T. The
///         network takes a replicated batch x widths[0] input and gives its output in the last
///         layer's output layout (sharded logits stay sharded for the loss).
///
/// Built for one model-parallel group; every collective method is collective over it.
/// Not copyable or movable: optimizers hold pointers into its parameters.
template <class... Layers>
class sequential {
    static_assert(sizeof...(Layers) > 0, "shardnet::sequential needs at least one layer");
    static_assert((detail::is_dense<Layers>::value && ...),
                  "shardnet::sequential<Layers...>: every layer must be a shardnet::dense<T, "
                  "Partition, Activation, Gemm>");
    using first_layer = std::tuple_element_t<0, std::tuple<Layers...>>;
    using last_layer = std::tuple_element_t<sizeof...(Layers) - 1, std::tuple<Layers...>>;

  public:
    using value_type = typename first_layer::value_type;
    static_assert((std::is_same_v<typename Layers::value_type, value_type> && ...),
                  "shardnet::sequential: all layers must use the same element type T");
    static constexpr std::size_t depth = sizeof...(Layers);
    static_assert((!Layers::partition_type::output_layout.has_partial() && ...),
                  "shardnet::sequential: a layer's output is a partial sum, which no layer or loss "
                  "takes; end the layer with a partition whose output is reduced");
    static_assert((!Layers::partition_type::input_layout.has_partial() && ...),
                  "shardnet::sequential: no layer takes a partial-sum input");
    static constexpr layout input_layout = layout::replicated;
    /// What each rank holds of the output: the last layer's output layout, or `sharded` when
    /// that is split over one dimension of a 2D grid.
    static constexpr layout output_layout =
        detail::loss_layout(last_layer::partition_type::output_layout);

    /// Builds this rank's shards of every layer. widths = {in, hidden..., out}, depth + 1
    /// values. `group` is the model-parallel group: a model_group (a rows x cols grid, which
    /// 2D partitions need) or a plain communicator (a 1 x P grid). Collective over `group`:
    /// ranks compare a fingerprint of the configuration (widths, seed, partitions,
    /// activations) and all throw if any differs.
    template <communicator Comm>
    sequential(Comm& group, const std::vector<std::size_t>& widths, network_options options = {})
        : widths_(checked_widths(group, widths, options)),
          grid_(grid_of(group)),
          at_(position_of(group)),
          layers_(make_layers(group, widths_, options, std::index_sequence_for<Layers...>{})),
          conversions_(make_conversions()) {
        visit_layers(*this, [this](auto& l, std::size_t index) {
            first_parameter_[index] = parameters_.size();
            add_parameters(l);
        });
        first_parameter_[depth] = parameters_.size();
    }

    sequential(const sequential&) = delete;
    sequential& operator=(const sequential&) = delete;

    /// The network's output for a replicated batch x widths()[0] input. Collective over the
    /// model-parallel group; ranks agree that inputs have the expected width and the same
    /// batch size before any layer communicates.
    /// @pre x stays alive until backward().
    /// @return the output in output_layout, owned by the network, valid until the next forward.
    template <communicator Comm>
    const matrix<value_type>& forward(Comm& group, const matrix<value_type>& x) {
        check_input(group, x);
        return forward_from<0>(group, x);
    }

    /// Back-propagates dy (the loss gradient w.r.t. the output, in output_layout) through every
    /// layer. Afterwards gradients are `local` until reduce_gradients(). Collective over the
    /// model-parallel group.
    template <communicator Comm>
    void backward(Comm& group, const matrix<value_type>& dy) {
        check_output_gradient(group, dy);
        backward_from<depth - 1>(group, conversions_[depth].backward(group, dy),
                                 [](std::size_t) {});
        state_ = gradient_state::local;
    }

    /// backward() and reduce_gradients(model_group, data_group) in one pass, with the
    /// data-parallel reduction overlapped: as soon as a layer's backward has produced its
    /// gradients, their all-reduce over `data_group` starts (non-blocking) and travels while the
    /// layers before it compute theirs, one bucket per layer as in PyTorch's DDP. Everything is
    /// complete on return and the gradients are `reduced`. Collective over both groups; with
    /// one replica it is backward() followed by the model-parallel part of reduce_gradients().
    /// Communicators without all_reduce_async reduce each layer blocking, in the same order.
    template <communicator ModelComm, communicator DataComm>
    void backward(ModelComm& model_group, const matrix<value_type>& dy, DataComm& data_group) {
        check_output_gradient(model_group, dy);
        if (data_group.size() > 1) {
            using request = decltype(start_all_reduce(data_group, std::declval<value_type*>(),
                                                      std::size_t{0}, reduce_op::sum));
            // One slot per parameter, on the stack: a step allocates nothing.
            std::array<std::optional<request>, 2 * depth> pending;
            // MPI progresses a non-blocking collective only inside MPI calls: the GEMMs of the
            // layers below poll the requests in flight between their blocks.
            auto poll_pending = [&pending] {
                for (auto& r : pending)
                    if (r) detail::poll(*r);
            };
            const detail::progress_scope progress(poll_pending);
            backward_from<depth - 1>(
                model_group, conversions_[depth].backward(model_group, dy), [&](std::size_t layer) {
                    for (std::size_t p = first_parameter_[layer]; p < first_parameter_[layer + 1];
                         ++p)
                        if (parameters_[p].size > 0)
                            pending[p].emplace(start_all_reduce(data_group, parameters_[p].grad,
                                                                parameters_[p].size,
                                                                reduce_op::sum));
                });
            for (auto& r : pending)
                if (r) r->wait();
        } else {
            backward_from<depth - 1>(model_group, conversions_[depth].backward(model_group, dy),
                                     [](std::size_t) {});
        }
        // Sums over the model and data groups commute: the model part may come last.
        reduce_over_model(model_group);
        state_ = gradient_state::reduced;
    }

    /// Sums every gradient over the groups its parameter's type names (see
    /// reduced_over in partition/partition.hpp): always the data-parallel group (the replicas
    /// of this model), and the model-parallel group for partitions that declare it. This makes
    /// the gradients ready for an optimizer. Collective over `model_group` (only if some
    /// parameter needs it) and over `data_group`; with one replica the data part only marks
    /// the gradients reduced.
    template <communicator ModelComm, communicator DataComm>
    void reduce_gradients(ModelComm& model_group, DataComm& data_group) {
        if (state_ != gradient_state::local)
            throw error("sequential: reduce_gradients() called without a backward() before it");
        reduce_over_model(model_group);
        reduce_over_data(data_group);
    }

    /// reduce_gradients() for networks whose parameters need only the data-parallel reduction
    /// (every network of built-in partitions). Collective over `data_group`.
    /// @throws error if a parameter's type asks for a model-parallel reduction as well.
    template <communicator DataComm>
    void reduce_gradients(DataComm& data_group) {
        if (state_ != gradient_state::local)
            throw error("sequential: reduce_gradients() called without a backward() before it");
        for (const auto& p : parameters_)
            if (p.reduce_over_model_group && grid_.size() > 1)
                throw error(detail::concat("sequential: the gradient of ", p.name,
                                           " must also be reduced over the model-parallel "
                                           "group; call reduce_gradients(model, data)"));
        reduce_over_data(data_group);
    }

    /// Where the gradients stand; optimizers refuse anything but `reduced`.
    gradient_state gradients() const { return state_; }
    /// Called by optimizers after an update.
    void mark_updated() { state_ = gradient_state::none; }

    /// Every local parameter shard, in layer order (weight, then bias).
    std::vector<parameter_ref<value_type>>& parameters() { return parameters_; }

    template <std::size_t I>
    auto& layer() {
        return std::get<I>(layers_);
    }
    template <std::size_t I>
    const auto& layer() const {
        return std::get<I>(layers_);
    }

    const std::vector<std::size_t>& widths() const { return widths_; }
    std::size_t model_parallel() const { return grid_.size(); }
    /// The model-parallel grid the network was built for, and this rank's place in it.
    grid_shape grid() const { return grid_; }
    grid_position position() const { return at_; }
    /// This rank's block of the output features in output_layout (all of them when
    /// replicated).
    shard_range output_block() const {
        return feature_block(output_layout, widths_.back(), grid_, at_);
    }

    /// What one training step of `batch` rows per replica costs on this rank: per layer its
    /// global and local weight shapes, layouts and collectives; with `data_parallel`
    /// replicas, the gradient all-reduce. Not collective.
    network_plan plan(std::size_t batch, std::size_t data_parallel = 1) const {
        network_plan p;
        p.element_size = sizeof(value_type);
        p.batch = batch;
        p.model_parallel = grid_.size();
        p.model_grid = grid_;
        p.data_parallel = data_parallel;
        visit_layers(*this, [&](const auto& l, auto index) { plan_layer(p, l, index, batch); });
        const auto& out = conversions_[depth];
        p.output_conversion = out.describe();
        p.output_forward_gather = out.forward_gather(batch);
        p.output_backward_gather = out.backward_gather(batch);
        p.output_forward_group = out.forward_group();
        p.output_backward_group = out.backward_group();
        if (data_parallel > 1)
            for (const auto& param : parameters_)
                p.data_parallel_all_reduce += param.size;
        return p;
    }

  private:
    template <communicator Comm>
    static std::vector<std::size_t> checked_widths(Comm& group, const std::vector<std::size_t>& w,
                                                   const network_options& options) {
        // Everything that shapes the collective schedule: ranks that were started differently
        // would otherwise deadlock later, far from the cause. The options are read field by
        // field (network_option_fields), so a new option cannot go unchecked.
        settings config =
            describe_fields(options, detail::network_option_fields, setting_role::same_on_ranks);
        config.set("widths", detail::setting_value(w));
        std::string layers;
        ((layers += std::string(Layers::partition_type::name) + "/" +
                    std::string(Layers::activation_type::name) + " "),
         ...);
        config.set("layers", layers);
        agree_same_settings(group, config, "sequential: the network configurations");
        agree_on(group, [&] {
            if (w.size() != depth + 1)
                throw error(detail::concat("sequential: ", depth, " layers need ", depth + 1,
                                           " widths (input, hidden..., output), got ", w.size()));
            for (std::size_t i = 0; i < w.size(); ++i)
                if (w[i] == 0) throw error(detail::concat("sequential: width ", i, " is 0"));
        });
        return w;
    }

    template <communicator Comm, std::size_t... I>
    static std::tuple<Layers...> make_layers(Comm& group, const std::vector<std::size_t>& widths,
                                             const network_options& options,
                                             std::index_sequence<I...>) {
        return std::tuple<Layers...>(
            Layers(group, widths[I], widths[I + 1], layer_options<Layers>(options, I))...);
    }

    /// conversions_[i] comes before layer i; conversions_[depth] after the last layer, to
    /// output_layout.
    std::vector<layout_conversion<value_type>> make_conversions() const {
        constexpr std::array<layout, depth> inputs{Layers::partition_type::input_layout...};
        constexpr std::array<layout, depth> outputs{Layers::partition_type::output_layout...};
        std::vector<layout_conversion<value_type>> c;
        c.reserve(depth + 1);
        for (std::size_t i = 0; i < depth; ++i)
            c.emplace_back(i == 0 ? input_layout : outputs[i - 1], inputs[i], widths_[i], grid_,
                           at_);
        c.emplace_back(outputs[depth - 1], output_layout, widths_[depth], grid_, at_);
        return c;
    }

    template <class Layer>
    static dense_options layer_options(const network_options& options, std::size_t index) {
        dense_options o;
        o.bias = options.bias;
        o.seed = options.seed;
        o.layer = static_cast<std::uint32_t>(index);
        o.init = options.init.value_or(detail::default_init<Layer>());
        o.name = detail::concat("fc", index + 1);
        return o;
    }

    template <class Layer>
    void add_parameters(Layer& l) {
        using P = typename Layer::partition_type;
        const std::size_t in = l.input_features(), out = l.output_features();
        const partition_map map = Layer::map();
        parameters_.push_back({l.name() + ".weight", l.weight().data(), l.weight_grad().data(),
                               l.weight().size(), map.first_weight_copy(in, out, grid_, at_),
                               weight_gradient_groups_t<P>::model});
        if (l.has_bias())
            parameters_.push_back({l.name() + ".bias", l.bias().data(), l.bias_grad().data(),
                                   l.bias().size(), map.first_bias_copy(out, grid_, at_),
                                   bias_gradient_groups_t<P>::model});
    }

    /// Sums the gradients whose partition declares them partial over the model-parallel group.
    template <communicator Comm>
    void reduce_over_model(Comm& model_group) {
        if (model_group.size() > 1)
            for (auto& p : parameters_)
                if (p.reduce_over_model_group && p.size > 0)
                    model_group.all_reduce(p.grad, p.size, reduce_op::sum);
    }

    template <communicator Comm>
    void reduce_over_data(Comm& data_group) {
        if (data_group.size() > 1)
            for (auto& p : parameters_)
                if (p.size > 0) data_group.all_reduce(p.grad, p.size, reduce_op::sum);
        state_ = gradient_state::reduced;
    }

    template <communicator Comm>
    void check_output_gradient(Comm& group, const matrix<value_type>& dy) {
        agree_on(group, [&] {
            const std::size_t want = output_block().size();
            if (!forwarded_) throw error("sequential: backward() called before forward()");
            if (dy.shape(0) != batch_ || dy.shape(1) != want)
                throw error(detail::concat("sequential: output gradient is ", dy.shape(0), " x ",
                                           dy.shape(1), " on rank ", group.rank(), ", expected ",
                                           batch_, " x ", want));
        });
    }

    template <communicator Comm>
    void check_input(Comm& group, const matrix<value_type>& x) {
        const value_range batch = range_on_all_ranks(group, static_cast<std::int64_t>(x.shape(0)));
        agree_on(group, [&] {
            if (x.shape(1) != widths_[0])
                throw error(detail::concat("sequential: input has ", x.shape(1),
                                           " features per row on rank ", group.rank(),
                                           ", expected ", widths_[0]));
            if (!batch.same())
                throw error(detail::concat(
                    "sequential: ranks of a model-parallel group hold different batch sizes (",
                    batch.min, " to ", batch.max, "); they must read the same rows"));
        });
        batch_ = x.shape(0);
        forwarded_ = true;
    }

    template <std::size_t I, communicator Comm>
    const matrix<value_type>& forward_from(Comm& group, const matrix<value_type>& x) {
        const auto& converted = conversions_[I].forward(group, x);
        const auto& y = std::get<I>(layers_).forward_unchecked(group, converted);
        if constexpr (I + 1 < depth)
            return forward_from<I + 1>(group, y);
        else
            return conversions_[depth].forward(group, y);
    }

    /// Layers I, I-1, ..., 0 backward; layer_done(i) runs as soon as layer i's gradients are
    /// computed, before the layers below it.
    template <std::size_t I, communicator Comm, class LayerDone>
    void backward_from(Comm& group, const matrix<value_type>& dy, LayerDone&& layer_done) {
        // The first layer skips its input gradient: nobody needs the gradient of the data, and
        // for a column_split first layer that also saves its backward all-reduce.
        const auto& dx = std::get<I>(layers_).backward_unchecked(group, dy, I > 0);
        layer_done(I);
        if constexpr (I > 0)
            backward_from<I - 1>(group, conversions_[I].backward(group, dx), layer_done);
    }

    template <class Layer, std::size_t I>
    void plan_layer(network_plan& p, const Layer& l, std::integral_constant<std::size_t, I>,
                    std::size_t batch) const {
        const auto& c = conversions_[I];
        using P = typename Layer::partition_type;
        layer_plan row;
        row.name = l.name();
        row.partition = std::string(P::name);
        row.activation = std::string(Layer::activation_type::name);
        row.in = l.input_features();
        row.out = l.output_features();
        row.local_rows = l.weight_rows().size();
        row.local_cols = l.weight_cols().size();
        row.input_layout = P::input_layout;
        row.output_layout = P::output_layout;
        row.conversion = I == 0 ? std::string("none") : c.describe();
        const step_traffic t = P::traffic(batch, row.in, row.out, grid_, at_);
        row.forward_all_reduce = t.forward_all_reduce;
        row.backward_all_reduce = I == 0 ? 0 : t.backward_all_reduce;  // no dx for the data
        row.forward_reduce_group = t.forward_group;
        row.backward_reduce_group = t.backward_group;
        row.forward_all_gather = c.forward_gather(batch);
        // The data's gradient is not computed: the first conversion has no backward.
        row.backward_all_gather = I == 0 ? 0 : c.backward_gather(batch);
        row.forward_gather_group = c.forward_group();
        row.backward_gather_group = c.backward_group();
        p.layers.push_back(row);
    }

    std::vector<std::size_t> widths_;
    grid_shape grid_;
    grid_position at_;
    std::tuple<Layers...> layers_;
    std::vector<layout_conversion<value_type>> conversions_;
    std::vector<parameter_ref<value_type>> parameters_;
    // Layer i's parameters are parameters_[first_parameter_[i], first_parameter_[i + 1]).
    std::array<std::size_t, depth + 1> first_parameter_{};
    gradient_state state_ = gradient_state::none;
    std::size_t batch_ = 0;
    bool forwarded_ = false;
};

}  // namespace shardnet
