// What a checkpoint holds of a network: every parameter's local block of its global tensor,
// the optimizer state that goes with it, and the options shared by saving and loading.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/io/checksum.hpp"
#include "shardnet/io/manifest.hpp"
#include "shardnet/net/parameter.hpp"
#include "shardnet/net/visit_layers.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// Options of save_checkpoint.
struct checkpoint_options {
    std::size_t keep = 3;  ///< keep the newest `keep` checkpoints in the directory; 0: all
    /// Upper bound of one record's values in bytes: a reader on another grid holds at most one
    /// record (plus its own shard) in memory. At least one row per record.
    std::size_t record_bytes = std::size_t{4} << 20;
    /// Test hook, run on world rank 0 after every file is written and synced and before the
    /// rename that publishes the checkpoint: a throw here is a crash at the worst moment.
    std::function<void()> before_publish;
};

/// An optimizer whose state a checkpoint can hold: `state_slots()` arrays per parameter, each
/// shaped like the parameter's local shard.
template <class O, class T>
concept checkpointable_optimizer = requires(O& o, const O& co, std::vector<parameter_ref<T>>& p,
                                            std::size_t i) {
    { co.state_slots() } -> std::convertible_to<std::size_t>;
    { co.method_name() } -> std::convertible_to<std::string_view>;
    { co.updates() } -> std::convertible_to<std::size_t>;
    o.prepare_state(p);
    { o.state(i, i) } -> std::same_as<T*>;
    o.restore_updates(i);
};

/// Stands for "no optimizer" in save_checkpoint / load_checkpoint (weights only).
template <class T>
struct no_optimizer {
    std::size_t state_slots() const { return 0; }
    std::string_view method_name() const { return "none"; }
    std::size_t updates() const { return 0; }
    void prepare_state(std::vector<parameter_ref<T>>&) {}
    T* state(std::size_t, std::size_t) { return nullptr; }
    void restore_updates(std::size_t) {}
};

namespace detail {

/// One parameter's local shard as checkpoints see it: a block of a global rows x cols tensor.
template <class T>
struct parameter_block {
    std::string name;
    std::uint64_t global_rows = 0, global_cols = 0;
    shard_range rows, cols;
    T* value = nullptr;
    /// False when a lower part of the group holds the very same block (replicated
    /// parameters): it is written once.
    bool writes = true;
    std::size_t size() const { return rows.size() * cols.size(); }
};

/// Appends one layer's blocks (weight, then bias) and its manifest entry. A block is written
/// by the lowest part of the group that holds it: replicated blocks are written once.
template <class Layer, class T>
void collect_blocks(Layer& l, std::vector<parameter_block<T>>& blocks,
                    std::vector<checkpoint_layer>& layers) {
    const std::size_t in = l.input_features(), out = l.output_features();
    const partition_map map = l.map();
    const bool weight_first = map.first_weight_copy(in, out, l.grid(), l.position());
    const bool bias_first = map.first_bias_copy(out, l.grid(), l.position());
    blocks.push_back({l.name() + ".weight", in, out, l.weight_rows(), l.weight_cols(),
                      l.weight().data(), weight_first});
    if (l.has_bias())
        blocks.push_back({l.name() + ".bias", 1, out, shard_range{0, 1}, l.weight_cols(),
                          l.bias().data(), bias_first});
    layers.push_back({l.name(), std::string(l.partition_name()), std::string(l.activation_name()),
                      in, out, static_cast<std::uint8_t>(l.has_bias() ? 1 : 0)});
}

/// Every parameter's block in the order of net.parameters() (which optimizers index by),
/// and the layer list of the manifest.
template <class Net>
auto describe_network(Net& net) {
    using T = typename Net::value_type;
    std::pair<std::vector<parameter_block<T>>, std::vector<checkpoint_layer>> d;
    visit_layers(net, [&](auto& layer, auto) { collect_blocks(layer, d.first, d.second); });
    const auto& params = net.parameters();
    SHARDNET_ASSERT(params.size() == d.first.size());
    for (std::size_t p = 0; p < params.size(); ++p)
        SHARDNET_ASSERT(params[p].value == d.first[p].value && params[p].size == d.first[p].size());
    return d;
}

}  // namespace detail

/// The CRC-32 of this rank's parameter shards (values, in parameter order): equal on two runs
/// exactly when their local weights are bitwise equal. Not collective.
template <class Net>
std::uint32_t local_weights_checksum(Net& net) {
    crc32 crc;
    for (const auto& p : net.parameters())
        crc.update(p.value, p.size * sizeof(*p.value));
    return crc.value();
}

}  // namespace shardnet
