// Data sets for training: CSV and IDX loaders (good input and every malformed case), the
// synthetic set (determinism, shape, beyond a linear model), standardization, label checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include "shardnet/core/error.hpp"
#include "shardnet/core/printable.hpp"
#include "shardnet/train/csv.hpp"
#include "shardnet/train/dataset.hpp"
#include "shardnet/train/idx.hpp"
#include "shardnet/train/standardize.hpp"
#include "shardnet/train/synthetic.hpp"

namespace {

using shardnet::dataset;

template <class T = float>
dataset<T> csv(const std::string& text, const shardnet::csv_options& options = {}) {
    std::istringstream in(text);
    return shardnet::load_csv_from_stream<T>(in, "test.csv", options);
}

/// The message of the shardnet::error that `f` throws ("" if none), so a test can check
/// several parts of it.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const shardnet::error& e) {
        return e.what();
    }
    return "";
}

/// Whether every byte of `text` is printable ASCII (what a terminal shows as it is).
bool printable_ascii(const std::string& text) {
    return std::all_of(text.begin(), text.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte >= 0x20 && byte <= 0x7E;
    });
}

/// A directory of its own under the system temp directory, removed at the end of the test.
struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        static std::atomic<int> counter{0};
        path =
            std::filesystem::temp_directory_path() /
            ("shardnet_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& bytes) const {
        const auto file = (path / name).string();
        std::ofstream(file, std::ios::binary) << bytes;
        return file;
    }
};

void put_be32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

std::string idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t columns,
                       const std::vector<std::uint8_t>& pixels) {
    std::string out;
    put_be32(out, 0x00000803);
    put_be32(out, count);
    put_be32(out, rows);
    put_be32(out, columns);
    out.append(pixels.begin(), pixels.end());
    return out;
}

std::string idx_labels(std::uint32_t count, const std::vector<std::uint8_t>& labels) {
    std::string out;
    put_be32(out, 0x00000801);
    put_be32(out, count);
    out.append(labels.begin(), labels.end());
    return out;
}

