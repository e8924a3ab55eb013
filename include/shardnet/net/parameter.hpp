// What optimizers see of a network: every local shard of a parameter with its gradient, and
// whether this rank holds the first copy of its elements in the model-parallel group (so that
// global quantities such as the gradient norm count each global element exactly once).
#pragma once

#include <cstddef>
#include <string>

#include "shardnet/core/bfloat16.hpp"

namespace shardnet {

/// Where a gradient stands in a step. Every parameter is replicated across data-parallel
/// replicas, so its gradient must be summed over the data-parallel group before an update.
enum class gradient_state {
    none,     ///< no backward since the last update
    local,    ///< backward ran; not yet reduced over the data-parallel group
    reduced,  ///< summed over the data-parallel group: ready for an optimizer
};

/// One local shard of a parameter.
template <class T>
struct parameter_ref {
    std::string name;  ///< "fc1.weight", for messages and checkpoints
    T* value;
    T* grad;
    std::size_t size;  ///< elements of the local shard (may be 0)
    /// True when no lower rank of the model-parallel group holds the same block (see
    /// partition_map): sums over the group count the block on this rank only. False on the
    /// other copies of a row_split bias, a replicated layer or a block2d bias.
    bool first_copy;
    /// True when the gradient is a partial sum over the model-parallel group and must be
    /// summed there too (from the partition's reduced_over type); false for the built-ins.
    bool reduce_over_model_group = false;
    /// The bf16 copy of `value` a bf16 mixed-precision layer multiplies with (size elements),
    /// or null. An optimizer that writes `value` rounds it into this copy in the same pass.
    bfloat16* low_precision_copy = nullptr;
};

}  // namespace shardnet
