// Activation policies: element-wise functions applied after a dense layer's affine map. A
// user adds one by writing a struct with the members the concept below names.
#pragma once

#include <cmath>
#include <concepts>
#include <string_view>
#include <xsimd/xsimd.hpp>

namespace shardnet {

/// An activation policy for element type T:
/// - `name`: a printable name for plans and messages;
/// - `is_linear`: true only if forward(a + b) == forward(a) + forward(b); only a linear
///   activation may be applied to a partial sum;
/// - `forward(z)`: the activation of a pre-activation value z;
/// - `derivative(z)`: d forward / d z at z (backward multiplies the incoming gradient by it).
/// A policy may also give `forward_batch(b)` and `derivative_batch(b)` for an xsimd batch; the
/// element-wise kernels then use them (see kernels/elementwise.hpp), otherwise the scalar ones.
template <class A, class T>
concept activation_policy = requires(T z) {
    { A::name } -> std::convertible_to<std::string_view>;
    { A::is_linear } -> std::convertible_to<bool>;
    { A::forward(z) } -> std::convertible_to<T>;
    { A::derivative(z) } -> std::convertible_to<T>;
};

namespace activation {

struct identity {
    static constexpr std::string_view name = "identity";
    static constexpr bool is_linear = true;
    template <class T>
    static T forward(T z) {
        return z;
    }
    template <class T>
    static T derivative(T) {
        return T(1);
    }
};

struct relu {
    static constexpr std::string_view name = "relu";
    static constexpr bool is_linear = false;
    template <class T>
    static T forward(T z) {
        return z > T(0) ? z : T(0);
    }
    /// The subgradient at 0 is taken as 0, as PyTorch does.
    template <class T>
    static T derivative(T z) {
        return z > T(0) ? T(1) : T(0);
    }
};

/// GELU in its tanh form (Hendrycks & Gimpel), as GPT-2 and Megatron-LM use it.
struct gelu {
    static constexpr std::string_view name = "gelu";
    static constexpr bool is_linear = false;
    template <class T>
    static T forward(T z) {
        return T(0.5) * z * (T(1) + std::tanh(inner(z)));
    }
    template <class T>
    static T derivative(T z) {
        const T t = std::tanh(inner(z));
        const T d_inner = sqrt_2_over_pi<T>() * (T(1) + T(3) * cubic<T>() * z * z);
        return T(0.5) * (T(1) + t) + T(0.5) * z * (T(1) - t * t) * d_inner;
    }
    template <class B>
    static B forward_batch(B z) {
        using T = typename B::value_type;
        const B inner = B(sqrt_2_over_pi<T>()) * (z + B(cubic<T>()) * z * z * z);
        return B(T(0.5)) * z * (B(T(1)) + xsimd::tanh(inner));
    }
    template <class B>
    static B derivative_batch(B z) {
        using T = typename B::value_type;
        const B t = xsimd::tanh(B(sqrt_2_over_pi<T>()) * (z + B(cubic<T>()) * z * z * z));
        const B d_inner = B(sqrt_2_over_pi<T>()) * (B(T(1)) + B(T(3) * cubic<T>()) * z * z);
        return B(T(0.5)) * (B(T(1)) + t) + B(T(0.5)) * z * (B(T(1)) - t * t) * d_inner;
    }

  private:
    template <class T>
    static constexpr T sqrt_2_over_pi() {
        return T(0.7978845608028654);
    }
    template <class T>
    static constexpr T cubic() {
        return T(0.044715);
    }
    template <class T>
    static T inner(T z) {
        return sqrt_2_over_pi<T>() * (z + cubic<T>() * z * z * z);
    }
};

struct tanh {
    static constexpr std::string_view name = "tanh";
    static constexpr bool is_linear = false;
    template <class T>
    static T forward(T z) {
        return std::tanh(z);
    }
    template <class T>
    static T derivative(T z) {
        const T t = std::tanh(z);
        return T(1) - t * t;
    }
    template <class B>
    static B forward_batch(B z) {
        return xsimd::tanh(z);
    }
    template <class B>
    static B derivative_batch(B z) {
        const B t = xsimd::tanh(z);
        return B(1) - t * t;
    }
};

struct sigmoid {
    static constexpr std::string_view name = "sigmoid";
    static constexpr bool is_linear = false;
    /// Written so that exp never overflows for large |z|.
    template <class T>
    static T forward(T z) {
        if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
        const T e = std::exp(z);
        return e / (T(1) + e);
    }
    template <class T>
    static T derivative(T z) {
        const T s = forward(z);
        return s * (T(1) - s);
    }
    /// exp(-|z|) never overflows; the two halves are blended by sign.
    template <class B>
    static B forward_batch(B z) {
        const B e = xsimd::exp(-xsimd::abs(z));
        const B one(1);
        return xsimd::select(z >= B(0), one / (one + e), e / (one + e));
    }
    template <class B>
    static B derivative_batch(B z) {
        const B s = forward_batch(z);
        return s * (B(1) - s);
    }
};

}  // namespace activation
}  // namespace shardnet
