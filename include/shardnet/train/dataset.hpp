// A labelled classification data set held in memory (features + class labels), and the checks
// that tie it to a network: a label the output layer cannot represent is a user error.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/memory.hpp"
#include "shardnet/core/tensor.hpp"

namespace shardnet {

/// A classification data set: one sample per row of `features`, its class in `labels`.
///
/// Invariants (checked by validate_dataset, established by every loader in train/):
/// - `features.shape(0) == labels.size()`: one label per sample;
/// - every label is `< num_classes`;
/// - loaders also guarantee every feature is finite.
///
/// `num_classes` is a property of the data set, not of a slice of it: a subset keeps the
/// parent's value even when it lacks the highest class, so train and test sets agree.
/// @tparam T the feature type (float or double).
template <class T>
struct dataset {
    matrix<T> features = matrix<T>::from_shape({0, 0});  ///< samples x width, row-major
    std::vector<std::uint32_t> labels;                   ///< one class index per sample
    std::size_t num_classes = 0;                         ///< labels lie in [0, num_classes)

    /// Number of samples.
    std::size_t size() const { return labels.size(); }
    /// Number of features per sample.
    std::size_t width() const { return features.shape(1); }
    bool empty() const { return labels.empty(); }
};

/// Throws shardnet::error unless `data` satisfies the invariants of dataset (one label per
/// feature row, every label below num_classes). `source` names the data in the message.
/// Not collective: when ranks load their own copy, wrap the load in agree_on (comm/agree.hpp).
template <class T>
void validate_dataset(const dataset<T>& data, std::string_view source) {
    if (data.features.shape(0) != data.labels.size())
        throw error(detail::concat(source, ": expected one label per sample (",
                                   data.features.shape(0), " feature rows), got ",
                                   data.labels.size(), " labels"));
    for (std::size_t i = 0; i < data.labels.size(); ++i)
        if (data.labels[i] >= data.num_classes)
            throw error(detail::concat(source, ": sample ", i, ": expected a label in [0, ",
                                       data.num_classes, ") (num_classes), got ", data.labels[i]));
}

/// Throws shardnet::error if a label cannot be a target of a network with `output_width`
/// outputs, i.e. a label >= output_width. Checked once before training, because inside the
/// loss an out-of-range label would index past the logits.
/// Message: "<source>: sample <i>: expected a label in [0, <output_width>) (the network's
/// output width), got <label>".
/// @post every label of data is < output_width (and data satisfies validate_dataset).
template <class T>
void validate_labels(const dataset<T>& data, std::size_t output_width, std::string_view source) {
    validate_dataset(data, source);
    for (std::size_t i = 0; i < data.labels.size(); ++i)
        if (data.labels[i] >= output_width)
            throw error(detail::concat(source, ": sample ", i, ": expected a label in [0, ",
                                       output_width, ") (the network's output width), got ",
                                       data.labels[i]));
}

/// The samples [begin, end) of `data` as a new data set with the same num_classes.
/// @pre begin <= end <= data.size()
template <class T>
dataset<T> subset(const dataset<T>& data, std::size_t begin, std::size_t end) {
    if (begin > end || end > data.size())
        throw error(detail::concat("subset: expected a range within [0, ", data.size(), "], got [",
                                   begin, ", ", end, ")"));
    dataset<T> part;
    part.num_classes = data.num_classes;
    const std::size_t width = data.width();
    part.features.resize({end - begin, width});
    const T* from = data.features.data() + begin * width;
    std::copy(from, from + (end - begin) * width, part.features.data());
    part.labels.assign(data.labels.begin() + static_cast<std::ptrdiff_t>(begin),
                       data.labels.begin() + static_cast<std::ptrdiff_t>(end));
    return part;
}

/// Splits `data` into its first `first_size` samples and the rest (e.g. train and
/// validation). Deterministic: no shuffling, so every rank gets the same halves.
/// @pre first_size <= data.size()
template <class T>
std::pair<dataset<T>, dataset<T>> split_at(const dataset<T>& data, std::size_t first_size) {
    if (first_size > data.size())
        throw error(detail::concat("split_at: expected at most ", data.size(),
                                   " samples in the first part, got ", first_size));
    return {subset(data, 0, first_size), subset(data, first_size, data.size())};
}

namespace detail {

/// The feature type as the loaders' messages call it.
template <class T>
constexpr const char* feature_type_name() {
    if constexpr (std::is_same_v<T, float>) return "float";
    if constexpr (std::is_same_v<T, double>) return "double";
    return "the feature type";
}

/// Opens a data file for the loaders, turning the stream's silent failure into a message
/// that says why: missing, a directory, or unreadable.
inline std::ifstream open_data_file(const std::string& path, std::string_view kind,
                                    std::ios::openmode mode = std::ios::in) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status))
        throw error(concat("cannot read ", kind, " file '", path, "': no such file"));
    if (std::filesystem::is_directory(status))
        throw error(
            concat("cannot read ", kind, " file '", path, "': expected a file, got a directory"));
    std::ifstream in(path, mode);
    if (!in)
        throw error(concat("cannot read ", kind, " file '", path,
                           "': it exists but cannot be opened for reading"));
    return in;
}

/// Bytes as format_bytes writes them, with the exact count beside a rounded one (a limit and a
/// need that round alike must still read apart), for an estimate that may exceed 64 bits.
inline std::string format_estimated_bytes(double bytes) {
    constexpr double largest = 18446744073709549568.0;  // the largest double below 2^64
    if (!(bytes < largest)) return "more than 16 EiB";
    const auto exact = static_cast<std::uint64_t>(std::ceil(bytes));
    return exact < 1024 ? format_bytes(exact) : concat(format_bytes(exact), " (", exact, " bytes)");
}

/// Throws shardnet::error unless a loader may go on to hold `total` bytes, `more` of them not
/// allocated yet: at most `limit` bytes in all when the caller set one (`limit_name` names the
/// option in the message), otherwise `more` within what this process can still allocate
/// (available_memory_bytes: the node's available memory, or its cgroup's room if less). Loaders
/// check before they allocate, so a data set too large for the node fails with a message naming
/// the file, what it holds and both sizes, instead of in the allocator or by the kernel's
/// out-of-memory killer (which gives no message at all). `what` says what the bytes are for.
inline void check_memory_for_loading(std::string_view name, std::string_view what, double total,
                                     double more, std::uint64_t limit,
                                     std::string_view limit_name) {
    if (limit != 0) {
        if (total <= static_cast<double>(limit)) return;
        throw error(concat(name, ": ", what, " needs ", format_estimated_bytes(total),
                           " of memory, but ", limit_name, " allows ",
                           format_estimated_bytes(static_cast<double>(limit))));
    }
    const std::uint64_t room = available_memory_bytes();
    if (more <= static_cast<double>(room)) return;
    throw error(concat(name, ": ", what, " needs ", format_estimated_bytes(more),
                       more == total ? " of memory" : " more memory",
                       ", but this process can allocate only ", format_bytes(room),
                       " more (the node's available memory, or its cgroup limit if lower)"));
}

}  // namespace detail
}  // namespace shardnet
