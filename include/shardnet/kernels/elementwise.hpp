// Element-wise passes of a layer: the activation forward and the chain rule through it, in
// xsimd batches when the activation policy offers batch functions, scalar otherwise.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <xsimd/xsimd.hpp>

#include "shardnet/core/bfloat16.hpp"

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
/// With batch functions, the ragged end goes through them too, from a zero-padded copy: every
/// value takes the same instructions wherever it sits, so a column-split layer's sharded output
/// (whose rows are shorter than one rank's) is bitwise what one rank computes (a scalar tail
/// ran std::tanh or std::erf there, a last bit or two off xsimd's).
template <class Activation, class T, class Arch = xsimd::default_arch>
void activation_forward(const T* z, T* y, std::size_t n) {
    std::size_t i = 0;
    if constexpr (batch_activation<Activation, T, Arch>) {
        using batch = xsimd::batch<T, Arch>;
        for (; i + batch::size <= n; i += batch::size)
            Activation::forward_batch(batch::load_unaligned(z + i)).store_unaligned(y + i);
        if (i == n) return;
        alignas(64) T tail[batch::size] = {};
        std::copy(z + i, z + n, tail);
        Activation::forward_batch(batch::load_aligned(tail)).store_aligned(tail);
        std::copy_n(tail, n - i, y + i);
    } else {
        for (; i < n; ++i)
            y[i] = Activation::forward(z[i]);
    }
}

/// dz[i] = dy[i] * Activation::derivative(z[i]); dz may alias dy. The ragged end as in
/// activation_forward.
template <class Activation, class T, class Arch = xsimd::default_arch>
void activation_backward(const T* z, const T* dy, T* dz, std::size_t n) {
    std::size_t i = 0;
    if constexpr (batch_activation<Activation, T, Arch>) {
        using batch = xsimd::batch<T, Arch>;
        for (; i + batch::size <= n; i += batch::size)
            (batch::load_unaligned(dy + i) *
             Activation::derivative_batch(batch::load_unaligned(z + i)))
                .store_unaligned(dz + i);
        if (i == n) return;
        alignas(64) T z_tail[batch::size] = {}, dy_tail[batch::size] = {};
        std::copy(z + i, z + n, z_tail);
        std::copy(dy + i, dy + n, dy_tail);
        (batch::load_aligned(dy_tail) * Activation::derivative_batch(batch::load_aligned(z_tail)))
            .store_aligned(dy_tail);
        std::copy_n(dy_tail, n - i, dz + i);
    } else {
        for (; i < n; ++i)
            dz[i] = dy[i] * Activation::derivative(z[i]);
    }
}

/// Chunk of the fused passes below: small enough that the fp32 values just written are still in
/// L1 when they are rounded to bf16, large enough to keep the loops long.
inline constexpr std::size_t fused_chunk = 512;

/// activation_forward, and y_low[i] = to_bfloat16(y[i]) in the same pass (chunk by chunk): the
/// forward of a bf16 mixed-precision layer, whose fp32 output goes to the loss (last layer)
/// and whose bf16 copy to the next layer's GEMM. y may alias z.
template <class Activation, class T, class Arch = xsimd::default_arch>
void activation_forward_bf16(const T* z, T* y, bfloat16* y_low, std::size_t n) {
    for (std::size_t i = 0; i < n; i += fused_chunk) {
        const std::size_t m = std::min(fused_chunk, n - i);
        activation_forward<Activation, T, Arch>(z + i, y + i, m);
        to_bfloat16(y + i, y_low + i, m);
    }
}

/// activation_backward, and dz_low[i] = to_bfloat16(dz[i]) in the same pass (chunk by chunk):
/// dz in fp32 for the bias gradient, in bf16 for the dX and dW GEMMs. dz may alias dy.
template <class Activation, class T, class Arch = xsimd::default_arch>
void activation_backward_bf16(const T* z, const T* dy, T* dz, bfloat16* dz_low, std::size_t n) {
    for (std::size_t i = 0; i < n; i += fused_chunk) {
        const std::size_t m = std::min(fused_chunk, n - i);
        activation_backward<Activation, T, Arch>(z + i, dy + i, dz + i, m);
        to_bfloat16(dz + i, dz_low + i, m);
    }
}

}  // namespace shardnet::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
