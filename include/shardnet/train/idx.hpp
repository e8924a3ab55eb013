// Loads the IDX format of MNIST and its relatives (Fashion-MNIST, KMNIST): an images file and
// a labels file of unsigned bytes. Header lengths are untrusted: every size is checked
// against the bytes actually present before anything is allocated for it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ios>
#include <istream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/train/dataset.hpp"

namespace shardnet {

/// How load_idx interprets the labels.
struct idx_options {
    /// 0: num_classes is the largest label + 1. Otherwise the data set's num_classes (10 for
    /// MNIST), and a label >= it is an error: a corrupt labels file fails here, not in the loss.
    std::size_t num_classes = 0;
};

/// IDX magic numbers: two zero bytes, the element type (0x08: unsigned byte), the number
/// of dimensions.
inline constexpr std::uint32_t idx_images_magic = 0x00000803;
inline constexpr std::uint32_t idx_labels_magic = 0x00000801;

namespace detail {

inline std::string idx_hex(std::uint32_t value, std::size_t digits = 8) {
    constexpr char hex[] = "0123456789ABCDEF";
    std::string text(digits, '0');
    for (std::size_t i = 0; i < digits; ++i)
        text[digits - 1 - i] = hex[(value >> (4 * i)) & 0xF];
    return "0x" + text;
}

/// What a wrong magic number probably means, because "got 0x1F8B0808" alone helps nobody.
inline std::string idx_magic_hint(std::uint32_t got) {
    if ((got >> 16) == 0x1F8B) return " (a gzip file: decompress it first)";
    if (got == idx_images_magic) return " (an IDX images file: are the two paths swapped?)";
    if (got == idx_labels_magic) return " (an IDX labels file: are the two paths swapped?)";
    if ((got >> 16) != 0) return " (not an IDX file)";
    if (((got >> 8) & 0xFF) != 0x08)
        return concat(" (element type ", idx_hex((got >> 8) & 0xFF, 2),
                      ": only unsigned bytes, 0x08, are supported)");
    return concat(" (", got & 0xFF, " dimensions)");
}

/// Bytes left in the stream from its current position, when the stream can tell (files and
/// string streams can; pipes cannot).
inline std::optional<std::uint64_t> idx_remaining_bytes(std::istream& in) {
    const auto here = in.tellg();
    if (here == std::istream::pos_type(-1)) return std::nullopt;
    in.seekg(0, std::ios::end);
    const auto end = in.tellg();
    in.clear();
    in.seekg(here);
    if (end == std::istream::pos_type(-1) || end < here) return std::nullopt;
    return static_cast<std::uint64_t>(end - here);
}

/// Reads up to `count` bytes. When the stream's size is unknown, it grows the buffer in
/// chunks as bytes arrive, so a lying length field costs at most one chunk, not its claim.
inline std::vector<unsigned char> idx_read_bytes(std::istream& in, std::uint64_t count) {
    constexpr std::uint64_t chunk = std::uint64_t{1} << 20;
    std::vector<unsigned char> bytes;
    while (bytes.size() < count) {
        const auto old_size = bytes.size();
        const auto want = static_cast<std::size_t>(std::min(count - old_size, chunk));
        bytes.resize(old_size + want);
        in.read(reinterpret_cast<char*>(bytes.data() + old_size),
                static_cast<std::streamsize>(want));
        const auto got = static_cast<std::size_t>(in.gcount());
        if (got < want) {
            bytes.resize(old_size + got);
            break;
        }
    }
    return bytes;
}

/// One IDX file after its header was read and checked; the data still waits in the stream.
struct idx_header {
    std::vector<std::uint64_t> dims;
    std::uint64_t header_bytes = 0;
    std::uint64_t data_bytes = 0;            // product of dims: one byte per element
    std::optional<std::uint64_t> available;  // bytes after the header, if the stream knows
};

inline std::uint32_t idx_big_endian(const unsigned char* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

inline idx_header read_idx_header(std::istream& in, std::string_view name, std::uint32_t magic,
                                  std::string_view kind) {
    const std::size_t dims = magic & 0xFF;
    const auto total = idx_remaining_bytes(in);
    const auto header_bytes = 4 * (1 + dims);
    const auto bytes = idx_read_bytes(in, header_bytes);
    if (bytes.size() >= 4) {
        const auto got = idx_big_endian(bytes.data());
        if (got != magic)
            throw error(concat(name, ": expected IDX magic number ", idx_hex(magic), " (", kind,
                               ": unsigned bytes, ", dims, dims == 1 ? " dimension" : " dimensions",
                               "), got ", idx_hex(got), idx_magic_hint(got)));
    }
    if (bytes.size() < header_bytes)
        throw error(concat(name, ": truncated: expected a ", header_bytes, "-byte IDX header, got ",
                           bytes.size(), " bytes"));

    idx_header header;
    header.header_bytes = header_bytes;
    header.data_bytes = 1;
    for (std::size_t d = 0; d < dims; ++d) {
        const std::uint64_t extent = idx_big_endian(bytes.data() + 4 * (1 + d));
        header.dims.push_back(extent);
        // Three 32-bit extents can overflow 64 bits; such a header is a lie, not a size.
        if (extent != 0 && header.data_bytes > std::numeric_limits<std::uint64_t>::max() / extent)
            throw error(concat(name,
                               ": header claims dimensions whose product overflows 64 "
                               "bits: expected a size that fits in the file, got a corrupt "
                               "header"));
        header.data_bytes *= extent;
    }
    if (total) header.available = *total - std::min<std::uint64_t>(*total, header_bytes);
    return header;
}

/// The size check that comes before any allocation: a header claiming more than the stream
/// holds is a truncated (or corrupt) file.
inline void check_idx_size(const idx_header& header, std::string_view name, std::string_view what) {
    if (header.available && *header.available < header.data_bytes)
        throw error(concat(name, ": truncated: header claims ", what, ", expected ",
                           header.data_bytes, " bytes of data after the ", header.header_bytes,
                           "-byte header, got ", *header.available));
}

inline std::vector<unsigned char> read_idx_data(std::istream& in, const idx_header& header,
                                                std::string_view name, std::string_view what) {
    auto bytes = idx_read_bytes(in, header.data_bytes);
    if (bytes.size() < header.data_bytes)
        throw error(concat(name, ": truncated: header claims ", what, ", expected ",
                           header.data_bytes, " bytes of data after the ", header.header_bytes,
                           "-byte header, got ", bytes.size()));
    // Trailing bytes mean the header does not describe this file: do not guess.
    if (in.peek() != std::istream::traits_type::eof()) {
        const auto extra =
            header.available ? concat(*header.available - header.data_bytes) : std::string("more");
        throw error(concat(name, ": header claims ", what, ", expected the file to end after ",
                           header.data_bytes, " bytes of data, got ", extra, " trailing bytes"));
    }
    return bytes;
}

}  // namespace detail

/// Reads an IDX images/labels pair from open binary streams (tests, archives, memory).
/// Images: magic 0x00000803, extents count, rows, columns (big-endian 32-bit), then
/// count*rows*columns bytes. Labels: magic 0x00000801, extent count, then count bytes.
/// Sample i is image i flattened row-major to rows*columns features, pixel/255 in [0, 1].
/// @param images_name, labels_name name the inputs in error messages, e.g. their paths.
/// @throws shardnet::error naming the input, what was expected and what was got, for: a wrong
///         magic number (in hex, with a hint: gzip, swapped files, element type); a truncated
///         header or data; a header claiming more data than the stream holds (checked before
///         allocating when the stream can tell its size, else data is read in bounded chunks);
///         trailing bytes; zero images or empty images; differing image and label counts;
///         a label >= options.num_classes when that is set.
/// @post the result satisfies validate_dataset.
/// Not collective: to load on every rank, wrap the call in agree_on (comm/agree.hpp).
template <class T>
dataset<T> load_idx_from_streams(std::istream& images, std::string_view images_name,
                                 std::istream& labels, std::string_view labels_name,
                                 const idx_options& options = {}) {
    const auto image_header =
        detail::read_idx_header(images, images_name, idx_images_magic, "images");
    const auto label_header =
        detail::read_idx_header(labels, labels_name, idx_labels_magic, "labels");
    const auto count = image_header.dims[0];
    const auto rows = image_header.dims[1];
    const auto columns = image_header.dims[2];
    const auto image_what = detail::concat(count, " images of ", rows, "x", columns, " pixels");
    const auto label_what = detail::concat(label_header.dims[0], " labels");

    if (count == 0)
        throw error(detail::concat(images_name,
                                   ": expected at least one image, got none (the "
                                   "header says 0 images)"));
    if (rows == 0 || columns == 0)
        throw error(detail::concat(images_name, ": expected images of at least 1x1 pixels, got ",
                                   rows, "x", columns));
    if (label_header.dims[0] != count)
        throw error(detail::concat(labels_name, ": expected as many labels as ", images_name,
                                   " has images (", count, "), got ", label_header.dims[0]));
    detail::check_idx_size(image_header, images_name, image_what);
    detail::check_idx_size(label_header, labels_name, label_what);

    const auto label_bytes = detail::read_idx_data(labels, label_header, labels_name, label_what);
    dataset<T> data;
    data.labels.assign(label_bytes.begin(), label_bytes.end());
    const auto largest = *std::max_element(data.labels.begin(), data.labels.end());
    if (options.num_classes != 0) {
        for (std::size_t i = 0; i < data.labels.size(); ++i)
            if (data.labels[i] >= options.num_classes)
                throw error(detail::concat(labels_name, ": label ", i, ": expected a label in [0, ",
                                           options.num_classes,
                                           ") (idx_options::num_classes), got ", data.labels[i]));
    }
    data.num_classes = options.num_classes != 0 ? options.num_classes : std::size_t{largest} + 1;

    const auto pixels = detail::read_idx_data(images, image_header, images_name, image_what);
    const auto samples = static_cast<std::size_t>(count);
    const auto width = static_cast<std::size_t>(rows * columns);
    data.features.resize({samples, width});
    T* out = data.features.data();
    for (std::size_t i = 0; i < pixels.size(); ++i)
        out[i] = static_cast<T>(pixels[i]) / T(255);
    return data;
}

/// Reads an IDX images/labels pair from files, e.g. MNIST's `train-images-idx3-ubyte` and
/// `train-labels-idx1-ubyte` (decompressed). See load_idx_from_streams for the format, the
/// checks and the result.
/// @throws shardnet::error naming the path when a file is missing, a directory or unreadable.
template <class T>
dataset<T> load_idx(const std::string& images_path, const std::string& labels_path,
                    const idx_options& options = {}) {
    auto images =
        detail::open_data_file(images_path, "IDX images", std::ios::in | std::ios::binary);
    auto labels =
        detail::open_data_file(labels_path, "IDX labels", std::ios::in | std::ios::binary);
    return load_idx_from_streams<T>(images, images_path, labels, labels_path, options);
}

}  // namespace shardnet
