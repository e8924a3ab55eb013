// What every network of dense layers does, whether its layers are fixed at compile time
// (sequential<...>) or chosen at run time (network<T, Group>): the configuration check, the
// conversions between layouts, the parameter list, forward and backward with their checks,
// the gradient reductions (overlapped with backward or not) and the plan. The two differ only
// in how layer i is reached, which they provide to this core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/async.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/precision.hpp"
#include "shardnet/core/progress.hpp"
#include "shardnet/core/settings.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/layers/dense.hpp"
#include "shardnet/layers/init.hpp"
#include "shardnet/net/conversion.hpp"
#include "shardnet/net/parameter.hpp"
#include "shardnet/net/plan.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// Options shared by every layer of a network.
struct network_options {
    std::uint64_t seed = 0;  ///< keys every layer's weights (with the layer's index)
    bool bias = true;
    /// Weight initialization; by default He for relu and gelu layers, Xavier for the others.
    std::optional<init_scheme> init;
    /// What every layer computes in: fp32, or bf16 mixed precision (core/precision.hpp; float
    /// networks only). Checkpoints are fp32 either way (the master weights), so a checkpoint
    /// written in one precision loads into a network of the other.
    shardnet::precision precision = shardnet::precision::fp32;
    /// 0, or N: every layer's results are the same bits on 1 .. N model-parallel ranks
    /// (dense_options::reproducible_across; not with block2d layers). The loss and the global
    /// gradient norm are reproducible whatever this says (train/cross_entropy.hpp, optimizer).
    std::size_t reproducible_across = 0;
};

namespace detail {

/// Every field of network_options: all of them must be the same on every rank of a group.
inline constexpr setting_field network_option_fields[] = {
    {"seed", setting_role::same_on_ranks},
    {"bias", setting_role::same_on_ranks},
    {"init", setting_role::same_on_ranks},
    {"precision", setting_role::same_on_ranks},
    {"reproducible_across", setting_role::same_on_ranks},
};

}  // namespace detail

/// Calls `f.template operator()<L>(group)` with the group and layout a loss takes for a
/// network output in layout `output` on the model-parallel group `model`: the ranks that hold
/// the output's different blocks, with L = sharded, or `model` with L = replicated when every
/// rank holds all of it. The blocks are then balanced shards of the classes over that group,
/// as the losses expect. Ranks holding copies of a block (along the other grid dimension of a
/// 2D output) compute the same loss each for itself: nothing is gathered or converted.
template <communicator Comm, class F>
decltype(auto) with_loss_group(Comm& model, layout output, F&& f) {
    SHARDNET_ASSERT(!output.has_partial());
    if (auto* holders = group_splitting(model, output))
        return f.template operator()<layout::sharded>(*holders);
    return f.template operator()<layout::replicated>(model);
}

namespace detail {

/// He initialization for relu and gelu layers, Xavier for the others.
template <class Activation>
init_scheme default_init() {
    if constexpr (std::is_same_v<Activation, activation::relu> ||
                  std::is_same_v<Activation, activation::gelu>)
        return init_scheme::he_uniform;
    else
        return init_scheme::xavier_uniform;
}

/// The options of layer `index` (0-based) of a network, named fc1, fc2, ...
template <class Activation>
dense_options layer_options(const network_options& options, std::size_t index) {
    dense_options o;
    o.bias = options.bias;
    o.seed = options.seed;
    o.layer = static_cast<std::uint32_t>(index);
    o.init = options.init.value_or(default_init<Activation>());
    o.name = concat("fc", index + 1);
    o.precision = options.precision;
    o.reproducible_across = options.reproducible_across;
    return o;
}

/// The shared implementation of sequential<...> and network<T, Group> (see the top of this
/// file). Derived provides `layer_count()` and `with_layer(i, f)`, which calls f with layer i
/// (a dense<...> or an any_layer<...>: both offer the same members), and calls
/// finish_construction() once its layers exist.
template <class Derived, class T>
class network_core {
  public:
    using value_type = T;
    /// Every network takes a replicated batch x widths()[0] input.
    static constexpr layout input_layout = layout::replicated;

    network_core(const network_core&) = delete;
    network_core& operator=(const network_core&) = delete;

