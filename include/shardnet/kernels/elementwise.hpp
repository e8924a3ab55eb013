// Element-wise passes of a layer: the activation forward and the chain rule through it, in
// xsimd batches when the activation policy offers batch functions, scalar otherwise.
#pragma once

#include <concepts>
#include <cstddef>
#include <xsimd/xsimd.hpp>

// GCC 12 reports false -Wmaybe-uninitialized inside avx512fintrin.h (the `__Y = __Y` idiom)
// wherever xsimd's exp and tanh are inlined for AVX-512; the values are fully initialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace shardnet::detail {

template <class Activation, class T, class Arch>
concept batch_activation = requires(xsimd::batch<T, Arch> b) {
    { Activation::forward_batch(b) } -> std::convertible_to<xsimd::batch<T, Arch>>;
    { Activation::derivative_batch(b) } -> std::convertible_to<xsimd::batch<T, Arch>>;
};

/// y[i] = Activation::forward(z[i]); y may alias z.
template <class Activation, class T, class Arch = xsimd::default_arch>
void activation_forward(const T* z, T* y, std::size_t n) {
    std::size_t i = 0;
    if constexpr (batch_activation<Activation, T, Arch>) {
        using batch = xsimd::batch<T, Arch>;
        for (; i + batch::size <= n; i += batch::size)
            Activation::forward_batch(batch::load_unaligned(z + i)).store_unaligned(y + i);
    }
    for (; i < n; ++i)
        y[i] = Activation::forward(z[i]);
}

/// dz[i] = dy[i] * Activation::derivative(z[i]); dz may alias dy.
template <class Activation, class T, class Arch = xsimd::default_arch>
void activation_backward(const T* z, const T* dy, T* dz, std::size_t n) {
    std::size_t i = 0;
    if constexpr (batch_activation<Activation, T, Arch>) {
        using batch = xsimd::batch<T, Arch>;
        for (; i + batch::size <= n; i += batch::size)
            (batch::load_unaligned(dy + i) *
             Activation::derivative_batch(batch::load_unaligned(z + i)))
                .store_unaligned(dz + i);
    }
    for (; i < n; ++i)
        dz[i] = dy[i] * Activation::derivative(z[i]);
}

}  // namespace shardnet::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
