// One loop over a network's layers, first to last, in place of hand-written recursions over
// layer<I>(): checkpoints, plans and tests treat every layer alike through it.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace shardnet {

/// Calls `f(layer, index)` for every layer of `net`, first to last. For sequential<...>,
/// `index` is a std::integral_constant<std::size_t, I>: it converts to std::size_t and is also
/// usable where a constant expression is needed, and `layer` is the dense<...> itself. For
/// network<...>, `index` is a std::size_t and `layer` an any_layer. Not collective (f may be).
/// @tparam Net a network with `depth` and `layer<I>()` (sequential<...>) or with
///         `layer_count()` and `layer(i)` (network<...>).
template <class Net, class F>
requires requires {
    std::remove_cvref_t<Net>::depth;
}
void visit_layers(Net& net, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (f(net.template layer<I>(), std::integral_constant<std::size_t, I>{}), ...);
    }
    (std::make_index_sequence<std::remove_cvref_t<Net>::depth>{});
}

template <class Net, class F>
requires requires(Net& net) {
    net.layer_count();
}
void visit_layers(Net& net, F&& f) {
    for (std::size_t i = 0; i < net.layer_count(); ++i)
        f(net.layer(i), i);
}

}  // namespace shardnet
