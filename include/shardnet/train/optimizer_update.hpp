// The optimizers' update as one vectorized pass over a parameter shard: it reads each gradient,
// weight and state element once, writes weight and state once, and notes on the way whether
// every gradient it read was finite, so that no separate pass reads the gradients again to
// check them (train/optimizer.hpp).
#pragma once

#include <cstddef>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "shardnet/core/bfloat16.hpp"
#include "shardnet/kernels/batch_pass.hpp"

// GCC 12 reports a false -Wmaybe-uninitialized inside avx512fintrin.h (the `__Y = __Y` idiom of
// _mm512_undefined_pd) wherever xsimd's sqrt is inlined for AVX-512; the values are initialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace shardnet::detail {

template <class T>
xsimd::batch<T> load(const T* p) noexcept {
    return xsimd::batch<T>::load_unaligned(p);
}

/// Stores the updated weights w (count of them real) at `at` and, when `low` is not null (the
/// parameter has a bf16 copy, core/precision.hpp), their bf16 rounding at low[first...]: the
/// copy is refreshed in the update's own pass, from values still in registers and L1.
template <class T>
void store_weights(const xsimd::batch<T>& w, T* at, bfloat16* low, std::size_t first,
                   std::size_t count) noexcept {
    w.store_unaligned(at);
    if constexpr (std::is_same_v<T, float>)
        if (low != nullptr) to_bfloat16(at, low + first, count);
}

/// The coefficients of one SGD update, in T.
template <class T>
struct sgd_coefficients {
    T rate;      ///< learning rate of this update
    T decay;     ///< L2 weight decay, added to the gradient
    T scale;     ///< gradient scale from clipping (1: none)
    T momentum;  ///< used only with a momentum buffer
    bool nesterov;
    bool first;  ///< the first update: the buffer starts as the gradient (as PyTorch's)
};

/// One SGD update of n elements: g = scale·grad + decay·w; with a momentum buffer,
/// buf = momentum·buf + g (buf = g the first time) and g = buf, or g + momentum·buf with
/// Nesterov; then w -= rate·g. `buffer` is null without momentum. Gradients are left as given.
/// @return whether every gradient read was finite.
/// With `low` not null, also low[i] = to_bfloat16(new weight[i]) in the same pass (float only).
template <class T>
bool sgd_update(T* weight, const T* grad, T* buffer, std::size_t n, const sgd_coefficients<T>& k,
                bfloat16* low = nullptr) {
    using batch = xsimd::batch<T>;
    finite_watch<T> watch;
    const batch rate(k.rate), decay(k.decay), scale(k.scale), mu(k.momentum);
    auto gradient = [&](T* const* at) {
        const batch g = load(at[1]);
        watch.see(g);
        return xsimd::fma(decay, load(at[0]), scale * g);
    };
    if (buffer == nullptr) {
        T* const arrays[2] = {weight, const_cast<T*>(grad)};  // gradients are only read
        for_each_batch(n, arrays, 0b01, [&](T* const* at, std::size_t first, std::size_t count) {
            store_weights(xsimd::fnma(rate, gradient(at), load(at[0])), at[0], low, first, count);
        });
    } else {
        T* const arrays[3] = {weight, const_cast<T*>(grad), buffer};
        for_each_batch(n, arrays, 0b101, [&](T* const* at, std::size_t first, std::size_t count) {
            const batch g = gradient(at);
            const batch buf = k.first ? g : xsimd::fma(mu, load(at[2]), g);
            buf.store_unaligned(at[2]);
            const batch step = k.nesterov ? xsimd::fma(mu, buf, g) : buf;
            store_weights(xsimd::fnma(rate, step, load(at[0])), at[0], low, first, count);
        });
    }
    return watch.all_finite();
}

/// The coefficients of one Adam or AdamW update, in T.
template <class T>
struct adam_coefficients {
    T rate;          ///< learning rate of this update
    T decay;         ///< weight decay: added to the gradient (Adam) or to w (AdamW)
    bool decoupled;  ///< AdamW: w -= rate·decay·w before the Adam step
    T scale;         ///< gradient scale from clipping (1: none)
    T beta1, beta2, eps;
    T correction1;  ///< 1 / (1 - beta1^t)
    T correction2;  ///< 1 / (1 - beta2^t)
};

/// One Adam (AdamW) update of n elements: g = scale·grad (+ decay·w for Adam; AdamW first
/// shrinks w by rate·decay·w), m = beta1·m + (1 - beta1)·g, v = beta2·v + (1 - beta2)·g²,
/// w -= rate·(m·correction1) / (sqrt(v·correction2) + eps). Gradients are left as given.
/// With `low` not null, also low[i] = to_bfloat16(new weight[i]) in the same pass (float only).
/// @return whether every gradient read was finite.
template <class T>
bool adam_update(T* weight, const T* grad, T* first_moment, T* second_moment, std::size_t n,
                 const adam_coefficients<T>& k, bfloat16* low = nullptr) {
    using batch = xsimd::batch<T>;
    finite_watch<T> watch;
    const batch rate(k.rate), decay(k.decay), shrink(k.rate * k.decay), scale(k.scale);
    const batch b1(k.beta1), b2(k.beta2), one_minus_b1(T(1) - k.beta1),
        one_minus_b2(T(1) - k.beta2), c1(k.correction1), c2(k.correction2), eps(k.eps);
    T* const arrays[4] = {weight, const_cast<T*>(grad), first_moment, second_moment};
    for_each_batch(n, arrays, 0b1101, [&](T* const* at, std::size_t first, std::size_t count) {
        const batch raw = load(at[1]);
        watch.see(raw);
        batch w = load(at[0]);
        batch g = scale * raw;
        if (k.decoupled)
            w = xsimd::fnma(shrink, w, w);
        else
            g = xsimd::fma(decay, w, g);
        const batch m = xsimd::fma(b1, load(at[2]), one_minus_b1 * g);
        const batch v = xsimd::fma(b2, load(at[3]), one_minus_b2 * (g * g));
        m.store_unaligned(at[2]);
        v.store_unaligned(at[3]);
        w = xsimd::fnma(rate, (m * c1) / (xsimd::sqrt(v * c2) + eps), w);
        store_weights(w, at[0], low, first, count);
    });
    return watch.all_finite();
}

/// Whether all n gradients are finite, for a caller that must know before any update.
template <class T>
bool all_finite(const T* grad, std::size_t n) {
    finite_watch<T> watch;
    T* const arrays[1] = {const_cast<T*>(grad)};  // never written: `written` is 0
    for_each_batch(n, arrays, 0u,
                   [&](T* const* at, std::size_t, std::size_t) { watch.see(load(at[0])); });
    return watch.all_finite();
}

}  // namespace shardnet::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
