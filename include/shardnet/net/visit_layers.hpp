// One loop over a network's layers, first to last, in place of hand-written recursions over
// layer<I>(): checkpoints, plans and tests treat every layer alike through it.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace shardnet {

/// Calls `f(layer, index)` for every layer of `net`, first to last. `index` is a
/// std::integral_constant<std::size_t, I>: it converts to std::size_t and is also usable where
/// a constant expression is needed. Not collective (f may be).
/// @tparam Net a network with `depth` and `layer<I>()` (sequential<...>).
template <class Net, class F>
void visit_layers(Net& net, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (f(net.template layer<I>(), std::integral_constant<std::size_t, I>{}), ...);
    }
    (std::make_index_sequence<std::remove_cvref_t<Net>::depth>{});
}

}  // namespace shardnet
