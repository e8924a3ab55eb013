// Loads the IDX format of MNIST and its relatives (Fashion-MNIST, KMNIST): an images file and
// a labels file of unsigned bytes, plain or gzipped as they are distributed. Header lengths are
// untrusted: every size is checked against the bytes actually present (or, for gzip, actually
// inflated) before anything is allocated for it.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ios>
#include <istream>
#include <limits>
#include <new>
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
    /// Bytes the load may hold at most (the files' bytes, labels and features together); 0: as
    /// many as this process can still allocate. Checked from the headers, before any data is
    /// read.
    std::uint64_t memory_limit = 0;
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
    // The outer gzip layer is inflated on the way in, so this is data gzipped twice.
    if ((got >> 16) == 0x1F8B) return " (gzip data inside the gzip file: compressed twice?)";
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

/// The bytes of one IDX file: the stream's own, or, when the stream starts with gzip's magic
/// bytes 1F 8B, the data inflated from it as it is read. The magic bytes decide, not a file
/// name, so a renamed file and a stream without a name both work.
///
/// Gzip is read through zlib's inflate with gzip wrapping, which checks the header, the
/// deflate data, and the CRC-32 and length in the trailer of every member (a file may hold
/// several members back to back, as `cat a.gz b.gz` makes). The trailer's length is the size
/// mod 2^32 and as untrusted as the IDX header: it is never used to size anything. Callers
/// read in bounded chunks instead, so memory follows the bytes actually inflated.
class idx_input {
  public:
    /// @post the stream's first two bytes were read to recognize gzip; read() returns them
    ///       (plain) or their inflated data (gzip).
    idx_input(std::istream& in, std::string_view name) : in_(in), name_(name) {
        in_.read(reinterpret_cast<char*>(prefix_), 2);
        prefix_size_ = static_cast<std::size_t>(in_.gcount());
        gzip_ = prefix_size_ == 2 && prefix_[0] == 0x1F && prefix_[1] == 0x8B;
        if (!gzip_) return;
        compressed_.resize(std::size_t{1} << 16);
        // 16 + MAX_WBITS: gzip wrapping only (a raw or zlib-wrapped stream is an error).
        const int status = inflateInit2(&stream_, 16 + MAX_WBITS);
        if (status == Z_MEM_ERROR) throw std::bad_alloc();
        if (status != Z_OK)
            throw error(
                concat(name_, ": cannot start zlib's inflate (", zlib_message(status), ")"));
        inflating_ = true;
    }
    idx_input(const idx_input&) = delete;
    idx_input& operator=(const idx_input&) = delete;
    ~idx_input() {
        if (inflating_) inflateEnd(&stream_);
    }

    bool gzip() const noexcept { return gzip_; }

    /// Bytes left to read, when known without reading them: a plain stream that can seek.
    /// Never for gzip: only inflating tells how much data a gzip stream holds.
    std::optional<std::uint64_t> remaining() {
        if (gzip_) return std::nullopt;
        const auto rest = idx_remaining_bytes(in_);
        if (!rest) return std::nullopt;
        return *rest + (prefix_size_ - prefix_used_);
    }

    /// Reads up to `count` bytes into `out`; fewer only where the data ends.
    /// @throws shardnet::error naming the input when a gzip stream is truncated or corrupt.
    std::size_t read(unsigned char* out, std::size_t count) {
        return gzip_ ? inflate_into(out, count) : read_raw(out, count);
    }

    /// Reads and counts what is left, up to `limit` bytes (without keeping them), so that a
    /// gzip stream is checked to its trailer and trailing bytes can be counted.
    std::uint64_t skip(std::uint64_t limit) {
        unsigned char scratch[4096];
        std::uint64_t skipped = 0;
        while (skipped < limit) {
            const auto want =
                static_cast<std::size_t>(std::min<std::uint64_t>(limit - skipped, sizeof scratch));
            const auto got = read(scratch, want);
            skipped += got;
            if (got < want) break;
        }
        return skipped;
    }

  private:
    static const char* zlib_message(int status) {
        switch (status) {
            case Z_DATA_ERROR:
                return "invalid data";
            case Z_STREAM_ERROR:
                return "invalid parameters";
            case Z_VERSION_ERROR:
                return "zlib version mismatch";
            case Z_BUF_ERROR:
                return "no progress possible";
            default:
                return "unknown zlib error";
        }
    }

