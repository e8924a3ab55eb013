// Loads a classification data set from CSV text: one sample per line, the label first, then
// the features. Every malformed input is reported with the file, line and column, what was
// expected and what was found, because "bad CSV" is the most common first-run failure.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/printable.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/train/dataset.hpp"

namespace shardnet {

/// Whether the first line of a CSV file names the columns.
enum class csv_header {
    auto_detect,  ///< a header iff the first field of the first line is not a number
    present,      ///< the first line is a header (its content is ignored, its width is not)
    absent,       ///< every line is a sample
};

/// How load_csv reads its input.
struct csv_options {
    /// Field separator. Fields are not quoted: this is a numeric format.
    char delimiter = ',';
    csv_header header = csv_header::auto_detect;
    /// 0: num_classes is the largest label + 1. Otherwise the data set's num_classes, and a
    /// label >= it is an error (so a test file lacking the top class still agrees with train).
    std::size_t num_classes = 0;
    /// Bytes the load may hold at most (labels and features, the copy at the end included);
    /// 0: as many as this process can still allocate. Checked as the samples grow.
    std::uint64_t memory_limit = 0;
};

namespace detail {

inline std::string_view trim_csv_field(std::string_view field) {
    constexpr std::string_view space = " \t\r";  // \r: files written on Windows
    const auto first = field.find_first_not_of(space);
    if (first == std::string_view::npos) return {};
    const auto last = field.find_last_not_of(space);
    return field.substr(first, last - first + 1);
}

/// Splits on the delimiter and trims each field. Reuses `fields` so a large file does not
/// allocate per line.
inline void split_csv_line(std::string_view line, char delimiter,
                           std::vector<std::string_view>& fields) {
    fields.clear();
    for (;;) {
        const auto end = line.find(delimiter);
        fields.push_back(trim_csv_field(line.substr(0, end)));
        if (end == std::string_view::npos) return;
        line.remove_prefix(end + 1);
    }
}

/// The whole field as a number (strtod syntax plus an optional leading '+', which
/// from_chars refuses), or nothing. "nan" and "inf" parse; the caller rejects them.
inline std::optional<double> parse_csv_number(std::string_view field) {
    if (field.size() > 1 && field.front() == '+' && field[1] != '-') field.remove_prefix(1);
    double value = 0;
    const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (ec != std::errc() || end != field.data() + field.size() || field.empty())
        return std::nullopt;
    return value;
}

/// Without a memory_limit, growths of the values below this many bytes are not checked against
/// the memory left (each check reads /proc).
inline constexpr double csv_checked_growth_bytes = 4 << 20;

/// What read_csv's buffers hold now.
template <class T>
double held_bytes(const std::vector<T>& values, const std::vector<std::uint32_t>& labels) {
    return static_cast<double>(values.capacity() * sizeof(T) +
                               labels.capacity() * sizeof(std::uint32_t));
}

/// Reads CSV samples; `name` only labels messages. Fields quoted in a message go through
/// printable(): the file may be binary, and its bytes must not reach the terminal raw.
template <class T>
dataset<T> read_csv(std::istream& in, std::string_view name, const csv_options& options) {
    const auto fail_at = [&](std::size_t line, auto&&... parts) -> error {
        return error(concat(name, ": line ", line, ": ", parts...));
    };
    const auto fail_at_field = [&](std::size_t line, std::size_t column, auto&&... parts) {
        return error(concat(name, ": line ", line, ", column ", column, ": ", parts...));
    };

    std::vector<T> values;
    std::vector<std::uint32_t> labels;
    std::vector<std::string_view> fields;
    std::string line;
    std::size_t line_number = 0;
    std::size_t columns = 0;           // fixed by the header or the first sample
    std::size_t header_line = 0;       // 0: no header
    std::size_t first_blank_line = 0;  // 0: none yet; a blank line is allowed only at the end
    std::uint32_t largest_label = 0;

    while (std::getline(in, line)) {
        ++line_number;
        if (line_number == 1) {
            // Excel and Notepad start UTF-8 files with a byte-order mark; left in place it
            // makes the first label unparsable, so auto_detect took the first sample for a
            // header and dropped it without a word.
            constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";
            if (std::string_view(line).substr(0, 3) == utf8_bom) line.erase(0, 3);
            const auto start = std::string_view(line).substr(0, 2);
            if (start == "\xFF\xFE" || start == "\xFE\xFF")
                throw fail_at(line_number,
                              "expected UTF-8 or ASCII text, got a UTF-16 byte-order mark (save "
                              "the file as UTF-8)");
        }
        if (trim_csv_field(line).empty()) {
            if (first_blank_line == 0) first_blank_line = line_number;
            continue;
        }
        if (first_blank_line != 0)
            throw fail_at(first_blank_line,
                          "expected a sample or the end of the file, got a blank line followed by "
                          "more data on line ",
                          line_number);
        split_csv_line(line, options.delimiter, fields);

        const bool first_line = line_number == 1;
        if (first_line &&
            (options.header == csv_header::present ||
             (options.header == csv_header::auto_detect && !parse_csv_number(fields.front())))) {
            header_line = line_number;
            columns = fields.size();
            if (columns < 2)
                throw fail_at(line_number,
                              "expected at least 2 columns in the header (label + features), got ",
                              columns, " (is the delimiter '", options.delimiter, "'?)");
            continue;
        }
        if (columns == 0) {
            columns = fields.size();
            if (columns < 2)
                throw fail_at(line_number, "expected at least 2 columns (label + features), got ",
                              columns, " (is the delimiter '", options.delimiter, "'?)");
        }
        if (fields.size() != columns) {
            const auto origin = header_line != 0
                                    ? concat(", as in the header on line ", header_line)
                                    : std::string();
            throw fail_at(line_number, "expected ", columns, " columns (label + ", columns - 1,
                          " features", origin, "), got ", fields.size());
        }

        // The label: a non-negative integer ("3.0" is accepted: spreadsheets write those).
        const auto label = parse_csv_number(fields.front());
        if (!label || !(*label >= 0) || std::floor(*label) != *label ||
            *label > static_cast<double>(std::numeric_limits<std::uint32_t>::max()))
            throw fail_at_field(line_number, 1, "expected a non-negative integer label, got '",
                                printable(fields.front()), "'");
        const auto label_value = static_cast<std::uint32_t>(*label);
        if (options.num_classes != 0 && label_value >= options.num_classes)
            throw fail_at_field(line_number, 1, "expected a label in [0, ", options.num_classes,
                                ") (csv_options::num_classes), got '", printable(fields.front()),
                                "'");
        labels.push_back(label_value);
        largest_label = std::max(largest_label, label_value);

        // The values grow as lines come, by doubling; a growth past a few MiB is checked
        // against the memory left first (check_memory_for_loading).
        if (values.size() + columns - 1 > values.capacity()) {
            const std::size_t grown = std::max(2 * values.capacity(), values.size() + columns - 1);
            const double more = static_cast<double>(grown * sizeof(T));
            if (options.memory_limit != 0 || more >= csv_checked_growth_bytes)
                check_memory_for_loading(
                    name,
                    concat("line ", line_number, ": keeping the ", labels.size(),
                           " samples read so far as ", feature_type_name<T>()),
                    more + held_bytes(values, labels), more, options.memory_limit,
                    "csv_options::memory_limit");
            values.reserve(grown);
        }

        for (std::size_t column = 1; column < columns; ++column) {
            const auto value = parse_csv_number(fields[column]);
            if (!value)
                throw fail_at_field(line_number, column + 1, "expected a number, got '",
                                    printable(fields[column]), "'");
            if (!std::isfinite(*value))
                throw fail_at_field(line_number, column + 1, "expected a finite number, got '",
                                    printable(fields[column]), "'");
            const auto converted = static_cast<T>(*value);
            if (!std::isfinite(converted))
                throw fail_at_field(
                    line_number, column + 1, "expected a number within the range of ",
                    feature_type_name<T>(), ", got '", printable(fields[column]), "'");
            values.push_back(converted);
        }
    }
    if (in.bad())
        throw error(concat(name, ": read error after line ", line_number, ": expected ",
                           "readable text, got an I/O failure"));
    if (labels.empty()) {
        const char* why = line_number == 0   ? "the file is empty"
                          : header_line != 0 ? "only a header"
                                             : "only blank lines";
        throw error(concat(name, ": expected at least one sample, got none (", why, ")"));
    }

    const double copy = static_cast<double>(values.size() * sizeof(T));
    check_memory_for_loading(name,
                             concat("copying the ", labels.size(), " samples of ", columns - 1,
                                    " features into the data set"),
                             copy + held_bytes(values, labels), copy, options.memory_limit,
                             "csv_options::memory_limit");
    dataset<T> data;
    data.features.resize({labels.size(), columns - 1});
    std::copy(values.begin(), values.end(), data.features.data());
    data.labels = std::move(labels);
    data.num_classes =
        options.num_classes != 0 ? options.num_classes : std::size_t{largest_label} + 1;
    return data;
}

}  // namespace detail

/// Reads a data set from CSV text already open as a stream (tests, pipes, archives).
/// Format: one sample per line, `label,feature_1,...,feature_n`; the label a non-negative
/// integer, the features finite numbers; optional header line (see csv_options); blank lines
/// only at the end; every line with the same number of columns; no quoting. A UTF-8
/// byte-order mark at the start is skipped; UTF-16 is refused.
/// @param name names the input in error messages, e.g. the file's path.
/// @throws shardnet::error "<name>: line <l>[, column <c>]: expected <what>, got <what>" on
///         any malformed input, or when there is no sample at all. A field quoted in the
///         message is escaped to printable ASCII and cut after 40 characters. Also when the
///         samples outgrow options.memory_limit or, without one, the memory this process can
///         still allocate (core/memory.hpp): "<name>: line <l>: keeping the <n> samples read so
///         far as float needs <bytes> more memory, but this process can allocate only <bytes>
///         more (...)", checked before each growth (of a few MiB or more without a limit) and
///         before the final copy.
/// @post the result satisfies validate_dataset; num_classes is options.num_classes if set,
///       else the largest label + 1.
/// Not collective: to load on every rank, wrap the call in agree_on (comm/agree.hpp).
template <class T>
dataset<T> load_csv_from_stream(std::istream& in, std::string_view name,
                                const csv_options& options = {}) {
    return detail::read_csv<T>(in, name, options);
}

/// Reads a data set from the CSV file at `path`; see load_csv_from_stream for the format.
/// @throws shardnet::error naming the path when it is missing, a directory or unreadable,
///         and naming the path and line for malformed content.
template <class T>
dataset<T> load_csv(const std::string& path, const csv_options& options = {}) {
    auto in = detail::open_data_file(path, "CSV");
    return detail::read_csv<T>(in, path, options);
}

}  // namespace shardnet