    /// The network's output for a replicated batch x widths()[0] input. Collective over the
    /// model-parallel group; ranks agree that inputs have the expected width and the same
    /// batch size before any layer communicates.
    /// @pre x stays alive until backward().
    /// @return the output in output(), owned by the network, valid until the next forward.
    template <communicator Comm>
    const matrix<T>& forward(Comm& group, const matrix<T>& x) {
        check_input(group, x);
        const matrix<T>* y = &x;
        // The previous layer's output rounded to bf16, when it computes in bf16: a bf16 layer
        // after it takes that (gathered in bf16 by the conversion) instead of the fp32 output.
        const matrix<bfloat16>* y_low = nullptr;
        for (std::size_t i = 0; i < depth(); ++i) {
            self().with_layer(i, [&](auto& l) {
                const bool low = l.compute_precision() == precision::bf16;
                if constexpr (collectives_on<Comm, bfloat16>) {
                    if (low && y_low != nullptr) {
                        y = &l.forward_low_unchecked(group, conversions_[i].forward(group, *y_low));
                        y_low = &l.output_low();
                        return;
                    }
                }
                y = &l.forward_unchecked(group, conversions_[i].forward(group, *y));
                y_low = low ? &l.output_low() : nullptr;
            });
        }
        return *y;
    }