    std::size_t read_raw(unsigned char* out, std::size_t count) {
        std::size_t done = 0;
        while (done < count && prefix_used_ < prefix_size_)
            out[done++] = prefix_[prefix_used_++];
        if (done < count) {
            in_.read(reinterpret_cast<char*>(out + done),
                     static_cast<std::streamsize>(count - done));
            done += static_cast<std::size_t>(in_.gcount());
        }
        return done;
    }

    std::size_t inflate_into(unsigned char* out, std::size_t count) {
        std::size_t done = 0;
        while (done < count) {
            if (stream_.avail_in == 0 && !input_ended_) {
                const auto got = read_raw(compressed_.data(), compressed_.size());
                compressed_bytes_ += got;
                input_ended_ = got < compressed_.size();
                stream_.next_in = compressed_.data();
                stream_.avail_in = static_cast<uInt>(got);
            }
            if (member_ended_) {
                if (stream_.avail_in == 0) break;  // the end of the file after a whole member
                // More bytes after a member's trailer: the next member (or garbage, which its
                // header check reports).
                inflateReset(&stream_);
                member_ended_ = false;
            }
            const auto want = std::min<std::size_t>(count - done, std::numeric_limits<uInt>::max());
            stream_.next_out = out + done;
            stream_.avail_out = static_cast<uInt>(want);
            const int status = inflate(&stream_, Z_NO_FLUSH);
            done += want - stream_.avail_out;
            if (status == Z_STREAM_END) {
                member_ended_ = true;
            } else if (status == Z_MEM_ERROR) {
                throw std::bad_alloc();
            } else if (status == Z_BUF_ERROR || (status == Z_OK && stream_.avail_out != 0)) {
                // No progress, or all input used: fine while more input can come.
                if (input_ended_ && stream_.avail_in == 0)
                    throw error(concat(name_, ": gzip stream truncated after ", compressed_bytes_,
                                       " bytes: expected the rest of the compressed data and its "
                                       "CRC-32 trailer, got the end of the file (",
                                       stream_.total_out, " bytes inflated from this member)"));
            } else if (status != Z_OK) {
                // zlib's message is a fixed string of its own ("incorrect data check" for a bad
                // CRC, "invalid block type", ...), never the file's bytes.
                throw error(concat(name_, ": gzip data corrupted (",
                                   stream_.msg ? stream_.msg : zlib_message(status), ") near byte ",
                                   compressed_bytes_ - stream_.avail_in,
                                   ": expected a valid gzip stream"));
            }
        }
        return done;
    }

    std::istream& in_;
    std::string name_;
    unsigned char prefix_[2] = {0, 0};  // the bytes read to recognize gzip
    std::size_t prefix_size_ = 0, prefix_used_ = 0;
    bool gzip_ = false, inflating_ = false, input_ended_ = false, member_ended_ = false;
    z_stream stream_{};
    std::vector<unsigned char> compressed_;  // input buffer of the inflater
    std::uint64_t compressed_bytes_ = 0;     // bytes of the stream read so far
};

