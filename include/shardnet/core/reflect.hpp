// The fields of a plain options struct, visited in declaration order without listing them:
// settings that ranks must share, or that identify a run, are derived from the struct itself,
// so a field added later cannot be left out of the comparison by mistake.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace shardnet::detail {

/// Converts to any field type: counting how many of these an aggregate accepts in braces
/// counts its fields.
struct any_field {
    template <class T>
    operator T() const;  // never defined: used in unevaluated contexts only
};

template <class T, std::size_t... I>
constexpr bool brace_initializable(std::index_sequence<I...>) {
    return requires {
        T{(static_cast<void>(I), any_field{})...};
    };
}

/// The number of fields of the aggregate T (no base classes, no arrays as fields).
template <class T, std::size_t N = 0>
constexpr std::size_t field_count() {
    static_assert(std::is_aggregate_v<T>, "field_count: T must be an aggregate");
    if constexpr (brace_initializable<T>(std::make_index_sequence<N + 1>{}))
        return field_count<T, N + 1>();
    else
        return N;
}

inline constexpr std::size_t max_reflected_fields = 40;

/// Calls f(field) for every field of the aggregate `object`, in declaration order.
template <class T, class F>
void for_each_field(T& object, F&& f) {
    constexpr std::size_t n = field_count<std::remove_const_t<T>>();
    static_assert(n >= 1 && n <= max_reflected_fields,
                  "for_each_field: supports aggregates of 1 to 40 fields; extend the list below");
    if constexpr (n == 1) {
        auto& [f0] = object;
        (f(f0));
    } else if constexpr (n == 2) {
        auto& [f0, f1] = object;
        (f(f0), f(f1));
    } else if constexpr (n == 3) {
        auto& [f0, f1, f2] = object;
        (f(f0), f(f1), f(f2));
    } else if constexpr (n == 4) {
        auto& [f0, f1, f2, f3] = object;
        (f(f0), f(f1), f(f2), f(f3));
    } else if constexpr (n == 5) {
        auto& [f0, f1, f2, f3, f4] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4));
    } else if constexpr (n == 6) {
        auto& [f0, f1, f2, f3, f4, f5] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5));
    } else if constexpr (n == 7) {
        auto& [f0, f1, f2, f3, f4, f5, f6] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6));
    } else if constexpr (n == 8) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7));
    } else if constexpr (n == 9) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8));
    } else if constexpr (n == 10) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9));
    } else if constexpr (n == 11) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10));
    } else if constexpr (n == 12) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11));
    } else if constexpr (n == 13) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12));
    } else if constexpr (n == 14) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13));
    } else if constexpr (n == 15) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14));
    } else if constexpr (n == 16) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15));
    } else if constexpr (n == 17) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16));
    } else if constexpr (n == 18) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17] =
            object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17));
    } else if constexpr (n == 19) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17,
               f18] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18));
    } else if constexpr (n == 20) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19));
    } else if constexpr (n == 21) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20));
    } else if constexpr (n == 22) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21));
    } else if constexpr (n == 23) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22));
    } else if constexpr (n == 24) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23));
    } else if constexpr (n == 25) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24));
    } else if constexpr (n == 26) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25));
    } else if constexpr (n == 27) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26));
    } else if constexpr (n == 28) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27));
    } else if constexpr (n == 29) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28));
    } else if constexpr (n == 30) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29));
    } else if constexpr (n == 31) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30));
    } else if constexpr (n == 32) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31));
    } else if constexpr (n == 33) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32));
    } else if constexpr (n == 34) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32), f(f33));
    } else if constexpr (n == 35) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34] =
            object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32), f(f33),
         f(f34));
    } else if constexpr (n == 36) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34,
               f35] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32), f(f33),
         f(f34), f(f35));
    } else if constexpr (n == 37) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34, f35,
               f36] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32), f(f33),
         f(f34), f(f35), f(f36));
    } else if constexpr (n == 38) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34, f35,
               f36, f37] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32), f(f33),
         f(f34), f(f35), f(f36), f(f37));
    } else if constexpr (n == 39) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34, f35,
               f36, f37, f38] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32), f(f33),
         f(f34), f(f35), f(f36), f(f37), f(f38));
    } else if constexpr (n == 40) {
        auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
               f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34, f35,
               f36, f37, f38, f39] = object;
        (f(f0), f(f1), f(f2), f(f3), f(f4), f(f5), f(f6), f(f7), f(f8), f(f9), f(f10), f(f11),
         f(f12), f(f13), f(f14), f(f15), f(f16), f(f17), f(f18), f(f19), f(f20), f(f21), f(f22),
         f(f23), f(f24), f(f25), f(f26), f(f27), f(f28), f(f29), f(f30), f(f31), f(f32), f(f33),
         f(f34), f(f35), f(f36), f(f37), f(f38), f(f39));
    }
}

}  // namespace shardnet::detail