    /// Back-propagates dy (the loss gradient w.r.t. the output, in output()) through every
    /// layer. Afterwards gradients are `local` until reduce_gradients(). Collective over the
    /// model-parallel group.
    template <communicator Comm>
    void backward(Comm& group, const matrix<T>& dy) {
        check_output_gradient(group, dy);
        backward_layers(group, dy, [](std::size_t) {});
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
    void backward(ModelComm& model_group, const matrix<T>& dy, DataComm& data_group) {
        check_output_gradient(model_group, dy);
        if (data_group.size() > 1) {
            using request = decltype(start_all_reduce(data_group, std::declval<T*>(),
                                                      std::size_t{0}, reduce_op::sum));
            // One slot per parameter, kept between steps: a step allocates nothing.
            auto& pending = pending_slots<request>();
            // MPI progresses a non-blocking collective only inside MPI calls: the GEMMs of the
            // layers below poll the requests in flight between their blocks.
            auto poll_pending = [&pending] {
                for (auto& r : pending)
                    if (r) detail::poll(*r);
            };
            const detail::progress_scope progress(poll_pending);
            backward_layers(model_group, dy, [&](std::size_t layer) {
                for (std::size_t p = first_parameter_[layer]; p < first_parameter_[layer + 1]; ++p)
                    if (parameters_[p].size > 0)
                        pending[p].emplace(start_all_reduce(data_group, parameters_[p].grad,
                                                            parameters_[p].size, reduce_op::sum));
            });
            for (auto& r : pending)
                if (r) {
                    r->wait();
                    r.reset();
                }
        } else {
            backward_layers(model_group, dy, [](std::size_t) {});
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
            throw error(concat(Derived::kind,
                               ": reduce_gradients() called without a backward() "
                               "before it"));
        reduce_over_model(model_group);
        reduce_over_data(data_group);
    }

    /// reduce_gradients() for networks whose parameters need only the data-parallel reduction
    /// (every network of built-in partitions). Collective over `data_group`.
    /// @throws error if a parameter's type asks for a model-parallel reduction as well.
    template <communicator DataComm>
    void reduce_gradients(DataComm& data_group) {
        if (state_ != gradient_state::local)
            throw error(concat(Derived::kind,
                               ": reduce_gradients() called without a backward() "
                               "before it"));
        for (const auto& p : parameters_)
            if (p.reduce_over_model_group && grid_.size() > 1)
                throw error(concat(Derived::kind, ": the gradient of ", p.name,
                                   " must also be reduced over the model-parallel group; call "
                                   "reduce_gradients(model, data)"));
        reduce_over_data(data_group);
    }

    /// Rounds every master weight shard into its bf16 copy (bf16 precision layers; nothing for
    /// fp32 ones). Optimizers do it as they update and load_checkpoint after it loads; call it
    /// after writing weights any other way. Not collective.
    void refresh_low_precision() {
        if constexpr (std::is_same_v<T, float>)  // only float layers have bf16 copies
            for (auto& p : parameters_)
                if (p.low_precision_copy) to_bfloat16(p.value, p.low_precision_copy, p.size);
    }

    /// Where the gradients stand; optimizers refuse anything but `reduced`.
    gradient_state gradients() const { return state_; }
    /// Called by optimizers after an update.
    void mark_updated() { state_ = gradient_state::none; }

    /// Every local parameter shard, in layer order (weight, then bias).
    std::vector<parameter_ref<T>>& parameters() { return parameters_; }

    const std::vector<std::size_t>& widths() const { return widths_; }
    std::size_t model_parallel() const { return grid_.size(); }
    /// The model-parallel grid the network was built for, and this rank's place in it.
    grid_shape grid() const { return grid_; }
    grid_position position() const { return at_; }
    /// What each rank holds of the output: the last layer's output layout. with_loss_group
    /// gives a loss the group and layout to take it in.
    layout output() const { return output_; }
    /// This rank's block of the output features (all of them when replicated).
    shard_range output_block() const { return feature_block(output_, widths_.back(), grid_, at_); }

    /// What one training step of `batch` rows per replica costs on this rank: per layer its
    /// global and local weight shapes, layouts and collectives; with `data_parallel`
    /// replicas, the gradient all-reduce. Not collective.
    network_plan plan(std::size_t batch, std::size_t data_parallel = 1) const {
        network_plan p;
        p.element_size = sizeof(T);
        p.batch = batch;
        p.model_parallel = grid_.size();
        p.model_grid = grid_;
        p.data_parallel = data_parallel;
        bool previous_bf16 = false;  // whether the layer before hands on bf16 activations
        for (std::size_t i = 0; i < depth(); ++i)
            self().with_layer(i, [&](const auto& l) {
                plan_layer(p, l, i, batch);
                const bool bf16 = l.compute_precision() == precision::bf16;
                p.layers.back().bf16 = bf16;
                p.layers.back().forward_gather_element_size =
                    bf16 && previous_bf16 ? sizeof(bfloat16) : sizeof(T);
                previous_bf16 = bf16;
            });
        if (data_parallel > 1)
            for (const auto& param : parameters_)
                p.data_parallel_all_reduce += param.size;
        return p;
    }

  protected:
    /// Checks the configuration on every rank of `group` before any layer is built: ranks
    /// that were started differently would otherwise deadlock later, far from the cause.
    /// `layers` names every layer's partition and activation.
    template <communicator Comm>
    network_core(Comm& group, const std::vector<std::size_t>& widths,
                 const network_options& options, std::size_t depth, const std::string& layers)
        : widths_(checked_widths(group, widths, options, depth, layers)),
          grid_(grid_of(group)),
          at_(position_of(group)) {}

    /// Builds the conversions and the parameter list once Derived's layers exist.
    /// @throws error if a layer's output is a partial sum (no layer or loss takes one).
    void finish_construction() {
        layout previous = input_layout;
        conversions_.reserve(depth());
        first_parameter_.assign(depth() + 1, 0);
        for (std::size_t i = 0; i < depth(); ++i)
            self().with_layer(i, [&](auto& l) {
                if (l.output_layout().has_partial())
                    throw error(concat(Derived::kind, ": layer ", i + 1, " (", l.describe(),
                                       ") gives a partial sum, which no layer or loss takes"));
                conversions_.emplace_back(previous, l.input_layout(), widths_[i], grid_, at_);
                previous = l.output_layout();
                first_parameter_[i] = parameters_.size();
                add_parameters(l);
            });
        first_parameter_[depth()] = parameters_.size();
        output_ = previous;
    }

    ~network_core() = default;

  private:
    Derived& self() { return static_cast<Derived&>(*this); }
    const Derived& self() const { return static_cast<const Derived&>(*this); }
    std::size_t depth() const { return widths_.size() - 1; }

    template <communicator Comm>
    static std::vector<std::size_t> checked_widths(Comm& group, const std::vector<std::size_t>& w,
                                                   const network_options& options,
                                                   std::size_t depth, const std::string& layers) {
        // Everything that shapes the collective schedule. The options are read field by field
        // (network_option_fields), so a new option cannot go unchecked.
        settings config =
            describe_fields(options, detail::network_option_fields, setting_role::same_on_ranks);
        config.set("widths", detail::setting_value(w));
        config.set("layers", layers);
        agree_same_settings(group, config,
                            concat(Derived::kind, ": the network configurations").c_str());
        agree_on(group, [&] {
            if (w.size() != depth + 1)
                throw error(concat(Derived::kind, ": ", depth, " layers need ", depth + 1,
                                   " widths (input, hidden..., output), got ", w.size()));
            for (std::size_t i = 0; i < w.size(); ++i)
                if (w[i] == 0) throw error(concat(Derived::kind, ": width ", i, " is 0"));
        });
        return w;
    }

    template <class Layer>
    void add_parameters(Layer& l) {
        const std::size_t in = l.input_features(), out = l.output_features();
        const partition_map map = l.map();
        parameters_.push_back({l.name() + ".weight", l.weight().data(), l.weight_grad().data(),
                               l.weight().size(), map.first_weight_copy(in, out, grid_, at_),
                               l.weight_gradient_over_model_group(), l.weight_low_data()});
        if (l.has_bias())
            parameters_.push_back({l.name() + ".bias", l.bias().data(), l.bias_grad().data(),
                                   l.bias().size(), map.first_bias_copy(out, grid_, at_),
                                   l.bias_gradient_over_model_group()});
    }

    /// Layers last to first; layer_done(i) runs as soon as layer i's gradients are computed,
    /// before the layers below it.
    template <communicator Comm, class LayerDone>
    void backward_layers(Comm& group, const matrix<T>& dy, LayerDone&& layer_done) {
        const matrix<T>* grad = &dy;
        for (std::size_t i = depth(); i-- > 0;) {
            // The first layer skips its input gradient: nobody needs the gradient of the data,
            // and for a column_split first layer that also saves its backward all-reduce.
            const matrix<T>* dx = nullptr;
            self().with_layer(i, [&](auto& l) { dx = &l.backward_unchecked(group, *grad, i > 0); });
            layer_done(i);
            if (i > 0) grad = &conversions_[i].backward(group, *dx);
        }
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
    void check_output_gradient(Comm& group, const matrix<T>& dy) {
        agree_on(group, [&] {
            const std::size_t want = output_block().size();
            if (!forwarded_)
                throw error(concat(Derived::kind, ": backward() called before forward()"));
            if (dy.shape(0) != batch_ || dy.shape(1) != want)
                throw error(concat(Derived::kind, ": output gradient is ", dy.shape(0), " x ",
                                   dy.shape(1), " on rank ", group.rank(), ", expected ", batch_,
                                   " x ", want));
        });
    }

    template <communicator Comm>
    void check_input(Comm& group, const matrix<T>& x) {
        const value_range batch = range_on_all_ranks(group, static_cast<std::int64_t>(x.shape(0)));
        agree_on(group, [&] {
            if (x.shape(1) != widths_[0])
                throw error(concat(Derived::kind, ": input has ", x.shape(1),
                                   " features per row on rank ", group.rank(), ", expected ",
                                   widths_[0]));
            if (!batch.same())
                throw error(concat(
                    Derived::kind, ": ranks of a model-parallel group hold different batch sizes (",
                    batch.min, " to ", batch.max, "); they must read the same rows"));
        });
        batch_ = x.shape(0);
        forwarded_ = true;
    }

    template <class Layer>
    void plan_layer(network_plan& p, const Layer& l, std::size_t i, std::size_t batch) const {
        const auto& c = conversions_[i];
        layer_plan row;
        row.name = l.name();
        row.partition = std::string(l.partition_name());
        row.activation = std::string(l.activation_name());
        row.in = l.input_features();
        row.out = l.output_features();
        row.local_rows = l.weight_rows().size();
        row.local_cols = l.weight_cols().size();
        row.input_layout = l.input_layout();
        row.output_layout = l.output_layout();
        row.conversion = c.describe();
        const step_traffic t = l.traffic(batch);
        row.forward_all_reduce = t.forward_all_reduce;
        row.backward_all_reduce = i == 0 ? 0 : t.backward_all_reduce;  // no dx for the data
        row.forward_reduce_group = t.forward_group;
        row.backward_reduce_group = t.backward_group;
        row.forward_all_gather = c.forward_gather(batch);
        // The data's gradient is not computed: the first conversion has no backward.
        row.backward_all_gather = i == 0 ? 0 : c.backward_gather(batch);
        row.forward_gather_group = c.forward_group();
        row.backward_gather_group = c.backward_group();
        p.layers.push_back(row);
    }

    /// The per-parameter request slots of backward(model, dy, data), made on the first step
    /// with a data-parallel group of this communicator type and reused by every later one.
    template <class Request>
    std::vector<std::optional<Request>>& pending_slots() {
        using slots = std::vector<std::optional<Request>>;
        if (pending_type_ != std::type_index(typeid(Request))) {
            pending_ = std::make_shared<slots>(parameters_.size());
            pending_type_ = std::type_index(typeid(Request));
        }
        return *static_cast<slots*>(pending_.get());
    }

    std::vector<std::size_t> widths_;
    grid_shape grid_;
    grid_position at_;
    layout output_ = layout::replicated;
    std::vector<layout_conversion<T>> conversions_;
    std::vector<parameter_ref<T>> parameters_;
    // Layer i's parameters are parameters_[first_parameter_[i], first_parameter_[i + 1]).
    std::vector<std::size_t> first_parameter_;
    gradient_state state_ = gradient_state::none;
    std::size_t batch_ = 0;
    bool forwarded_ = false;
    std::shared_ptr<void> pending_;
    std::type_index pending_type_ = std::type_index(typeid(void));
};

}  // namespace detail
}  // namespace shardnet