/// Reads up to `count` bytes, growing the buffer in chunks as bytes arrive: a lying length
/// field costs at most one chunk beyond the bytes actually there, and the buffer never holds
/// more than `count` (capacity grows geometrically, but capped at `count`).
inline std::vector<unsigned char> idx_read_bytes(idx_input& in, std::uint64_t count) {
    constexpr std::uint64_t chunk = std::uint64_t{1} << 20;
    std::vector<unsigned char> bytes;
    while (bytes.size() < count) {
        const auto old_size = bytes.size();
        const auto want = static_cast<std::size_t>(std::min(count - old_size, chunk));
        if (old_size + want > bytes.capacity())
            bytes.reserve(static_cast<std::size_t>(
                std::min<std::uint64_t>(count, std::max<std::uint64_t>(2 * old_size, chunk))));
        bytes.resize(old_size + want);
        const auto got = in.read(bytes.data() + old_size, want);
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

inline idx_header read_idx_header(idx_input& in, std::string_view name, std::uint32_t magic,
                                  std::string_view kind) {
    const std::size_t dims = magic & 0xFF;
    const auto total = in.remaining();
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

inline std::vector<unsigned char> read_idx_data(idx_input& in, const idx_header& header,
                                                std::string_view name, std::string_view what) {
    auto bytes = idx_read_bytes(in, header.data_bytes);
    if (bytes.size() < header.data_bytes)
        throw error(concat(name, ": truncated: header claims ", what, ", expected ",
                           header.data_bytes, " bytes of data after the ", header.header_bytes,
                           "-byte header, got ", bytes.size()));
    // Trailing bytes mean the header does not describe this file: do not guess. Reading on to
    // the end also makes zlib check a gzip stream's trailer (CRC-32 and length).
    constexpr std::uint64_t count_limit = std::uint64_t{1} << 20;
    const auto extra = in.skip(count_limit);
    if (extra != 0) {
        const auto count = header.available      ? concat(*header.available - header.data_bytes)
                           : extra < count_limit ? concat(extra)
                                                 : concat("more than ", count_limit);
        throw error(concat(name, ": header claims ", what, ", expected the file to end after ",
                           header.data_bytes, " bytes of data, got ", count, " trailing bytes"));
    }
    return bytes;
}

}  // namespace detail

/// Reads an IDX images/labels pair from open binary streams (tests, archives, memory).
/// Images: magic 0x00000803, extents count, rows, columns (big-endian 32-bit), then
/// count*rows*columns bytes. Labels: magic 0x00000801, extent count, then count bytes.
/// Either stream may instead be gzip data of such a file (it starts with the bytes 1F 8B, as
/// MNIST's and Fashion-MNIST's `.gz` files do): it is inflated as it is read.
/// Sample i is image i flattened row-major to rows*columns features, pixel/255 in [0, 1].
/// @param images_name, labels_name name the inputs in error messages, e.g. their paths.
/// @throws shardnet::error naming the input, what was expected and what was got, for: a wrong
///         magic number (in hex, with a hint: swapped files, element type, gzipped twice); a
///         truncated header or data; a header claiming more data than the stream holds
///         (checked before allocating when the stream can tell its size, else data is read,
///         or inflated, in bounded chunks); trailing bytes; zero images or empty images;
///         differing image and label counts; a label >= options.num_classes when that is set;
///         gzip data that is truncated ("gzip stream truncated after N bytes") or corrupt
///         ("gzip data corrupted (incorrect data check)" for a bad CRC, or zlib's reason);
///         a data set larger than options.memory_limit or, without one, than the memory this
///         process can still allocate (core/memory.hpp), checked from the headers before any
///         data is read: "<images_name>: loading <n> images of <r>x<c> pixels as float needs
///         <bytes> of memory, but this process can allocate only <bytes> more (...)".
/// @post the result satisfies validate_dataset.
/// Not collective: to load on every rank, wrap the call in agree_on (comm/agree.hpp).
template <class T>
dataset<T> load_idx_from_streams(std::istream& images, std::string_view images_name,
                                 std::istream& labels, std::string_view labels_name,
                                 const idx_options& options = {}) {
    detail::idx_input image_input(images, images_name), label_input(labels, labels_name);
    const auto image_header =
        detail::read_idx_header(image_input, images_name, idx_images_magic, "images");
    const auto label_header =
        detail::read_idx_header(label_input, labels_name, idx_labels_magic, "labels");
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
    // Before reading anything: the bytes of both files, the labels as 32-bit integers and the
    // pixels as T are all held at once while the features are written.
    const double needed = static_cast<double>(count) * (1 + sizeof(std::uint32_t)) +
                          static_cast<double>(image_header.data_bytes) * (1 + sizeof(T));
    detail::check_memory_for_loading(
        images_name, detail::concat("loading ", image_what, " as ", detail::feature_type_name<T>()),
        needed, needed, options.memory_limit, "idx_options::memory_limit");

    const auto label_bytes =
        detail::read_idx_data(label_input, label_header, labels_name, label_what);
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

    const auto pixels = detail::read_idx_data(image_input, image_header, images_name, image_what);
    const auto samples = static_cast<std::size_t>(count);
    const auto width = static_cast<std::size_t>(rows * columns);
    data.features.resize({samples, width});
    T* out = data.features.data();
    for (std::size_t i = 0; i < pixels.size(); ++i)
        out[i] = static_cast<T>(pixels[i]) / T(255);
    return data;
}

/// Reads an IDX images/labels pair from files, e.g. MNIST's `train-images-idx3-ubyte.gz` and
/// `train-labels-idx1-ubyte.gz`, gzipped or not (recognized by content, not by name). See
/// load_idx_from_streams for the format, the checks and the result.
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
