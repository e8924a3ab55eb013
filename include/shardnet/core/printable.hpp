// Text from a user's file, made safe to quote in an error message: a binary file passed as
// CSV must not spray control bytes (and terminal escape sequences) over the user's screen.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace shardnet::detail {

/// `text` as printable ASCII, for quoting a file's content in a message.
///
/// Bytes 0x20-0x7E stay as they are except the backslash, which becomes `\\` so that an
/// escape in the result always means a byte of the input; every other byte (controls, DEL,
/// anything non-ASCII, UTF-8 included) becomes `\xNN` with upper-case hex digits.
/// @param max the most characters kept from the escaped text; a longer result is cut at
///        an escape boundary (an escape is never split) and ends with "...".
/// @post every character of the result is printable ASCII; its size is at most max + 3.
inline std::string printable(std::string_view text, std::size_t max = 40) {
    constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        char escaped[4] = {c, 0, 0, 0};
        std::size_t length = 1;
        if (byte == '\\') {
            escaped[1] = '\\';
            length = 2;
        } else if (byte < 0x20 || byte > 0x7E) {
            escaped[0] = '\\';
            escaped[1] = 'x';
            escaped[2] = hex[byte >> 4];
            escaped[3] = hex[byte & 0xF];
            length = 4;
        }
        if (out.size() + length > max) return out + "...";
        out.append(escaped, length);
    }
    return out;
}

}  // namespace shardnet::detail
