// A memory preflight: before a network is built, estimate what each rank will hold (weights,
// gradients, optimizer state, activations, workspaces), add up the ranks that share a node,
// and fail on every rank with "needed versus available" instead of dying in the allocator
// (or being killed by it) halfway through construction.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/memory.hpp"
#include "shardnet/core/precision.hpp"
#include "shardnet/layers/dense.hpp"

namespace shardnet {

/// Bytes one rank will hold for training a network, by kind. Doubles: widths can be large
/// enough for their product to overflow 64 bits, and an estimate needs no exactness.
struct memory_estimate {
    double weights = 0, gradients = 0, optimizer_state = 0, activations = 0, workspace = 0;
    /// Everything together: what the rank needs.
    double total() const { return weights + gradients + optimizer_state + activations + workspace; }
};

namespace detail {

/// Calls f.template operator()<Layer>(i) for every layer type of Net (a sequential<...>), as
/// built (Net::layers_type).
template <class Net>
struct layer_list {
    template <class F>
    static void each(F&& f) {
        using layers = typename Net::layers_type;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (f.template operator()<std::tuple_element_t<I, layers>>(I), ...);
        }
        (std::make_index_sequence<std::tuple_size_v<layers>>{});
    }
};

}  // namespace detail

/// What the rank at `at` of a model-parallel `grid` holds to train a network of
/// `element_size`-byte elements whose layer i has the parameter map maps[i], with `widths` on
/// `batch` rows per replica and an optimizer with `optimizer_slots` state arrays per parameter
/// (SGD with momentum 1, Adam 2). Activations count, for each layer, the blocks of its input
/// and output this rank holds, with their pre-activation and gradient copies. In bf16 precision
/// (core/precision.hpp) each layer also holds a bf16 copy of its weight shard and bf16 copies
/// of its input, output and output gradient. Not collective.
inline memory_estimate estimate_training_memory(const std::vector<partition_map>& maps,
                                                std::size_t element_size,
                                                const std::vector<std::size_t>& widths,
                                                grid_shape grid, grid_position at,
                                                std::size_t batch, std::size_t optimizer_slots,
                                                precision compute = precision::fp32) {
    memory_estimate e;
    const double low = compute == precision::bf16 ? static_cast<double>(sizeof(bfloat16)) : 0.0;
    const double element = static_cast<double>(element_size);
    for (std::size_t i = 0; i < maps.size() && i + 1 < widths.size(); ++i) {
        const double rows = static_cast<double>(maps[i].weight_rows(widths[i], grid, at).size());
        const double cols =
            static_cast<double>(maps[i].weight_cols(widths[i + 1], grid, at).size());
        const double params = (rows * cols + cols) * element;
        e.weights += params;
        e.gradients += params;
        e.optimizer_state += params * static_cast<double>(optimizer_slots);
        // This rank's input and output blocks (a replicated layout holds all of it), with the
        // pre-activation and the gradients of each.
        e.activations += 3.0 * static_cast<double>(batch) * (rows + cols) * element;
        e.weights += rows * cols * low;
        e.activations += (static_cast<double>(batch) * (rows + 2.0 * cols)) * low;
    }
    e.workspace = 16.0 * 1024 * 1024;  // GEMM packing panels and collective scratch
    return e;
}

/// The same for Net, a sequential<dense<...>...>.
template <class Net>
memory_estimate estimate_training_memory(const std::vector<std::size_t>& widths, grid_shape grid,
                                         grid_position at, std::size_t batch,
                                         std::size_t optimizer_slots) {
    std::vector<partition_map> maps;
    detail::layer_list<Net>::each([&]<class Layer>(std::size_t) { maps.push_back(Layer::map()); });
    return estimate_training_memory(maps, sizeof(typename Net::value_type), widths, grid, at, batch,
                                    optimizer_slots);
}

/// The same for model rank `part` of a 1D group of `parts`.
template <class Net>
memory_estimate estimate_training_memory(const std::vector<std::size_t>& widths, std::size_t parts,
                                         std::size_t part, std::size_t batch,
                                         std::size_t optimizer_slots) {
    return estimate_training_memory<Net>(widths, grid_shape{1, parts}, grid_position{0, part},
                                         batch, optimizer_slots);
}

/// Collective over `world`: compares what the ranks on each node need (the sum of their
/// estimates) with the memory available there, and throws agreed_error on every rank if any
/// node falls short, naming the need per kind, the ranks that share the node and what is
/// available. `what` names the job in the message ("not enough memory for <what>: ...").
template <communicator Comm>
void check_memory(Comm& world, const memory_estimate& need, std::string_view what) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    const auto host_id = static_cast<std::int64_t>(std::hash<std::string>{}(host) >> 1);
    std::vector<std::int64_t> hosts(world.size());
    std::vector<double> needs(world.size());
    world.all_gather(&host_id, 1, hosts.data());
    const double mine = need.total();
    world.all_gather(&mine, 1, needs.data());
    double node = 0;
    std::size_t sharing = 0;
    for (std::size_t r = 0; r < hosts.size(); ++r)
        if (hosts[r] == host_id) {
            node += needs[r];
            ++sharing;
        }
    const auto available = static_cast<double>(available_memory_bytes());
    std::optional<std::string> failure;
    if (node > available) {
        auto bytes = [](double b) {
            return format_bytes(b >= 1.8e19 ? std::uint64_t{18'000'000'000'000'000'000u}
                                            : static_cast<std::uint64_t>(b));
        };
        failure = detail::concat(
            "not enough memory for ", what, ": each rank needs about ", bytes(mine), " (weights ",
            bytes(need.weights), ", gradients ", bytes(need.gradients), ", optimizer state ",
            bytes(need.optimizer_state), ", activations ", bytes(need.activations), "), ", sharing,
            sharing == 1 ? " rank runs" : " ranks run", " on node '", host, "': about ",
            bytes(node), " in all, but only ", bytes(available),
            " is available. Use more nodes or model-parallel ranks, or smaller layers or batch");
    }
    agree(world, failure);
}

}  // namespace shardnet
