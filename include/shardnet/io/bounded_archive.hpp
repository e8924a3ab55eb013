// Boost.Serialization binary archives that are safe to read from hostile bytes: no archive
// header (its signature string has an unchecked length), every length field checked against
// the bytes that could hold it before anything is allocated, and every failure turned into
// one shardnet::error that names the file.
#pragma once

#include <boost/archive/archive_exception.hpp>
#include <boost/archive/basic_archive.hpp>
#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/array_wrapper.hpp>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "shardnet/core/error.hpp"

namespace shardnet::detail {

/// No header: our own framing carries magic, version and checksum, and the Boost header
/// would read a signature string whose length comes from the file.
inline constexpr unsigned archive_flags = boost::archive::no_header | boost::archive::no_codecvt;

/// A read-only stream buffer over bytes someone else owns.
class memory_buffer : public std::streambuf {
  public:
    memory_buffer(const char* data, std::size_t size) {
        char* begin = const_cast<char*>(data);  // get area only: never written through
        setg(begin, begin, begin + size);
    }
    std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
};

/// A count of elements of `element_bytes` each: written as is, and on load checked to fit in
/// `budget` bytes (the size of the whole payload) before the caller allocates for it.
template <class Archive>
std::uint64_t serialize_count(Archive& ar, std::uint64_t n, std::size_t element_bytes,
                              std::uint64_t budget, std::string_view what) {
    ar& n;
    if constexpr (Archive::is_loading::value)
        if (element_bytes > 0 && n > budget / element_bytes)
            throw error(concat(what, " claims ", n, " entries, but the whole payload is only ",
                               budget, " bytes"));
    return n;
}

template <class Archive>
void serialize_string(Archive& ar, std::string& s, std::uint64_t budget, std::string_view what) {
    const std::uint64_t n = serialize_count(ar, s.size(), 1, budget, what);
    if constexpr (Archive::is_loading::value) s.resize(static_cast<std::size_t>(n));
    if (n > 0) ar& boost::serialization::make_array(s.data(), s.size());
}

/// A vector of arithmetic values, stored as a count and one raw array.
template <class Archive, class T>
void serialize_values(Archive& ar, std::vector<T>& v, std::uint64_t budget, std::string_view what) {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>,
                  "serialize_values: bool has invalid bit patterns; store std::uint8_t");
    const std::uint64_t n = serialize_count(ar, v.size(), sizeof(T), budget, what);
    if constexpr (Archive::is_loading::value) v.resize(static_cast<std::size_t>(n));
    if (n > 0) ar& boost::serialization::make_array(v.data(), v.size());
}

/// A vector of structs with a member serialize(Archive&, unsigned); each takes at least
/// `min_item_bytes` in the archive, which bounds the count.
template <class Archive, class Item>
void serialize_items(Archive& ar, std::vector<Item>& v, std::uint64_t budget,
                     std::size_t min_item_bytes, std::string_view what) {
    const std::uint64_t n = serialize_count(ar, v.size(), min_item_bytes, budget, what);
    if constexpr (Archive::is_loading::value) v.resize(static_cast<std::size_t>(n));
    for (auto& item : v)
        item.serialize(ar, 0);
}

/// The archive bytes of `object` (its member serialize, with no class information).
template <class Object>
std::string to_archive_bytes(Object& object) {
    std::stringbuf buffer;
    {
        boost::archive::binary_oarchive ar(buffer, archive_flags);
        object.serialize(ar, 0);
    }
    return buffer.str();
}

/// Reads `object` from exactly `size` bytes. `what` names the source in every message.
/// @throws error "<what>: <problem>" for anything malformed, including trailing bytes.
template <class Object>
void from_archive_bytes(const char* data, std::size_t size, Object& object, std::string_view what) {
    memory_buffer buffer(data, size);
    try {
        boost::archive::binary_iarchive ar(buffer, archive_flags);
        object.serialize(ar, 0);
    } catch (const error& e) {
        throw error(concat(what, ": ", e.what()));
    } catch (const boost::archive::archive_exception& e) {
        throw error(concat(what, ": malformed or truncated (", e.what(), ")"));
    } catch (const std::bad_alloc&) {
        throw error(concat(what, ": malformed (a length field is too large)"));
    } catch (const std::length_error&) {
        throw error(concat(what, ": malformed (a length field is too large)"));
    }
    if (buffer.remaining() != 0)
        throw error(
            concat(what, ": malformed (", buffer.remaining(), " unexpected trailing bytes)"));
}

}  // namespace shardnet::detail
