// Settings as named values: what ranks compare before they act (so that ranks started
// differently fail together, naming the option) and what a checkpoint records of the run
// that wrote it (so that a resume can tell another run's checkpoint and say how it differs).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/printable.hpp"
#include "shardnet/core/reflect.hpp"

namespace shardnet {

/// The shortest decimal text that reads back as exactly `value` ("0.1", "1e-05", "0.984"):
/// numbers at full precision without the noise of 17 fixed digits.
inline std::string shortest_decimal(double value) {
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    return std::string(buffer, result.ptr);
}

/// An ordered list of key = value pairs, both plain text. Keys are unique; order is kept.
class settings {
  public:
    using entry = std::pair<std::string, std::string>;

    /// Adds or replaces `key`. Newlines and '=' in keys, and newlines in values, are escaped
    /// so that text() stays one line per entry.
    void set(std::string_view key, std::string_view value) {
        std::string k = escaped(key, true), v = escaped(value, false);
        for (auto& e : entries_)
            if (e.first == k) {
                e.second = std::move(v);
                return;
            }
        entries_.emplace_back(std::move(k), std::move(v));
    }

    /// Adds every entry of `other`, each key prefixed with `prefix`.
    void merge(const settings& other, std::string_view prefix = {}) {
        for (const auto& [k, v] : other.entries_)
            set(std::string(prefix) + k, v);
    }

    /// The value of `key`, if present.
    std::optional<std::string> get(std::string_view key) const {
        for (const auto& e : entries_)
            if (e.first == key) return e.second;
        return {};
    }

    const std::vector<entry>& entries() const { return entries_; }
    bool empty() const { return entries_.empty(); }

    /// "key=value\n" per entry, in order: the form checkpoints store and ranks exchange.
    std::string text() const {
        std::string out;
        for (const auto& [k, v] : entries_)
            out += k + "=" + v + "\n";
        return out;
    }

    /// Reads text() back. Lines without '=' are kept as keys with an empty value.
    static settings parse(std::string_view text) {
        settings s;
        while (!text.empty()) {
            const auto end = text.find('\n');
            const std::string_view line = text.substr(0, end);
            const auto eq = line.find('=');
            if (!line.empty())
                s.entries_.emplace_back(std::string(line.substr(0, eq)),
                                        eq == line.npos ? "" : std::string(line.substr(eq + 1)));
            text = end == text.npos ? std::string_view() : text.substr(end + 1);
        }
        return s;
    }

    friend bool operator==(const settings&, const settings&) = default;

  private:
    static std::string escaped(std::string_view text, bool key) {
        std::string out;
        for (char c : text) {
            if (c == '\n')
                out += "\\n";
            else if (key && c == '=')
                out += "\\=";
            else
                out += c;
        }
        return out;
    }

    std::vector<entry> entries_;
};

/// Up to `most` differences between two settings, for a message: "lr is 0.01 in <a_name>,
/// 0.001 in <b_name>; seed ..." (a key missing on one side reads "unset"). Empty if equal.
inline std::string setting_differences(const settings& a, std::string_view a_name,
                                       const settings& b, std::string_view b_name,
                                       std::size_t most = 4) {
    std::vector<std::string> found;
    std::size_t count = 0;
    auto note = [&](const std::string& key, const std::optional<std::string>& va,
                    const std::optional<std::string>& vb) {
        if (va == vb) return;
        auto text = [](const std::optional<std::string>& v) {
            // Values may come from a damaged or hostile checkpoint: quote them printable.
            return !v           ? std::string("unset")
                   : v->empty() ? std::string("empty")
                                : detail::printable(*v, 100);
        };
        if (count++ < most)
            found.push_back(
                detail::concat(key, " is ", text(va), " ", a_name, ", ", text(vb), " ", b_name));
    };
    for (const auto& [key, value] : a.entries())
        note(key, value, b.get(key));
    for (const auto& [key, value] : b.entries())
        if (!a.get(key)) note(key, std::nullopt, value);
    std::string out;
    for (const auto& f : found) {
        if (!out.empty()) out += "; ";
        out += f;
    }
    if (count > most) out += detail::concat(" (and ", count - most, " more)");
    return out;
}

/// How one field of an options struct takes part in the checks.
enum class setting_role {
    identifies_run,  ///< same on every rank, and recorded in checkpoints: a resume must match
    same_on_ranks,   ///< same on every rank (it shapes the collective schedule), not recorded
    per_rank,        ///< may differ between ranks (streams, callbacks); never compared
};

/// One field of an options struct: its name in messages and its role. An options struct
/// pairs with an array of these, one per field in declaration order; describe_fields checks
/// the count at compile time, so a field added to the struct but not to its list fails to
/// compile instead of going unchecked.
struct setting_field {
    std::string_view name;
    setting_role role;
};

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

/// The text of one setting's value. Nested aggregates (a schedule inside optimizer options)
/// read as "{a,b,c}"; types with no text (pointers, callbacks) as "set" or "unset".
template <class V>
std::string setting_value(const V& v) {
    if constexpr (std::is_same_v<V, bool>)
        return v ? "true" : "false";
    else if constexpr (std::is_enum_v<V>)
        return std::to_string(static_cast<long long>(v));
    else if constexpr (std::is_floating_point_v<V>)
        return shortest_decimal(static_cast<double>(v));
    else if constexpr (std::is_integral_v<V>)
        return std::to_string(v);
    else if constexpr (std::is_convertible_v<const V&, std::string_view>)
        return std::string(std::string_view(v));
    else if constexpr (is_optional<V>::value)
        return v ? setting_value(*v) : "none";
    else if constexpr (std::is_same_v<V, settings>)
        return v.text();
    else if constexpr (std::ranges::range<V>) {
        std::string out;
        for (const auto& item : v) {
            if (!out.empty()) out += ',';
            out += setting_value(item);
        }
        return out;
    } else if constexpr (std::is_aggregate_v<V> && !std::is_array_v<V>) {
        std::string out = "{";
        for_each_field(v, [&](const auto& field) {
            if (out.size() > 1) out += ',';
            out += setting_value(field);
        });
        return out + "}";
    } else if constexpr (std::is_constructible_v<bool, const V&>)
        return static_cast<bool>(v) ? "set" : "unset";
    else
        static_assert(sizeof(V) == 0, "setting_value: no text form for this field type");
}

}  // namespace detail

/// The fields of `options` whose role is `role`, as settings named prefix + field name; asking
/// for same_on_ranks also gives the identifies_run fields (a run's identity must agree too).
/// A `settings` field is merged in entry by entry.
/// @tparam N must equal the number of fields of Options (checked at compile time).
template <class Options, std::size_t N>
settings describe_fields(const Options& options, const setting_field (&fields)[N],
                         setting_role role, std::string_view prefix = {}) {
    static_assert(detail::field_count<Options>() == N,
                  "describe_fields: the field list must name every field of the options struct, "
                  "in order (a new field needs its entry and role)");
    settings out;
    std::size_t i = 0;
    detail::for_each_field(options, [&](const auto& value) {
        const setting_field& f = fields[i++];
        const bool wanted = f.role == role || (role == setting_role::same_on_ranks &&
                                               f.role == setting_role::identifies_run);
        if (!wanted) return;
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(value)>, settings>)
            out.merge(value, prefix);
        else
            out.set(std::string(prefix) + std::string(f.name), detail::setting_value(value));
    });
    return out;
}

}  // namespace shardnet
