// Optimizers that update each rank's local shards only, with state sized to the shard: SGD
// with momentum and weight decay, Adam, AdamW; gradient clipping by the global norm.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/net/parameter.hpp"
#include "shardnet/train/schedule.hpp"

namespace shardnet {

/// Hyper-parameters of an optimizer. Build them with sgd(), adam() or adamw().
struct optimizer_options {
    enum class kind { sgd, adam, adamw };
    kind method = kind::sgd;
    double lr = 0.01;
    double momentum = 0.0;                          ///< sgd
    bool nesterov = false;                          ///< sgd
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  ///< adam, adamw
    /// sgd and adam: L2 added to the gradient; adamw: decoupled decay of the weights.
    double weight_decay = 0.0;
    double clip_norm = 0.0;  ///< clip gradients to this global norm; 0: no clipping
    lr_schedule schedule;
};

inline optimizer_options sgd(double lr, double momentum = 0.0, double weight_decay = 0.0) {
    optimizer_options o;
    o.method = optimizer_options::kind::sgd;
    o.lr = lr;
    o.momentum = momentum;
    o.weight_decay = weight_decay;
    return o;
}
inline optimizer_options adam(double lr = 1e-3, double weight_decay = 0.0) {
    optimizer_options o;
    o.method = optimizer_options::kind::adam;
    o.lr = lr;
    o.weight_decay = weight_decay;
    return o;
}
inline optimizer_options adamw(double lr = 1e-3, double weight_decay = 1e-2) {
    optimizer_options o;
    o.method = optimizer_options::kind::adamw;
    o.lr = lr;
    o.weight_decay = weight_decay;
    return o;
}

/// Updates the local shards of a network's parameters.
/// @tparam T the network's element type.
template <class T>
class optimizer {
  public:
    explicit optimizer(optimizer_options options) : options_(options) {}

    /// One update of every parameter of `net`. Collective over the model-parallel `group`
    /// when clipping (one all-reduce of one element for the global norm).
    /// @throws error if the gradients were not reduced over the data-parallel group.
    /// @return the global gradient norm before clipping (0 when not clipping).
    template <class Net, communicator Comm>
    double step(Net& net, Comm& group) {
        if (net.gradients() != gradient_state::reduced)
            throw error(net.gradients() == gradient_state::local
                            ? "optimizer: gradients were not reduced over the data-parallel "
                              "group; call reduce_gradients(grid.data()) before step()"
                            : "optimizer: no gradients to apply; call backward() first");
        auto& params = net.parameters();
        if (state_.empty()) allocate(params);
        double norm = 0;
        if (options_.clip_norm > 0) {
            norm = global_norm(params, group);
            if (norm > options_.clip_norm)
                scale_gradients(params, options_.clip_norm / (norm + 1e-6));
        }
        ++updates_;
        const double lr = options_.schedule.at(options_.lr, updates_ - 1);
        for (std::size_t p = 0; p < params.size(); ++p)
            update(params[p], state_[p], lr);
        net.mark_updated();
        return norm;
    }

    /// The global L2 norm of all gradients: each global element counted once, whether it is
    /// sharded or replicated in the model-parallel group. Collective over `group`.
    template <communicator Comm>
    static double global_norm(const std::vector<parameter_ref<T>>& params, Comm& group) {
        double sum = 0;
        for (const auto& p : params) {
            if (!p.first_copy) continue;
            for (std::size_t i = 0; i < p.size; ++i)
                sum += static_cast<double>(p.grad[i]) * static_cast<double>(p.grad[i]);
        }
        group.all_reduce(&sum, 1, reduce_op::sum);
        return std::sqrt(sum);
    }

    std::size_t updates() const { return updates_; }
    const optimizer_options& options() const { return options_; }

    // State access for checkpoints (io/checkpoint.hpp): the per-element arrays, shaped like
    // each parameter's local shard, and the update count the schedule and Adam's bias
    // correction depend on. Restoring both continues the run bitwise.

