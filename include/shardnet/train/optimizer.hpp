// Optimizers that update each rank's local shards only, with state sized to the shard: SGD
// with momentum and weight decay, Adam, AdamW; gradient clipping by the global norm.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/kernels/reproducible_sum.hpp"
#include "shardnet/net/parameter.hpp"
#include "shardnet/train/gradient_norm.hpp"
#include "shardnet/train/optimizer_update.hpp"
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

/// What optimizer::step does about NaN or infinite gradients.
enum class gradient_check {
    none,  ///< apply whatever the gradients hold
    /// Look before updating: if any rank of the group holds a non-finite gradient, nothing is
    /// updated (weights, state and the update count stay as they were). Costs a read of every
    /// gradient before the update, unless clipping reads them anyway for the norm.
    before_update,
    /// Look while updating, in the update's own pass (no extra read of the gradients): a
    /// non-finite gradient is reported after the weights took the update. For callers that stop
    /// on it (the trainer's non_finite_policy::stop). With clipping, the norm is known first and
    /// nothing is updated, as before_update.
    during_update,
};

/// What optimizer::step reports.
struct step_report {
    double norm = 0;      ///< global gradient norm before clipping (0 when not clipping)
    bool finite = true;   ///< every gradient in the group was finite (when checked)
    bool applied = true;  ///< the update was applied
};

/// Updates the local shards of a network's parameters.
/// @tparam T the network's element type.
template <class T>
class optimizer {
  public:
    explicit optimizer(optimizer_options options) : options_(options) {}

    /// One update of every parameter of `net`, in one vectorized pass over each shard (gradient
    /// clipping scales the gradients inside it; a parameter with a bf16 copy, of a bf16
    /// mixed-precision layer, gets it refreshed in that pass too). Collective over the
    /// model-parallel `group` when clipping (three all-reduces of one value for the global norm)
    /// and when checking (one of one element for the finite flag). Gradients are left as backward
    /// produced them.
    /// @throws error if the gradients were not reduced over the data-parallel group.
    template <class Net, communicator Comm>
    step_report step(Net& net, Comm& group, gradient_check check) {
        if (net.gradients() != gradient_state::reduced)
            throw error(net.gradients() == gradient_state::local
                            ? "optimizer: gradients were not reduced over the data-parallel "
                              "group; call reduce_gradients(grid.data()) before step()"
                            : "optimizer: no gradients to apply; call backward() first");
        auto& params = net.parameters();
        if (state_.empty()) allocate(params);
        step_report report;
        double scale = 1;
        bool known_finite = false;  // a finite norm already proves every gradient finite
        if (options_.clip_norm > 0) {
            report.norm = global_norm(params, group);
            if (!std::isfinite(report.norm) && check != gradient_check::none) {
                report.finite = report.applied = false;
                return report;
            }
            known_finite = std::isfinite(report.norm);
            if (report.norm > options_.clip_norm) scale = options_.clip_norm / (report.norm + 1e-6);
        }
        if (check == gradient_check::before_update && !known_finite) {
            bool finite = true;
            for (const auto& p : params)
                finite = finite && detail::all_finite(p.grad, p.size);
            if (!agree_finite(finite, group)) {
                report.finite = report.applied = false;
                return report;
            }
            known_finite = true;
        }
        ++updates_;
        const double lr = options_.schedule.at(options_.lr, updates_ - 1);
        bool finite = true;
        for (std::size_t p = 0; p < params.size(); ++p)
            finite = update(params[p], state_[p], lr, scale) && finite;
        net.mark_updated();
        if (check == gradient_check::during_update && !known_finite)
            report.finite = agree_finite(finite, group);
        return report;
    }

    /// step(net, group, gradient_check::none), returning the global gradient norm before
    /// clipping (0 when not clipping).
    template <class Net, communicator Comm>
    double step(Net& net, Comm& group) {
        return step(net, group, gradient_check::none).norm;
    }

    /// The global L2 norm of all gradients: each global element counted once, whether it is
    /// sharded or replicated in the model-parallel group. Collective over `group` (three
    /// all-reduces of one value). The squares are summed exactly on a fixed-point grid
    /// (kernels/reproducible_sum.hpp) set by the largest square and the number of elements,
    /// so the norm is the same bits however the parameters are split, and on one rank; its
    /// step is at most 2^-61 of (largest square x elements), so the norm is exact to well below
    /// float precision for any network a rank holds. An inf or NaN gradient gives an inf norm.
    /// Two vectorized reads of each gradient (train/gradient_norm.hpp).
    template <communicator Comm>
    static double global_norm(const std::vector<parameter_ref<T>>& params, Comm& group) {
        double largest = 0;
        std::int64_t elements = 0;
        for (const auto& p : params) {
            if (!p.first_copy) continue;
            elements += static_cast<std::int64_t>(p.size);
            largest = std::max(largest, detail::largest_square(p.grad, p.size));
        }
        group.all_reduce(&largest, 1, reduce_op::max);
        group.all_reduce(&elements, 1, reduce_op::sum);
        if (!std::isfinite(largest)) return std::numeric_limits<double>::infinity();
        const fixed_point_grid grid(largest,
                                    static_cast<std::size_t>(std::max<std::int64_t>(elements, 1)));
        std::int64_t sum = 0;
        for (const auto& p : params)
            if (p.first_copy) sum += detail::grid_sum_of_squares(p.grad, p.size, grid);
        group.all_reduce(&sum, 1, reduce_op::sum);
        return std::sqrt(grid.from_grid(sum));
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

    /// Whether every rank of `group` saw finite gradients.
    template <communicator Comm>
    static bool agree_finite(bool finite, Comm& group) {
        std::int64_t bad = finite ? 0 : 1;
        group.all_reduce(&bad, 1, reduce_op::max);
        return bad == 0;
    }

    /// One shard's update (optimizer_update.hpp). @return whether its gradients were finite.
    bool update(parameter_ref<T>& p, shard_state& s, double lr, double scale) const {
        const T rate = static_cast<T>(lr), decay = static_cast<T>(options_.weight_decay);
        const T factor = static_cast<T>(scale);
        if (options_.method == optimizer_options::kind::sgd) {
            const detail::sgd_coefficients<T> k{.rate = rate,
                                                .decay = decay,
                                                .scale = factor,
                                                .momentum = static_cast<T>(options_.momentum),
                                                .nesterov = options_.nesterov,
                                                .first = updates_ == 1};
            return detail::sgd_update(p.value, p.grad,
                                      options_.momentum != 0.0 ? s.first.data() : nullptr, p.size,
                                      k, p.low_precision_copy);
        }
        const auto t = static_cast<double>(updates_);
        const detail::adam_coefficients<T> k{
            .rate = rate,
            .decay = decay,
            .decoupled = options_.method == optimizer_options::kind::adamw,
            .scale = factor,
            .beta1 = static_cast<T>(options_.beta1),
            .beta2 = static_cast<T>(options_.beta2),
            .eps = static_cast<T>(options_.eps),
            .correction1 = static_cast<T>(1.0 / (1.0 - std::pow(options_.beta1, t))),
            .correction2 = static_cast<T>(1.0 / (1.0 - std::pow(options_.beta2, t)))};
        return detail::adam_update(p.value, p.grad, s.first.data(), s.second.data(), p.size, k,
                                   p.low_precision_copy);
    }

    optimizer_options options_;
    std::vector<shard_state> state_;
    std::size_t updates_ = 0;
};

}  // namespace shardnet
