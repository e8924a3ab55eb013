// network<T, Group>: dense layers chosen at run time, by name (layer_spec), for programs that
// read their architecture from a command line or a file. It shares every step with
// sequential<...> (network_core) and differs only in reaching its layers through any_layer's
// virtual calls: one indirect call per layer and pass, next to GEMMs and collectives.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/kernels/gemm_policy.hpp"
#include "shardnet/net/any_layer.hpp"
#include "shardnet/net/builtin_layers.hpp"
#include "shardnet/net/network_core.hpp"

namespace shardnet {

/// A feed-forward network of dense layers chosen at run time.
///
/// @tparam T float or double.
/// @tparam Group the model-parallel group type its collectives run over: the type of
///         process_grid<Comm>::model() (model_group<Comm>) for a trainer, or a plain
///         communicator. Every call that communicates takes a Group&.
/// @tparam Gemm the GEMM policy of every layer.
///
/// Its members (forward, backward, reduce_gradients, parameters, plan...) are network_core's,
/// the same as sequential<...>'s; with the same layers it computes bitwise the same results,
/// and checkpoints written by either load into the other. Not copyable or movable.
template <class T, communicator Group, gemm_policy Gemm = xsimd_gemm>
class network : public detail::network_core<network<T, Group, Gemm>, T> {
    using core = detail::network_core<network, T>;

  public:
    using value_type = T;
    using group_type = Group;
    /// Names the network in messages.
    static constexpr const char* kind = "network";

    /// Builds this rank's shards of every layer. widths = {in, hidden..., out}, one more
    /// value than `layers`. Collective over `group`: ranks compare a fingerprint of the
    /// configuration (widths, seed, partitions, activations) and all throw if any differs.
    /// @throws error on every rank for an unknown partition or activation (naming the
    ///         choices), a width count that does not match, or a zero width.
    network(Group& group, const std::vector<std::size_t>& widths, std::vector<layer_spec> layers,
            network_options options = {})
        : core(group, widths, options, layers.size(), describe(layers)),
          specs_(resolve_layer_specs(std::move(layers))) {
        layers_.reserve(specs_.size());
        for (std::size_t i = 0; i < specs_.size(); ++i)
            layers_.push_back(make_builtin_layer<T, Group, Gemm>(
                group, specs_[i], this->widths()[i], this->widths()[i + 1], options, i));
        this->finish_construction();
    }

    /// The number of layers.
    std::size_t layer_count() const { return layers_.size(); }
    any_layer<T, Group>& layer(std::size_t i) { return *layers_.at(i); }
    const any_layer<T, Group>& layer(std::size_t i) const { return *layers_.at(i); }
    /// The layers as built: canonical partition names, block2d orientation resolved.
    const std::vector<layer_spec>& layer_specs() const { return specs_; }

    /// Calls f(layer i). What network_core reaches layers through.
    template <class F>
    void with_layer(std::size_t i, F&& f) {
        f(*layers_[i]);
    }
    template <class F>
    void with_layer(std::size_t i, F&& f) const {
        f(static_cast<const any_layer<T, Group>&>(*layers_[i]));
    }

  private:
    /// The fingerprint ranks compare: the names as given (resolution is deterministic).
    static std::string describe(const std::vector<layer_spec>& layers) {
        std::string d;
        for (const auto& l : layers)
            d += l.partition + "/" + l.activation + " ";
        return d;
    }

    std::vector<layer_spec> specs_;
    std::vector<std::unique_ptr<any_layer<T, Group>>> layers_;
};

}  // namespace shardnet