    /// "sgd", "adam" or "adamw".
    std::string_view method_name() const {
        switch (options_.method) {
            case optimizer_options::kind::sgd:
                return "sgd";
            case optimizer_options::kind::adam:
                return "adam";
            case optimizer_options::kind::adamw:
                return "adamw";
        }
        return "?";
    }
    /// State arrays per parameter: 0 (plain sgd), 1 (sgd with momentum), 2 (adam, adamw).
    std::size_t state_slots() const {
        if (options_.method != optimizer_options::kind::sgd) return 2;
        return options_.momentum != 0.0 ? 1 : 0;
    }
    /// Allocates the state (zeros, as the first step would) if no step has allocated it yet.
    void prepare_state(const std::vector<parameter_ref<T>>& params) {
        if (state_.empty()) allocate(params);
    }
    /// Slot `slot` of parameter `parameter`'s state. @pre prepare_state() or a step ran,
    /// slot < state_slots().
    T* state(std::size_t parameter, std::size_t slot) {
        SHARDNET_ASSERT(parameter < state_.size() && slot < state_slots());
        return slot == 0 ? state_[parameter].first.data() : state_[parameter].second.data();
    }
    /// Sets the number of updates taken (from a checkpoint).
    void restore_updates(std::size_t updates) { updates_ = updates; }
    /// The learning rate of the next update.
    double learning_rate() const { return options_.schedule.at(options_.lr, updates_); }

  private:
    struct shard_state {
        std::vector<T> first, second;  // momentum / Adam moments, sized to the shard
    };

    void allocate(const std::vector<parameter_ref<T>>& params) {
        state_.resize(params.size());
        const bool two_moments = options_.method != optimizer_options::kind::sgd;
        for (std::size_t p = 0; p < params.size(); ++p) {
            if (two_moments || options_.momentum != 0.0)
                state_[p].first.assign(params[p].size, T(0));
            if (two_moments) state_[p].second.assign(params[p].size, T(0));
        }
    }

    static void scale_gradients(std::vector<parameter_ref<T>>& params, double factor) {
        for (auto& p : params)
            for (std::size_t i = 0; i < p.size; ++i)
                p.grad[i] = static_cast<T>(p.grad[i] * factor);
    }

    void update(parameter_ref<T>& p, shard_state& s, double lr) const {
        const T rate = static_cast<T>(lr), decay = static_cast<T>(options_.weight_decay);
        switch (options_.method) {
            case optimizer_options::kind::sgd: {
                const T mu = static_cast<T>(options_.momentum);
                for (std::size_t i = 0; i < p.size; ++i) {
                    T g = p.grad[i] + decay * p.value[i];
                    if (options_.momentum != 0.0) {
                        // As PyTorch: the buffer starts as the first gradient.
                        s.first[i] = updates_ == 1 ? g : mu * s.first[i] + g;
                        g = options_.nesterov ? g + mu * s.first[i] : s.first[i];
                    }
                    p.value[i] -= rate * g;
                }
                break;
            }
            case optimizer_options::kind::adam:
            case optimizer_options::kind::adamw: {
                const bool decoupled = options_.method == optimizer_options::kind::adamw;
                const T b1 = static_cast<T>(options_.beta1), b2 = static_cast<T>(options_.beta2);
                const T c1 = static_cast<T>(
                    1.0 / (1.0 - std::pow(options_.beta1, static_cast<double>(updates_))));
                const T c2 = static_cast<T>(
                    1.0 / (1.0 - std::pow(options_.beta2, static_cast<double>(updates_))));
                const T eps = static_cast<T>(options_.eps);
                for (std::size_t i = 0; i < p.size; ++i) {
                    T g = p.grad[i];
                    if (decoupled)
                        p.value[i] -= rate * decay * p.value[i];
                    else
                        g += decay * p.value[i];
                    s.first[i] = b1 * s.first[i] + (T(1) - b1) * g;
                    s.second[i] = b2 * s.second[i] + (T(1) - b2) * g * g;
                    p.value[i] -= rate * (s.first[i] * c1) / (std::sqrt(s.second[i] * c2) + eps);
                }
                break;
            }
        }
    }

    optimizer_options options_;
    std::vector<shard_state> state_;
    std::size_t updates_ = 0;
};

}  // namespace shardnet
