// Element-wise passes of a layer: the activation forward and the chain rule through it.
#pragma once

#include <cstddef>

namespace shardnet::detail {

/// y[i] = Activation::forward(z[i]); y may alias z.
template <class Activation, class T>
void activation_forward(const T* z, T* y, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        y[i] = Activation::forward(z[i]);
}

/// dz[i] = dy[i] * Activation::derivative(z[i]); dz may alias dy.
template <class Activation, class T>
void activation_backward(const T* z, const T* dy, T* dz, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
        dz[i] = dy[i] * Activation::derivative(z[i]);
}

}  // namespace shardnet::detail
