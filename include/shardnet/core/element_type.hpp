// The element types of weights and activations, and what shardnet knows of each: one trait, so
// that a new type (bf16) is added in one place and nothing decides by sizeof.
#pragma once

#include <concepts>
#include <string_view>

namespace shardnet {

/// Specialized for every element type shardnet computes in; the primary template is left
/// undefined, so that any other type is refused where it is first used.
/// - `name`: how checkpoints and messages call it;
/// - `accumulator`: the type its products and sums accumulate in.
template <class T>
struct element_traits;

template <>
struct element_traits<float> {
    static constexpr std::string_view name = "float32";
    using accumulator = float;
};

template <>
struct element_traits<double> {
    static constexpr std::string_view name = "float64";
    using accumulator = double;
};

/// A type shardnet can store values in: one with element_traits. float, double, and the
/// bfloat16 of core/bfloat16.hpp (specialized there, next to the type).
template <class T>
concept storage_type = requires {
    { element_traits<T>::name } -> std::convertible_to<std::string_view>;
    typename element_traits<T>::accumulator;
};

/// A storage type that is also its own accumulator: the types layers, shardnet::gemm and
/// checkpoints compute in and accept, float and double. A narrower storage type (bfloat16,
/// accumulating in float) is not one: it has its own kernels (kernels/gemm_bf16.hpp), and
/// everything written for element types keeps refusing it where it is first used.
template <class T>
concept element_type = storage_type<T> && std::same_as<typename element_traits<T>::accumulator, T>;

}  // namespace shardnet
