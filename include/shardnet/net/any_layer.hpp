// A dense layer behind virtual calls, so that a network's layers can be chosen at run time:
// any_layer<T, Group> is the interface, layer_adapter<Layer, Group> wraps one compile-time
// dense<T, Partition, Activation, Gemm>. The generated code grows with the number of distinct
// layer kinds, not with the ways of combining them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/precision.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// What a network needs of one of its layers, for layers of element type T whose collectives
/// run over the model-parallel group type Group. The members mean what dense<...>'s do.
template <class T, communicator Group>
class any_layer {
  public:
    using value_type = T;
    virtual ~any_layer() = default;

    virtual const matrix<T>& forward_unchecked(Group& group, const matrix<T>& x) = 0;
    virtual const matrix<T>& backward_unchecked(Group& group, const matrix<T>& dy,
                                                bool input_gradient) = 0;
    virtual const matrix<T>& forward_low_unchecked(Group& group, const matrix<bfloat16>& x) = 0;
    virtual const matrix<bfloat16>& output_low() const = 0;
    virtual shardnet::precision compute_precision() const = 0;
    virtual void refresh_low_precision() = 0;
    virtual bfloat16* weight_low_data() = 0;
    virtual matrix<T> gather_weight(Group& group) const = 0;
    virtual vector<T> gather_bias(Group& group) const = 0;
    virtual void import_weights(Group& group, const matrix<T>& global_weight,
                                const vector<T>* global_bias) = 0;

    virtual std::string_view partition_name() const = 0;
    virtual std::string_view activation_name() const = 0;
    virtual layout input_layout() const = 0;
    virtual layout output_layout() const = 0;
    virtual partition_map map() const = 0;
    virtual step_traffic traffic(std::size_t batch) const = 0;
    virtual bool weight_gradient_over_model_group() const = 0;
    virtual bool bias_gradient_over_model_group() const = 0;

    virtual std::size_t input_features() const = 0;
    virtual std::size_t output_features() const = 0;
    virtual shard_range weight_rows() const = 0;
    virtual shard_range weight_cols() const = 0;
    virtual grid_shape grid() const = 0;
    virtual grid_position position() const = 0;
    virtual bool has_bias() const = 0;
    virtual const std::string& name() const = 0;
    virtual std::string describe() const = 0;

    virtual matrix<T>& weight() = 0;
    virtual const matrix<T>& weight() const = 0;
    virtual vector<T>& bias() = 0;
    virtual const vector<T>& bias() const = 0;
    virtual matrix<T>& weight_grad() = 0;
    virtual const matrix<T>& weight_grad() const = 0;
    virtual vector<T>& bias_grad() = 0;
    virtual const vector<T>& bias_grad() const = 0;
};

/// Layer (a dense<T, Partition, Activation, Gemm>) as an any_layer: every call forwards.
template <class Layer, communicator Group>
class layer_adapter final : public any_layer<typename Layer::value_type, Group> {
    using T = typename Layer::value_type;

  public:
    explicit layer_adapter(Layer layer) : layer_(std::move(layer)) {}

    Layer& layer() { return layer_; }

    const matrix<T>& forward_unchecked(Group& group, const matrix<T>& x) override {
        return layer_.forward_unchecked(group, x);
    }
    const matrix<T>& backward_unchecked(Group& group, const matrix<T>& dy,
                                        bool input_gradient) override {
        return layer_.backward_unchecked(group, dy, input_gradient);
    }
    const matrix<T>& forward_low_unchecked(Group& group, const matrix<bfloat16>& x) override {
        return layer_.forward_low_unchecked(group, x);
    }
    const matrix<bfloat16>& output_low() const override { return layer_.output_low(); }
    shardnet::precision compute_precision() const override { return layer_.compute_precision(); }
    void refresh_low_precision() override { layer_.refresh_low_precision(); }
    bfloat16* weight_low_data() override { return layer_.weight_low_data(); }
    matrix<T> gather_weight(Group& group) const override { return layer_.gather_weight(group); }
    vector<T> gather_bias(Group& group) const override { return layer_.gather_bias(group); }
    void import_weights(Group& group, const matrix<T>& global_weight,
                        const vector<T>* global_bias) override {
        layer_.import_weights(group, global_weight, global_bias);
    }

    std::string_view partition_name() const override { return layer_.partition_name(); }
    std::string_view activation_name() const override { return layer_.activation_name(); }
    layout input_layout() const override { return layer_.input_layout(); }
    layout output_layout() const override { return layer_.output_layout(); }
    partition_map map() const override { return layer_.map(); }
    step_traffic traffic(std::size_t batch) const override { return layer_.traffic(batch); }
    bool weight_gradient_over_model_group() const override {
        return layer_.weight_gradient_over_model_group();
    }
    bool bias_gradient_over_model_group() const override {
        return layer_.bias_gradient_over_model_group();
    }

    std::size_t input_features() const override { return layer_.input_features(); }
    std::size_t output_features() const override { return layer_.output_features(); }
    shard_range weight_rows() const override { return layer_.weight_rows(); }
    shard_range weight_cols() const override { return layer_.weight_cols(); }
    grid_shape grid() const override { return layer_.grid(); }
    grid_position position() const override { return layer_.position(); }
    bool has_bias() const override { return layer_.has_bias(); }
    const std::string& name() const override { return layer_.name(); }
    std::string describe() const override { return layer_.describe(); }

    matrix<T>& weight() override { return layer_.weight(); }
    const matrix<T>& weight() const override { return layer_.weight(); }
    vector<T>& bias() override { return layer_.bias(); }
    const vector<T>& bias() const override { return layer_.bias(); }
    matrix<T>& weight_grad() override { return layer_.weight_grad(); }
    const matrix<T>& weight_grad() const override { return layer_.weight_grad(); }
    vector<T>& bias_grad() override { return layer_.bias_grad(); }
    const vector<T>& bias_grad() const override { return layer_.bias_grad(); }

  private:
    Layer layer_;
};

}  // namespace shardnet