/// `bytes` gzipped by zlib's deflate with gzip wrapping, as the `gzip` tool makes .gz files.
std::string gzip(const std::string& bytes) {
    z_stream stream{};
    REQUIRE(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(deflateBound(&stream, static_cast<uLong>(bytes.size())), '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    stream.avail_in = static_cast<uInt>(bytes.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int status = deflate(&stream, Z_FINISH);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    REQUIRE(status == Z_STREAM_END);
    return out;
}

/// Pixels that deflate cannot shrink much (a linear congruential sequence), so that a gzipped
/// file is large enough to take several reads of the inflater's input buffer.
std::vector<std::uint8_t> noisy_pixels(std::size_t count) {
    std::vector<std::uint8_t> pixels(count);
    std::uint32_t state = 12345;
    for (auto& pixel : pixels) {
        state = state * 1664525u + 1013904223u;
        pixel = static_cast<std::uint8_t>(state >> 24);
    }
    return pixels;
}

template <class T = float>
dataset<T> idx(const std::string& images, const std::string& labels,
               const shardnet::idx_options& options = {}) {
    std::istringstream image_stream(images), label_stream(labels);
    return shardnet::load_idx_from_streams<T>(image_stream, "images.idx", label_stream,
                                              "labels.idx", options);
}

/// A stream that cannot seek, like a pipe: the loader cannot learn its size up front.
class pipe_buffer : public std::streambuf {
  public:
    explicit pipe_buffer(std::string bytes) : bytes_(std::move(bytes)) {
        setg(bytes_.data(), bytes_.data(), bytes_.data() + bytes_.size());
    }

  private:
    std::string bytes_;
};

}  // namespace

TEST_SUITE("serial") {
    // ---------------------------------------------------------------- CSV, good input

    TEST_CASE("csv: samples without a header") {
        const auto data = csv("0,1.5,2\n2,-3,4e2\n1,0,.25\n");
        REQUIRE(data.size() == 3);
        CHECK(data.width() == 2);
        CHECK(data.num_classes == 3);
        CHECK(data.labels == std::vector<std::uint32_t>{0, 2, 1});
        CHECK(data.features(0, 0) == 1.5f);
        CHECK(data.features(1, 0) == -3.0f);
        CHECK(data.features(1, 1) == 400.0f);
        CHECK(data.features(2, 1) == 0.25f);
        CHECK_NOTHROW(shardnet::validate_dataset(data, "test.csv"));
    }

    TEST_CASE("csv: a header is detected, or forced, or refused") {
        const auto detected = csv("label,x,y\n1,2,3\n0,4,5\n");
        CHECK(detected.size() == 2);
        CHECK(detected.features(1, 1) == 5.0f);

        // A numeric-looking header is only skipped when the caller says there is one.
        shardnet::csv_options present;
        present.header = shardnet::csv_header::present;
        CHECK(csv("7,8,9\n1,2,3\n", present).size() == 1);
        CHECK(csv("7,8,9\n1,2,3\n").size() == 2);

        shardnet::csv_options absent;
        absent.header = shardnet::csv_header::absent;
        CHECK_THROWS_WITH_AS(csv("label,x\n1,2\n", absent),
                             doctest::Contains("test.csv: line 1, column 1: expected a "
                                               "non-negative integer label, got 'label'"),
                             shardnet::error);
    }

    TEST_CASE("csv: whitespace, CRLF, signs, trailing blank lines, other delimiters") {
        const auto data = csv(" 1 , +2 ,-0.5\r\n3.0,1e-3, 7 \r\n\n\r\n  \n");
        REQUIRE(data.size() == 2);
        CHECK(data.labels == std::vector<std::uint32_t>{1, 3});
        CHECK(data.features(0, 0) == 2.0f);
        CHECK(data.features(0, 1) == -0.5f);
        CHECK(data.features(1, 1) == 7.0f);
        CHECK(data.num_classes == 4);

        shardnet::csv_options semicolons;
        semicolons.delimiter = ';';
        CHECK(csv<double>("0;1;2\n1;3;4", semicolons).features(1, 1) == 4.0);  // no final \n
    }

    TEST_CASE("csv: num_classes from the options") {
        shardnet::csv_options ten;
        ten.num_classes = 10;
        CHECK(csv("0,1\n3,2\n", ten).num_classes == 10);
        CHECK_THROWS_WITH_AS(csv("0,1\n12,2\n", ten),
                             doctest::Contains("line 2, column 1: expected a label in [0, 10) "
                                               "(csv_options::num_classes), got '12'"),
                             shardnet::error);
    }

    TEST_CASE("csv: load_csv reads a file") {
        temp_dir dir;
        const auto path = dir.write("good.csv", "label,a,b,c\n0,1,2,3\n4,5,6,7\n");
        const auto data = shardnet::load_csv<double>(path);
        CHECK(data.size() == 2);
        CHECK(data.width() == 3);
        CHECK(data.num_classes == 5);
        CHECK(data.features(1, 2) == 7.0);
    }

    TEST_CASE("csv: a UTF-8 byte-order mark is skipped") {
        // Spreadsheets on Windows start UTF-8 files with EF BB BF; it used to turn the first
        // sample into a "header" and drop it silently.
        const std::string plain = "0,1.5,2\n2,-3,4\n";
        const auto expected = csv(plain);
        const auto with_bom = csv("\xEF\xBB\xBF" + plain);
        REQUIRE(with_bom.size() == expected.size());
        CHECK(with_bom.labels == expected.labels);
        CHECK(with_bom.num_classes == expected.num_classes);
        CHECK(with_bom.features == expected.features);

        CHECK(csv("\xEF\xBB\xBFlabel,a,b\n1,2,3\n").size() == 1);  // a header after the mark
        temp_dir dir;
        const auto path = dir.write("bom.csv", "\xEF\xBB\xBF" + plain);
        CHECK(shardnet::load_csv<float>(path).labels == expected.labels);

        // Only at the start of the file: elsewhere it is garbage, reported as such.
        CHECK_THROWS_WITH_AS(csv("0,1\n\xEF\xBB\xBF"
                                 "1,2\n"),
                             doctest::Contains("line 2, column 1: expected a non-negative "
                                               "integer label, got '\\xEF\\xBB\\xBF1'"),
                             shardnet::error);
        // UTF-16 cannot be parsed byte-wise: say so instead of reporting NUL bytes.
        CHECK_THROWS_WITH_AS(csv(std::string("\xFF\xFE"
                                             "0\0,\0"
                                             "1\0\n\0",
                                             10)),
                             doctest::Contains("test.csv: line 1: expected UTF-8 or ASCII text, "
                                               "got a UTF-16 byte-order mark"),
                             shardnet::error);
    }

    // ---------------------------------------------------------------- CSV, bad input

    TEST_CASE("csv: wrong column count names the line, expected and got") {
        CHECK_THROWS_WITH_AS(
            csv("0,1,2,3,4\n1,1,2,3,4\n1,1,2\n"),
            doctest::Contains("test.csv: line 3: expected 5 columns (label + 4 features), got 3"),
            shardnet::error);
        CHECK_THROWS_WITH_AS(csv("y,a,b\n0,1,2\n1,1,2,3\n"),
                             doctest::Contains("line 3: expected 3 columns (label + 2 features, "
                                               "as in the header on line 1), got 4"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(csv("0\n1\n"),
                             doctest::Contains("line 1: expected at least 2 columns (label + "
                                               "features), got 1"),
                             shardnet::error);
    }

    TEST_CASE("csv: a field that is not a number") {
        CHECK_THROWS_WITH_AS(
            csv("0,1,2\n1,2,abc\n"),
            doctest::Contains("test.csv: line 2, column 3: expected a number, got 'abc'"),
            shardnet::error);
        CHECK_THROWS_WITH_AS(csv("0,1,2\n1,,2\n"),
                             doctest::Contains("line 2, column 2: expected a number, got ''"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(csv("0,1,2\n1,2x,2\n"),
                             doctest::Contains("line 2, column 2: expected a number, got '2x'"),
                             shardnet::error);
    }

    TEST_CASE("printable: file text quoted in a message is escaped and bounded") {
        using shardnet::detail::printable;
        CHECK(printable("1.5e3") == "1.5e3");
        CHECK(printable("") == "");
        CHECK(printable(std::string("a\0b", 3)) == "a\\x00b");
        CHECK(printable("\x1F\x7F\x80\xFF") == "\\x1F\\x7F\\x80\\xFF");
        CHECK(printable("\xC3\xA9t\xC3\xA9") == "\\xC3\\xA9t\\xC3\\xA9");  // UTF-8 too
        CHECK(printable("C:\\data") == "C:\\\\data");  // a real backslash stays unambiguous
        CHECK(printable(std::string(40, 'x')) == std::string(40, 'x'));
        CHECK(printable(std::string(41, 'x')) == std::string(40, 'x') + "...");
        CHECK(printable("abcdef", 4) == "abcd...");
        // An escape is never cut in half: the text stops before it.
        CHECK(printable("ab\x01", 4) == "ab...");
        CHECK(printable("ab\x01", 6) == "ab\\x01");
    }

    TEST_CASE("csv: binary bytes in a field are escaped in the message, and cut short") {
        // NUL last: what() is a C string, so a NUL early in a raw message would hide the rest.
        std::string garbage = "x";
        for (int byte = 0x01; byte <= 0x1F; ++byte)
            if (byte != '\n') garbage.push_back(static_cast<char>(byte));
        for (int byte = 0x80; byte <= 0xFF; ++byte)
            garbage.push_back(static_cast<char>(byte));
        garbage += std::string(1, '\0') + "x";
        for (const auto& text : {"0,1\n1," + garbage + "\n", "0,1\n" + garbage + ",1\n"}) {
            const auto message = error_of([&] { csv(text); });
            CHECK(message.find("test.csv: line 2, column ") != std::string::npos);
            CHECK(message.find("got 'x\\x01\\x02\\x03") != std::string::npos);
            CHECK(message.find("...'") != std::string::npos);  // 161 bytes: cut short
            CHECK(message.size() < 200);
            CHECK(printable_ascii(message));
        }
        CHECK_THROWS_WITH_AS(csv(std::string("0,1\n1,a\x01\xFF\0b\n", 12)),
                             doctest::Contains("line 2, column 2: expected a number, got "
                                               "'a\\x01\\xFF\\x00b'"),
                             shardnet::error);
        shardnet::csv_options ten;
        ten.num_classes = 10;
        CHECK(printable_ascii(error_of([&] { csv("0,1\n12\x7F,2\n", ten); })));
    }

    TEST_CASE("csv: negative or fractional labels") {
        CHECK_THROWS_WITH_AS(csv("0,1\n-1,2\n"),
                             doctest::Contains("line 2, column 1: expected a non-negative "
                                               "integer label, got '-1'"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(csv("0,1\n1.5,2\n"),
                             doctest::Contains("line 2, column 1: expected a non-negative "
                                               "integer label, got '1.5'"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(csv("0,1\n9999999999,2\n"), doctest::Contains("got '9999999999'"),
                             shardnet::error);
    }

    TEST_CASE("csv: NaN, infinity and values out of the feature type's range") {
        CHECK_THROWS_WITH_AS(
            csv("0,1,nan\n"),
            doctest::Contains("line 1, column 3: expected a finite number, got 'nan'"),
            shardnet::error);
        CHECK_THROWS_WITH_AS(
            csv("0,1,2\n1,-inf,2\n"),
            doctest::Contains("line 2, column 2: expected a finite number, got '-inf'"),
            shardnet::error);
        CHECK_THROWS_WITH_AS(csv<float>("0,1e300\n"),
                             doctest::Contains("line 1, column 2: expected a number within the "
                                               "range of float, got '1e300'"),
                             shardnet::error);
        CHECK(csv<double>("0,1e300\n").features(0, 0) == 1e300);
    }

    TEST_CASE("csv: no samples") {
        CHECK_THROWS_WITH_AS(
            csv(""),
            doctest::Contains("test.csv: expected at least one sample, got none (the file is "
                              "empty)"),
            shardnet::error);
        CHECK_THROWS_WITH_AS(csv("label,a,b\n"), doctest::Contains("got none (only a header)"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(csv("\n\n"), doctest::Contains("got none (only blank lines)"),
                             shardnet::error);
    }

    TEST_CASE("csv: a blank line is allowed only at the end") {
        CHECK_THROWS_WITH_AS(csv("0,1\n\n1,2\n"),
                             doctest::Contains("line 2: expected a sample or the end of the "
                                               "file, got a blank line followed by more data "
                                               "on line 3"),
                             shardnet::error);
    }

    TEST_CASE("csv: missing file, directory") {
        temp_dir dir;
        const auto missing = (dir.path / "missing.csv").string();
        const auto message = error_of([&] { shardnet::load_csv<float>(missing); });
        CHECK(message.find(missing) != std::string::npos);
        CHECK(message.find("no such file") != std::string::npos);
        CHECK_THROWS_WITH_AS(shardnet::load_csv<float>(dir.path.string()),
                             doctest::Contains("expected a file, got a directory"),
                             shardnet::error);
        // Errors in a file name the file, not "test.csv".
        const auto bad = dir.write("bad.csv", "0,1\n1,x\n");
        CHECK(error_of([&] {
                  shardnet::load_csv<float>(bad);
              }).find(bad + ": line 2, column 2: expected a number, got 'x'") != std::string::npos);
    }

    // ---------------------------------------------------------------- IDX

    TEST_CASE("idx: round trip through files") {
        temp_dir dir;
        const std::vector<std::uint8_t> pixels = {0, 255, 51, 102, 1, 2, 3, 4, 10, 20, 30, 40};
        const auto images = dir.write("images-idx3-ubyte", idx_images(3, 2, 2, pixels));
        const auto labels = dir.write("labels-idx1-ubyte", idx_labels(3, {7, 0, 3}));

        const auto data = shardnet::load_idx<float>(images, labels);
        REQUIRE(data.size() == 3);
        CHECK(data.width() == 4);
        CHECK(data.labels == std::vector<std::uint32_t>{7, 0, 3});
        CHECK(data.num_classes == 8);
        CHECK(data.features(0, 0) == 0.0f);
        CHECK(data.features(0, 1) == 1.0f);
        CHECK(data.features(0, 2) == doctest::Approx(0.2));
        CHECK(data.features(2, 3) == doctest::Approx(40.0 / 255.0));

        shardnet::idx_options mnist;
        mnist.num_classes = 10;
        CHECK(shardnet::load_idx<double>(images, labels, mnist).num_classes == 10);
        mnist.num_classes = 5;
        CHECK(error_of([&] { shardnet::load_idx<double>(images, labels, mnist); })
                  .find(labels + ": label 0: expected a label in [0, 5) "
                                 "(idx_options::num_classes), got 7") != std::string::npos);
    }

    TEST_CASE("idx: missing file") {
        temp_dir dir;
        const auto labels = dir.write("labels", idx_labels(1, {0}));
        CHECK_THROWS_WITH_AS(shardnet::load_idx<float>((dir.path / "nope").string(), labels),
                             doctest::Contains("no such file"), shardnet::error);
    }

    TEST_CASE("idx: wrong magic numbers say expected and got in hex") {
        const auto images = idx_images(1, 1, 2, {1, 2});
        const auto labels = idx_labels(1, {0});
        CHECK_THROWS_WITH_AS(idx(labels, images),
                             doctest::Contains("images.idx: expected IDX magic number 0x00000803 "
                                               "(images: unsigned bytes, 3 dimensions), got "
                                               "0x00000801 (an IDX labels file: are the two "
                                               "paths swapped?)"),
                             shardnet::error);
        // One gzip layer is inflated; a second one is named.
        CHECK_THROWS_WITH_AS(idx(gzip(gzip(images)), labels),
                             doctest::Contains("got 0x1F8B0800 (gzip data inside the gzip file: "
                                               "compressed twice?)"),
                             shardnet::error);
        auto floats = images;
        floats[2] = '\x0D';
        CHECK_THROWS_WITH_AS(idx(floats, labels),
                             doctest::Contains("got 0x00000D03 (element type 0x0D: only unsigned "
                                               "bytes, 0x08, are supported)"),
                             shardnet::error);
        auto two_dims = labels;
        two_dims[3] = '\x02';
        CHECK_THROWS_WITH_AS(idx(images, two_dims),
                             doctest::Contains("labels.idx: expected IDX magic number 0x00000801 "
                                               "(labels: unsigned bytes, 1 dimension), got "
                                               "0x00000802 (2 dimensions)"),
                             shardnet::error);
    }

    TEST_CASE("idx: truncated files say expected and got bytes") {
        const std::vector<std::uint8_t> pixels(12, 9);
        auto images = idx_images(3, 2, 2, pixels);
        const auto labels = idx_labels(3, {0, 1, 2});
        images.resize(images.size() - 2);
        CHECK_THROWS_WITH_AS(idx(images, labels),
                             doctest::Contains("images.idx: truncated: header claims 3 images of "
                                               "2x2 pixels, expected 12 bytes of data after the "
                                               "16-byte header, got 10"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(idx(idx_images(3, 2, 2, pixels).substr(0, 9), labels),
                             doctest::Contains("truncated: expected a 16-byte IDX header, got 9 "
                                               "bytes"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(idx(idx_images(3, 2, 2, pixels), idx_labels(3, {0, 1})),
                             doctest::Contains("labels.idx: truncated: header claims 3 labels, "
                                               "expected 3 bytes of data after the 8-byte "
                                               "header, got 2"),
                             shardnet::error);
    }

    TEST_CASE("idx: a huge claimed count throws instead of allocating") {
        const auto labels = idx_labels(0xFFFFFFFFu, {0, 1});
        const auto images = idx_images(0xFFFFFFFFu, 28, 28, std::vector<std::uint8_t>(28 * 28));
        // 3.4 TB claimed: checked against the stream's size before any allocation.
        CHECK_THROWS_WITH_AS(idx(images, labels),
                             doctest::Contains("expected 3367254359280 bytes of data after the "
                                               "16-byte header, got 784"),
                             shardnet::error);
        // A stream that cannot tell its size: a claim beyond this process's memory is refused
        // from the headers (64 PiB here, more than any node has)...
        {
            pipe_buffer image_pipe(idx_images(0xFFFFFFFFu, 0xFFFF, 0xFF, {})), label_pipe(labels);
            std::istream image_stream(&image_pipe), label_stream(&label_pipe);
            const auto message = error_of([&] {
                shardnet::load_idx_from_streams<float>(image_stream, "pipe", label_stream,
                                                       "labels");
            });
            CHECK(message.find("pipe: loading 4294967295 images of 65535x255 pixels as float "
                               "needs ") == 0);
            CHECK(message.find(" PiB (") != std::string::npos);
            CHECK(message.find(" bytes) of memory, but this process can allocate only ") !=
                  std::string::npos);
        }
        // ... and one that fits is read in bounded chunks, and still fails.
        pipe_buffer image_pipe(idx_images(1000000, 1, 1, {7})),
            label_pipe(idx_labels(1000000, {0, 1}));
        std::istream image_stream(&image_pipe), label_stream(&label_pipe);
        CHECK_THROWS_WITH_AS(
            shardnet::load_idx_from_streams<float>(image_stream, "pipe", label_stream, "labels"),
            doctest::Contains("labels: truncated: header claims 1000000 "
                              "labels, expected 1000000 bytes of data after "
                              "the 8-byte header, got 2"),
            shardnet::error);
        // Extents whose product overflows 64 bits.
        CHECK_THROWS_WITH_AS(idx(idx_images(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, {}), labels),
                             doctest::Contains("overflows 64 bits"), shardnet::error);
    }

    TEST_CASE("idx: a data set larger than idx_options::memory_limit is refused before reading") {
        const auto images = idx_images(2, 28, 28, std::vector<std::uint8_t>(2 * 28 * 28, 9));
        const auto labels = idx_labels(2, {0, 1});
        // Held at once: both files' bytes (2 + 1568), 2 labels of 4 bytes, 1568 floats.
        const std::uint64_t needed = 2 + 1568 + 2 * 4 + 1568 * 4;
        shardnet::idx_options options;
        options.memory_limit = needed;
        CHECK(idx(images, labels, options).size() == 2);
        options.memory_limit = needed - 1;
        CHECK(error_of([&] { idx(images, labels, options); }) ==
              "images.idx: loading 2 images of 28x28 pixels as float needs 7.67 KiB (7850 bytes) "
              "of memory, but idx_options::memory_limit allows 7.67 KiB (7849 bytes)");
        // As double: 4 more bytes a pixel.
        options.memory_limit = needed + 1568 * 4 - 1;
        CHECK_THROWS_WITH_AS(idx<double>(images, labels, options),
                             doctest::Contains("as double needs 13.8 KiB (14122 bytes) of memory"),
                             shardnet::error);
        options.memory_limit = needed + 1568 * 4;
        CHECK(idx<double>(images, labels, options).size() == 2);
    }

    TEST_CASE("csv: samples beyond csv_options::memory_limit are refused as they grow") {
        const std::string text = "0,1,2,3\n1,4,5,6\n2,7,8,9\n3,1,1,1\n";
        shardnet::csv_options options;
        // Line 1 reserves 3 floats beside 1 label (16 bytes); line 2 doubles them to 6 while
        // the 3 are still held, beside 2 labels: 44 bytes.
        options.memory_limit = 43;
        CHECK(error_of([&] { csv(text, options); }) ==
              "test.csv: line 2: keeping the 2 samples read so far as float needs 44 bytes of "
              "memory, but csv_options::memory_limit allows 43 bytes");
        // Growing to 12 floats at line 3 (6 + 12 held, 4 labels: 88 bytes) passes at 88; the
        // copy at the end needs the 12 floats' buffer, 4 labels and 12 floats more: 112 bytes.
        options.memory_limit = 111;
        CHECK(error_of([&] { csv(text, options); }) ==
              "test.csv: copying the 4 samples of 3 features into the data set needs 112 bytes "
              "of memory, but csv_options::memory_limit allows 111 bytes");
        options.memory_limit = 112;
        const auto data = csv(text, options);
        CHECK(data.size() == 4);
        CHECK(data.features(3, 2) == 1.0f);
        // Without a limit, the same check against what this process can allocate passes.
        CHECK(csv(text).size() == 4);
    }

    TEST_CASE("idx: a round trip through a stream that cannot seek") {
        pipe_buffer image_pipe(idx_images(2, 1, 3, {0, 255, 0, 255, 0, 255}));
        pipe_buffer label_pipe(idx_labels(2, {1, 0}));
        std::istream image_stream(&image_pipe), label_stream(&label_pipe);
        const auto data =
            shardnet::load_idx_from_streams<double>(image_stream, "pipe", label_stream, "labels");
        CHECK(data.size() == 2);
        CHECK(data.features(1, 0) == 1.0);
        CHECK(data.features(1, 1) == 0.0);
    }

    TEST_CASE("idx: counts, empty images and trailing bytes") {
        const std::vector<std::uint8_t> pixels(8, 1);
        CHECK_THROWS_WITH_AS(idx(idx_images(2, 2, 2, pixels), idx_labels(3, {0, 1, 2})),
                             doctest::Contains("labels.idx: expected as many labels as images.idx "
                                               "has images (2), got 3"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(idx(idx_images(0, 2, 2, {}), idx_labels(0, {})),
                             doctest::Contains("expected at least one image, got none"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(idx(idx_images(2, 0, 2, {}), idx_labels(2, {0, 1})),
                             doctest::Contains("expected images of at least 1x1 pixels, got 0x2"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(idx(idx_images(2, 2, 2, pixels), idx_labels(2, {0, 1, 1})),
                             doctest::Contains("labels.idx: header claims 2 labels, expected the "
                                               "file to end after 2 bytes of data, got 1 trailing "
                                               "bytes"),
                             shardnet::error);
    }

    // ---------------------------------------------------------------- IDX, gzipped

    TEST_CASE("idx: gzipped files give the plain files' data, recognized by content") {
        temp_dir dir;
        // 3000 images of 28x28 noise: about 2.3 MB, more than one 1 MiB read chunk and many
        // reads of the inflater's 64 KiB input buffer.
        const std::uint32_t count = 3000;
        const auto pixels = noisy_pixels(std::size_t{count} * 28 * 28);
        std::vector<std::uint8_t> label_values(count);
        for (std::size_t i = 0; i < count; ++i)
            label_values[i] = static_cast<std::uint8_t>(i * 7 % 10);
        const auto images = idx_images(count, 28, 28, pixels);
        const auto labels = idx_labels(count, label_values);
        const auto plain =
            shardnet::load_idx<float>(dir.write("images", images), dir.write("labels", labels));
        // Names do not decide: gzip data without ".gz", and a plain file named ".gz".
        const auto gzipped = shardnet::load_idx<float>(dir.write("images.idx", gzip(images)),
                                                       dir.write("labels.gz", gzip(labels)));
        REQUIRE(gzipped.size() == count);
        CHECK(gzipped.width() == 784);
        CHECK(gzipped.labels == plain.labels);
        CHECK(gzipped.num_classes == plain.num_classes);
        CHECK(std::memcmp(gzipped.features.data(), plain.features.data(),
                          plain.features.size() * sizeof(float)) == 0);
        const auto mixed = shardnet::load_idx<float>(dir.write("images.gz", gzip(images)),
                                                     dir.write("plain.gz", labels));
        CHECK(mixed.labels == plain.labels);

        // A stream that cannot seek, and a file of two gzip members back to back (`cat a.gz
        // b.gz`), which gzip -d reads as the two files joined.
        const auto split = images.size() / 3;
        pipe_buffer image_pipe(gzip(images.substr(0, split)) + gzip(images.substr(split)));
        pipe_buffer label_pipe(gzip(labels));
        std::istream image_stream(&image_pipe), label_stream(&label_pipe);
        const auto piped =
            shardnet::load_idx_from_streams<float>(image_stream, "pipe", label_stream, "labels");
        CHECK(piped.labels == plain.labels);
        CHECK(std::memcmp(piped.features.data(), plain.features.data(),
                          plain.features.size() * sizeof(float)) == 0);
    }

    TEST_CASE("idx: a truncated gzip stream says where it ends") {
        const auto images = idx_images(50, 28, 28, noisy_pixels(50 * 28 * 28));
        const auto labels = idx_labels(50, std::vector<std::uint8_t>(50, 1));
        const auto whole = gzip(images);
        REQUIRE(idx(whole, labels).size() == 50);
        // Cut inside the deflate data, inside the trailer (all IDX data is there, the CRC-32
        // and length are not), and right after the magic bytes.
        for (const std::size_t size : {whole.size() / 2, whole.size() - 4, std::size_t{2}}) {
            CAPTURE(size);
            const auto expected = shardnet::detail::concat(
                "images.idx: gzip stream truncated after ", size,
                " bytes: expected the rest of the compressed data and its CRC-32 trailer, got "
                "the end of the file");
            CHECK_THROWS_WITH_AS(idx(whole.substr(0, size), labels),
                                 doctest::Contains(expected.c_str()), shardnet::error);
        }
        // The same through a file, named by its path.
        temp_dir dir;
        const auto path = dir.write("train-images-idx3-ubyte.gz", whole.substr(0, 100));
        const auto expected = path + ": gzip stream truncated after 100 bytes";
        CHECK_THROWS_WITH_AS(shardnet::load_idx<float>(path, dir.write("labels", labels)),
                             doctest::Contains(expected.c_str()), shardnet::error);
    }

    TEST_CASE("idx: a gzip stream with a wrong CRC-32 or length is corrupted") {
        const auto images = idx_images(4, 2, 2, noisy_pixels(16));
        const auto labels = gzip(idx_labels(4, {0, 1, 2, 3}));
        REQUIRE(idx(gzip(images), labels).size() == 4);
        // The trailer: CRC-32 of the data, then its length mod 2^32, both little-endian.
        auto bad_crc = gzip(images);
        bad_crc[bad_crc.size() - 8] = static_cast<char>(bad_crc[bad_crc.size() - 8] ^ 0x01);
        CHECK_THROWS_WITH_AS(idx(bad_crc, labels),
                             doctest::Contains("images.idx: gzip data corrupted (incorrect data "
                                               "check)"),
                             shardnet::error);
        auto bad_length = gzip(images);
        bad_length[bad_length.size() - 4] =
            static_cast<char>(bad_length[bad_length.size() - 4] ^ 0x10);
        CHECK_THROWS_WITH_AS(idx(bad_length, labels),
                             doctest::Contains("images.idx: gzip data corrupted (incorrect length "
                                               "check)"),
                             shardnet::error);
        // A flipped byte inside the deflate data of a larger file.
        const auto large = idx_images(20, 28, 28, noisy_pixels(20 * 28 * 28));
        auto flipped = gzip(large);
        flipped[flipped.size() / 2] = static_cast<char>(~flipped[flipped.size() / 2]);
        CHECK_THROWS_WITH_AS(idx(flipped, gzip(idx_labels(20, std::vector<std::uint8_t>(20)))),
                             doctest::Contains("images.idx: gzip data corrupted ("),
                             shardnet::error);
    }

    TEST_CASE("idx: gzip magic bytes followed by garbage, and gzipped garbage") {
        const auto labels = idx_labels(1, {0});
        std::string garbage = "\x1f\x8b";
        for (const auto byte : noisy_pixels(200))
            garbage.push_back(static_cast<char>(byte));
        const auto message = error_of([&] { idx(garbage, labels); });
        CHECK(message.find("images.idx: gzip data corrupted (") == 0);
        CHECK(message.find("expected a valid gzip stream") != std::string::npos);
        CHECK(printable_ascii(message));
        // A valid gzip stream whose content is not IDX: the IDX checks speak.
        CHECK_THROWS_WITH_AS(idx(gzip("hello, world\n"), labels),
                             doctest::Contains("images.idx: expected IDX magic number 0x00000803 "
                                               "(images: unsigned bytes, 3 dimensions), got "
                                               "0x68656C6C (not an IDX file)"),
                             shardnet::error);
        // A second member that is garbage.
        CHECK_THROWS_WITH_AS(idx(gzip(idx_images(1, 1, 1, {7})) + "garbage", gzip(labels)),
                             doctest::Contains("images.idx: gzip data corrupted (incorrect header "
                                               "check)"),
                             shardnet::error);
    }

    TEST_CASE("idx: gzip data is checked against the header as it is inflated") {
        // 78 MB claimed (within memory, so read), 784 bytes there: found out after inflating
        // them, not by allocating. (A claim beyond memory is refused before: the pipe above.)
        const auto images = gzip(idx_images(100000, 28, 28, std::vector<std::uint8_t>(28 * 28)));
        const auto labels = gzip(idx_labels(100000, {0, 1}));
        CHECK_THROWS_WITH_AS(idx(images, labels),
                             doctest::Contains("labels.idx: truncated: header claims 100000 "
                                               "labels, expected 100000 bytes of data after "
                                               "the 8-byte header, got 2"),
                             shardnet::error);
        CHECK_THROWS_WITH_AS(idx(images, gzip(idx_labels(100000, {}))),
                             doctest::Contains("labels.idx: truncated: header claims 100000 "
                                               "labels, expected 100000 bytes of data after "
                                               "the 8-byte header, got 0"),
                             shardnet::error);
        // More data than the header claims: counted, up to a bound (a small file can inflate
        // to a thousand times its size).
        CHECK_THROWS_WITH_AS(
            idx(gzip(idx_images(1, 1, 2, {1, 2}) + "x"), gzip(idx_labels(1, {0}))),
            doctest::Contains("images.idx: header claims 1 images of 1x2 pixels, expected the "
                              "file to end after 2 bytes of data, got 1 trailing bytes"),
            shardnet::error);
        CHECK_THROWS_WITH_AS(
            idx(gzip(idx_images(1, 1, 2, {1, 2}) + std::string(3 << 20, '\0')),
                gzip(idx_labels(1, {0}))),
            doctest::Contains("expected the file to end after 2 bytes of data, got more than "
                              "1048576 trailing bytes"),
            shardnet::error);
    }

    // ---------------------------------------------------------------- synthetic

    TEST_CASE("synthetic: deterministic from the seed") {
        shardnet::synthetic_options options;
        options.samples = 500;
        options.seed = 42;
        const auto a = shardnet::make_synthetic<float>(options);
        const auto b = shardnet::make_synthetic<float>(options);
        CHECK(a.labels == b.labels);
        CHECK(std::memcmp(a.features.data(), b.features.data(),
                          a.features.size() * sizeof(float)) == 0);

        options.seed = 43;
        const auto c = shardnet::make_synthetic<float>(options);
        CHECK(a.labels != c.labels);
        CHECK(std::memcmp(a.features.data(), c.features.data(),
                          a.features.size() * sizeof(float)) != 0);

        // The same data whatever the feature type, up to rounding to float.
        options.seed = 42;
        const auto d = shardnet::make_synthetic<double>(options);
        CHECK(d.labels == a.labels);
        CHECK(static_cast<float>(d.features(17, 5)) == a.features(17, 5));
    }

    TEST_CASE("synthetic: shape options are honoured") {
        shardnet::synthetic_options options;
        options.samples = 37;
        options.width = 5;
        options.classes = 3;
        options.cluster_pairs = 1;
        options.latent_width = 8;  // more than width: allowed, just harder
        const auto data = shardnet::make_synthetic<double>(options);
        CHECK(data.size() == 37);
        CHECK(data.width() == 5);
        CHECK(data.num_classes == 3);
        CHECK_NOTHROW(shardnet::validate_dataset(data, "synthetic"));
        CHECK(std::all_of(data.features.begin(), data.features.end(),
                          [](double x) { return std::isfinite(x); }));

        options.width = 0;
        CHECK_THROWS_WITH_AS(shardnet::make_synthetic<float>(options),
                             doctest::Contains("make_synthetic: expected width > 0, got 0"),
                             shardnet::error);
        options.width = 4;
        options.separation = -1;
        CHECK_THROWS_AS(shardnet::make_synthetic<float>(options), shardnet::error);
    }

    TEST_CASE("synthetic: a data set larger than memory is refused before allocating") {
        shardnet::synthetic_options options;
        options.samples = 99999999999999;  // train_mlp --train-samples 99999999999999
        const auto message = error_of([&] { shardnet::make_synthetic<float>(options); });
        CHECK(message.find("synthetic data: 99999999999999 samples x 64 features need ") !=
              std::string::npos);
        CHECK(message.find(", only ") != std::string::npos);
        CHECK(message.find(" is available") != std::string::npos);
        CHECK_THROWS_AS(shardnet::make_synthetic<double>(options), shardnet::error);

        // A product past 2^64 must not wrap around to a small, "available" size.
        options.samples = std::size_t{1} << 40;
        options.width = std::size_t{1} << 30;
        CHECK_THROWS_WITH_AS(shardnet::make_synthetic<float>(options),
                             doctest::Contains("need more than 16 EiB"), shardnet::error);
        options.samples = std::numeric_limits<std::size_t>::max();
        options.width = 1;
        CHECK_THROWS_AS(shardnet::make_synthetic<float>(options), shardnet::error);
        // Width alone: the embedding is width x latent doubles.
        options.samples = 1;
        options.width = std::size_t{1} << 62;
        CHECK_THROWS_AS(shardnet::make_synthetic<float>(options), shardnet::error);

        // The split checks train and test together, before generating either.
        options = {};
        options.samples = 100;
        CHECK_THROWS_WITH_AS(shardnet::make_synthetic_split<float>(options, 99999999999999),
                             doctest::Contains("synthetic data: 100000000000099 samples (100 "
                                               "train + 99999999999999 test) x 64 features need"),
                             shardnet::error);
        CHECK_THROWS_AS(
            shardnet::make_synthetic_split<float>(options, std::numeric_limits<std::size_t>::max()),
            shardnet::error);

        // Small sets are unaffected.
        const auto split = shardnet::make_synthetic_split<float>(options, 50);
        CHECK(split.train.size() == 100);
        CHECK(split.test.size() == 50);
    }

    TEST_CASE("synthetic: classes are balanced") {
        shardnet::synthetic_options options;
        options.samples = 10000;
        options.width = 8;
        const auto data = shardnet::make_synthetic<float>(options);
        std::vector<std::size_t> counts(options.classes, 0);
        for (const auto label : data.labels)
            ++counts[label];
        for (const auto count : counts) {
            CHECK(count > 850);
            CHECK(count < 1150);
        }
    }

    TEST_CASE("synthetic: train and test are disjoint slices of one sequence") {
        shardnet::synthetic_options options;
        options.samples = 120;
        options.width = 16;
        const auto split = shardnet::make_synthetic_split<float>(options, 30);
        options.samples = 150;
        const auto whole = shardnet::make_synthetic<float>(options);
        REQUIRE(split.train.size() == 120);
        REQUIRE(split.test.size() == 30);
        const auto [head, tail] = shardnet::split_at(whole, 120);
        CHECK(head.labels == split.train.labels);
        CHECK(tail.labels == split.test.labels);
        CHECK(std::equal(tail.features.begin(), tail.features.end(), split.test.features.begin()));
        CHECK(std::equal(head.features.begin(), head.features.end(), split.train.features.begin()));
        // Disjoint: no test sample repeats a training sample.
        std::size_t repeats = 0;
        for (std::size_t i = 0; i < split.test.size(); ++i)
            for (std::size_t j = 0; j < split.train.size(); ++j)
                repeats += split.test.features(i, 0) == split.train.features(j, 0);
        CHECK(repeats == 0);
    }

    TEST_CASE("synthetic: beyond a linear model, within reach of a non-linear one") {
        shardnet::synthetic_options options;
        options.samples = 2000;
        options.width = 32;
        const auto split = shardnet::make_synthetic_split<double>(options, 400);
        const auto& train = split.train;
        const auto& test = split.test;
        const std::size_t width = train.width(), classes = train.num_classes;

        // Least-squares linear classifier on one-hot targets (with a bias column), solved by
        // Gaussian elimination on the ridge-regularized normal equations.
        const std::size_t n = width + 1;
        std::vector<double> a(n * n, 0.0), b(n * classes, 0.0);
        for (std::size_t s = 0; s < train.size(); ++s) {
            std::vector<double> x(n, 1.0);
            for (std::size_t j = 0; j < width; ++j)
                x[j] = train.features(s, j);
            for (std::size_t i = 0; i < n; ++i) {
                for (std::size_t j = 0; j < n; ++j)
                    a[i * n + j] += x[i] * x[j];
                b[i * classes + train.labels[s]] += x[i];
            }
        }
        for (std::size_t i = 0; i < n; ++i)
            a[i * n + i] += 1e-3;
        for (std::size_t col = 0; col < n; ++col)
            for (std::size_t row = col + 1; row < n; ++row) {
                const double factor = a[row * n + col] / a[col * n + col];
                for (std::size_t j = col; j < n; ++j)
                    a[row * n + j] -= factor * a[col * n + j];
                for (std::size_t k = 0; k < classes; ++k)
                    b[row * classes + k] -= factor * b[col * classes + k];
            }
        std::vector<double> w(n * classes, 0.0);
        for (std::size_t row = n; row-- > 0;)
            for (std::size_t k = 0; k < classes; ++k) {
                double sum = b[row * classes + k];
                for (std::size_t j = row + 1; j < n; ++j)
                    sum -= a[row * n + j] * w[j * classes + k];
                w[row * classes + k] = sum / a[row * n + row];
            }

        std::size_t linear_correct = 0, neighbour_correct = 0;
        for (std::size_t s = 0; s < test.size(); ++s) {
            std::vector<double> score(classes, 0.0);
            for (std::size_t k = 0; k < classes; ++k) {
                score[k] = w[width * classes + k];
                for (std::size_t j = 0; j < width; ++j)
                    score[k] += test.features(s, j) * w[j * classes + k];
            }
            const auto predicted = static_cast<std::size_t>(
                std::max_element(score.begin(), score.end()) - score.begin());
            linear_correct += predicted == test.labels[s];

            // 1-nearest neighbour: a non-linear classifier with no training to go wrong.
            // Raw rows: element access through xtensor is slow in a Debug build.
            double best = std::numeric_limits<double>::infinity();
            std::uint32_t nearest = 0;
            const double* query = test.features.data() + s * width;
            for (std::size_t t = 0; t < train.size(); ++t) {
                const double* candidate = train.features.data() + t * width;
                double d2 = 0;
                for (std::size_t j = 0; j < width; ++j)
                    d2 += (query[j] - candidate[j]) * (query[j] - candidate[j]);
                if (d2 < best) {
                    best = d2;
                    nearest = train.labels[t];
                }
            }
            neighbour_correct += nearest == test.labels[s];
        }
        const double linear =
            static_cast<double>(linear_correct) / static_cast<double>(test.size());
        const double neighbour =
            static_cast<double>(neighbour_correct) / static_cast<double>(test.size());
        INFO("linear accuracy ", linear, ", 1-NN accuracy ", neighbour);
        CHECK(linear < 0.55);  // the bound (classes + 1) / (2 classes) of any linear model
        CHECK(neighbour > 0.9);
    }

    // ---------------------------------------------------------------- standardizer

    TEST_CASE("standardizer: mean 0 and std 1 per feature, constant features stay finite") {
        shardnet::matrix<float> features({500, 4});
        for (std::size_t i = 0; i < 500; ++i) {
            const double u = shardnet::uniform_at({7, 0, 0}, i, 0);
            features(i, 0) = static_cast<float>(1000.0 + 50.0 * u);  // offset, scale
            features(i, 1) = static_cast<float>(1e-3 * shardnet::normal_at({7, 0, 0}, i, 1));
            features(i, 2) = 3.25f;                      // constant
            features(i, 3) = static_cast<float>(i % 2);  // two values
        }
        const auto fitted = shardnet::standardizer<float>::fit(features);
        CHECK(fitted.width() == 4);
        CHECK(fitted.inv_std(2) == 1.0f);
        auto standardized = features;
        fitted.apply(standardized);
        for (std::size_t j = 0; j < 4; ++j) {
            double sum = 0, squares = 0;
            for (std::size_t i = 0; i < 500; ++i)
                sum += standardized(i, j);
            const double mean = sum / 500;
            for (std::size_t i = 0; i < 500; ++i)
                squares += (standardized(i, j) - mean) * (standardized(i, j) - mean);
            CHECK(std::abs(mean) < 1e-4);
            if (j == 2) {
                CHECK(squares == 0.0);
            } else {
                CHECK(std::sqrt(squares / 500) == doctest::Approx(1.0).epsilon(1e-4));
            }
        }
        // Data the statistics were not fitted on: a different constant stays finite.
        shardnet::matrix<float> other({1, 4}, 0.0f);
        other(0, 2) = 1e6f;
        fitted.apply(other);
        CHECK(std::isfinite(other(0, 2)));
        CHECK(other(0, 2) == 1e6f - 3.25f);
    }

    TEST_CASE("standardizer: a constant double column with a mean that rounds") {
        shardnet::matrix<double> features({1001, 1}, 0.1);
        const auto fitted = shardnet::standardizer<double>::fit(features);
        CHECK(fitted.inv_std(0) == 1.0);
        auto standardized = features;
        fitted.apply(standardized);
        CHECK(std::abs(standardized(0, 0)) < 1e-15);
    }

    TEST_CASE("standardizer: bad input") {
        shardnet::matrix<float> empty({0, 3});
        CHECK_THROWS_WITH_AS(shardnet::standardizer<float>::fit(empty),
                             doctest::Contains("expected at least one sample, got 0 rows"),
                             shardnet::error);
        shardnet::matrix<float> with_nan({2, 2}, 1.0f);
        with_nan(1, 1) = NAN;
        CHECK_THROWS_WITH_AS(shardnet::standardizer<float>::fit(with_nan),
                             doctest::Contains("row 1, feature 1: expected a finite value"),
                             shardnet::error);
        const auto fitted =
            shardnet::standardizer<float>::fit(shardnet::matrix<float>({2, 3}, 1.f));
        shardnet::matrix<float> narrow({2, 2}, 0.0f);
        CHECK_THROWS_WITH_AS(fitted.apply(narrow),
                             doctest::Contains("standardizer::apply: expected 3 features (the "
                                               "width the standardizer was fitted on), got 2"),
                             shardnet::error);
    }

    TEST_CASE("standardizer: messages name the data set they are about") {
        const auto fitted =
            shardnet::standardizer<float>::fit(shardnet::matrix<float>({2, 4}, 1.f));
        shardnet::matrix<float> narrow({2, 3}, 0.0f);
        CHECK_THROWS_WITH_AS(fitted.apply(narrow, "test set 'x.csv'"),
                             doctest::Contains("standardizer: test set 'x.csv': expected 4 "
                                               "features (the width the standardizer was fitted "
                                               "on), got 3"),
                             shardnet::error);
        shardnet::matrix<float> with_nan({2, 2}, 1.0f);
        with_nan(1, 0) = INFINITY;
        CHECK_THROWS_WITH_AS(
            shardnet::standardizer<float>::fit(with_nan, "training set 'a.csv'"),
            doctest::Contains("standardizer: training set 'a.csv': row 1, feature 0: expected a "
                              "finite value, got inf"),
            shardnet::error);
        CHECK_THROWS_WITH_AS(
            shardnet::standardizer<float>::fit(shardnet::matrix<float>({0, 2}), "training set"),
            doctest::Contains("standardizer: training set: expected at least one sample, got 0 "
                              "rows"),
            shardnet::error);
        shardnet::matrix<float> right({1, 4}, 1.0f);
        CHECK_NOTHROW(fitted.apply(right, "test set 'x.csv'"));
    }

    // ---------------------------------------------------------------- dataset

    TEST_CASE("dataset: validate_labels against the network's output width") {
        const auto data = csv("0,1\n3,2\n9,3\n");
        CHECK_NOTHROW(shardnet::validate_labels(data, 10, "train.csv"));
        CHECK_THROWS_WITH_AS(shardnet::validate_labels(data, 5, "train.csv"),
                             doctest::Contains("train.csv: sample 2: expected a label in [0, 5) "
                                               "(the network's output width), got 9"),
                             shardnet::error);
        auto broken = data;
        broken.labels.pop_back();
        CHECK_THROWS_WITH_AS(shardnet::validate_labels(broken, 10, "mine"),
                             doctest::Contains("mine: expected one label per sample (3 feature "
                                               "rows), got 2 labels"),
                             shardnet::error);
        broken = data;
        broken.num_classes = 4;
        CHECK_THROWS_WITH_AS(shardnet::validate_dataset(broken, "mine"),
                             doctest::Contains("mine: sample 2: expected a label in [0, 4) "
                                               "(num_classes), got 9"),
                             shardnet::error);
    }

    TEST_CASE("dataset: subset and split_at") {
        const auto data = csv("0,1,10\n1,2,20\n2,3,30\n1,4,40\n");
        const auto [first, rest] = shardnet::split_at(data, 3);
        CHECK(first.size() == 3);
        CHECK(rest.size() == 1);
        CHECK(rest.num_classes == 3);  // kept from the whole set
        CHECK(rest.features(0, 1) == 40.0f);
        CHECK(shardnet::subset(data, 1, 1).empty());
        CHECK(shardnet::subset(data, 1, 1).width() == 2);
        CHECK_THROWS_WITH_AS(shardnet::subset(data, 2, 5),
                             doctest::Contains("expected a range within [0, 4], got [2, 5)"),
                             shardnet::error);
        const dataset<float> none;
        CHECK(none.size() == 0);
        CHECK(none.width() == 0);
    }
}
