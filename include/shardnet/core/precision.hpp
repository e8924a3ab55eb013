// The precision a layer computes in: plain fp32, or bf16 mixed precision (fp32 master weights,
// bf16 GEMM operands, fp32 accumulation). One value, so that networks, layers, the optimizer and
// command lines name it the same way.
#pragma once

#include <string>
#include <string_view>

#include "shardnet/core/error.hpp"

namespace shardnet {

/// What a float layer's three GEMMs take as operands.
/// - `fp32`: float everything (the default).
/// - `bf16`: mixed precision as PyTorch autocast and Megatron's bf16 mode. The weights, their
///   gradients, the optimizer state, the bias, the pre-activation and the loss stay fp32; the
///   GEMMs read bfloat16 copies of the weight shard, of the layer input (kept in bf16 for
///   backward) and of the output gradient dZ, and accumulate in fp32 (kernels/gemm_bf16.hpp).
///   Activations between layers and the partial sums partitions all-reduce travel in bf16
///   (partition/partial_sum.hpp): half the bytes of every model-parallel collective.
enum class precision { fp32, bf16 };

constexpr std::string_view to_string(precision p) {
    return p == precision::bf16 ? "bf16" : "fp32";
}

/// The precision called `name` ("fp32" or "bf16").
/// @throws error naming the choices for any other name.
inline precision parse_precision(std::string_view name) {
    if (name == "fp32") return precision::fp32;
    if (name == "bf16") return precision::bf16;
    throw error(std::string("unknown precision '") + std::string(name) +
                "': expected fp32 or bf16");
}

}  // namespace shardnet
