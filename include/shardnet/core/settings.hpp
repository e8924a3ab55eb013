// Settings as named values: what ranks compare before they act (so that ranks started
// differently fail together, naming the option) and what a checkpoint records of the run
// that wrote it (so that a resume can tell another run's checkpoint and say how it differs).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
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

    /// Adds or replaces `key`. Any text is allowed in both; text() escapes what it must.
    void set(std::string_view key, std::string_view value) {
        for (auto& e : entries_)
            if (e.first == key) {
                e.second = std::string(value);
                return;
            }
        entries_.emplace_back(std::string(key), std::string(value));
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

    /// The entries in the order they were first set.
    const std::vector<entry>& entries() const { return entries_; }
    /// Whether there is no entry at all.
    bool empty() const { return entries_.empty(); }

    /// "key=value\n" per entry, in order: the form checkpoints store and ranks exchange. A
    /// newline reads "\\n", a backslash "\\\\", and an '=' in a key "\\=".
    std::string text() const {
        std::string out;
        for (const auto& [k, v] : entries_) {
            out += escaped(k, true);
            out += '=';
            out += escaped(v, false);
            out += '\n';
        }
        return out;
    }

    /// Reads text() back: parse(s.text()) == s. A line without '=' is a key with an empty
    /// value.
    static settings parse(std::string_view text) {
        settings s;
        while (!text.empty()) {
            const auto end = text.find('\n');
            const std::string_view line = text.substr(0, end);
            if (!line.empty()) {
                std::size_t eq = 0;
                while (eq < line.size() && line[eq] != '=')
                    eq += line[eq] == '\\' ? 2 : 1;  // an escaped '=' belongs to the key
                s.entries_.emplace_back(
                    unescaped(line.substr(0, std::min(eq, line.size()))),
                    eq < line.size() ? unescaped(line.substr(eq + 1)) : std::string());
            }
            text = end == text.npos ? std::string_view() : text.substr(end + 1);
        }
        return s;
    }

    friend bool operator==(const settings&, const settings&) = default;

  private:
    // Backslash escapes keep text() one line per entry and make it parse back exactly.
    static std::string escaped(std::string_view text, bool key) {
        std::string out;
        for (char c : text) {
            if (c == '\n')
                out += "\\n";
            else if (c == '\\' || (key && c == '='))
                out += {'\\', c};
            else
                out += c;
        }
        return out;
    }
    static std::string unescaped(std::string_view text) {
        std::string out;
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (text[i] != '\\' || i + 1 == text.size()) {
                out += text[i];
                continue;
            }
            const char next = text[++i];
            out += next == 'n' ? '\n' : next;
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
    std::string_view name;  ///< how messages name the field ("--lr", "batch")
    setting_role role;      ///< its part in the checks
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
    else if constexpr (std::is_same_v<V, std::filesystem::path>)
        return v.string();
    else if constexpr (std::is_pointer_v<V> && std::is_convertible_v<V, const char*>)
        return v ? std::string(v) : "unset";
    else if constexpr (std::is_convertible_v<const V&, std::string_view>)
        return std::string(std::string_view(v));
    else if constexpr (is_optional<V>::value)
        return v ? setting_value(*v) : "none";
    else if constexpr (std::is_same_v<V, settings>)
        return v.text();
    else if constexpr (std::ranges::range<V>) {
        // Text items are quoted, so that {"a,b"} and {"a", "b"} read differently.
        using item_type = std::ranges::range_value_t<V>;
        constexpr bool text = std::is_convertible_v<const item_type&, std::string_view>;
        std::string out;
        for (const auto& item : v) {
            if (!out.empty()) out += ',';
            if constexpr (text) {
                out += '"';
                for (char c : std::string_view(item))
                    out += c == '"' || c == '\\' ? std::string{'\\', c} : std::string(1, c);
                out += '"';
            } else {
                out += setting_value(item);
            }
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
