// A machine description for the cost model: what one rank computes per second at each GEMM
// shape, what a message costs between ranks, and how much memory a rank has. Read from and
// written to a small text file, so that a cluster can be described once and planned for offline.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/precision.hpp"

namespace shardnet::cost {

/// The three products of a dense layer differ in which operand is transposed, and the GEMM's
/// rate differs with it (packing of Bᵀ, reuse of the panels): each has its own measured rates.
enum class gemm_kind {
    forward,          ///< z = x · w: gemm(no, no), m = batch, n = out_local, k = in_local
    input_gradient,   ///< dx = dz · wᵀ: gemm(no, yes), m = batch, n = in_local, k = out_local
    weight_gradient,  ///< dw = xᵀ · dz: gemm(yes, no), m = in_local, n = out_local, k = batch
};

inline constexpr std::string_view to_string(gemm_kind k) {
    return k == gemm_kind::forward          ? "forward"
           : k == gemm_kind::input_gradient ? "input_gradient"
                                            : "weight_gradient";
}

/// One measured GEMM rate: C (m x n) from a depth of k, at `gflops` (2·m·n·k / time / 1e9),
/// with fp32 operands (shardnet::gemm<float>) or bf16 ones (gemm_bf16, fp32 accumulation).
struct gemm_rate {
    gemm_kind kind = gemm_kind::forward;
    std::size_t m = 0, n = 0, k = 0;
    double gflops = 0;
    precision operands = precision::fp32;
    friend bool operator==(const gemm_rate&, const gemm_rate&) = default;
};

/// What the cost model knows of a machine. Rates are per rank; a rank is one process (one core
/// in the examples here).
///
/// The network is described by the alpha-beta-gamma model of Thakur, Rabenseifner and Gropp
/// (2005): a message of n bytes between two ranks takes latency_s + n / bandwidth_bytes_per_s,
/// and a reduction costs n / reduce_bytes_per_s of local arithmetic (0: not counted).
struct machine {
    std::string name = "unnamed";
    double latency_s = 5e-6;                ///< alpha: per message
    double bandwidth_bytes_per_s = 12.5e9;  ///< 1 / beta: point to point, per rank
    double reduce_bytes_per_s = 0;          ///< 1 / gamma: local reduction; 0 = free
    double memory_bytes_per_s = 0;  ///< element-wise passes (activations, optimizer); 0 = free
    double memory_bytes = 16.0 * (1ull << 30);  ///< capacity per rank
    double gemm_gflops = 200;                   ///< rate for shapes when no table row applies
    std::vector<gemm_rate> gemm_table;          ///< measured rates; nearest shape wins

    /// Seconds for one GEMM of this kind and shape, with `operands` of that precision, on one
    /// rank. A product with a zero extent costs nothing (an empty shard).
    ///
    /// The rate is the table's row of the same precision and kind nearest in log(m), log(n),
    /// log(k) (rows of that precision and any kind if none of this kind). A bf16 product with no
    /// bf16 row takes the fp32 rate of its shape: a machine described without bf16 figures is
    /// assumed no faster in bf16, which never flatters a bf16 plan. With no row at all,
    /// gemm_gflops. Why nearest in log space rather than an interpolation: rates jump with the
    /// blocking (a shape that fills one more micro-tile or one more KC panel), so interpolating
    /// between two measured shapes invents a smooth curve that is no more right; calibration
    /// measures the shapes a network actually runs, which then match exactly.
    double gemm_seconds(gemm_kind kind, std::size_t m, std::size_t n, std::size_t k,
                        precision operands = precision::fp32) const {
        if (m == 0 || n == 0 || k == 0) return 0;
        const double flops =
            2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
        return flops / (gemm_gflops_at(kind, m, n, k, operands) * 1e9);
    }

    /// The rate gemm_seconds uses for this kind, shape and precision (see there).
    double gemm_gflops_at(gemm_kind kind, std::size_t m, std::size_t n, std::size_t k,
                          precision operands = precision::fp32) const {
        const gemm_rate* best = nullptr;
        double best_distance = std::numeric_limits<double>::infinity();
        for (int pass = 0; pass < 2 && !best; ++pass)
            for (const gemm_rate& r : gemm_table) {
                if (r.operands != operands || (pass == 0 && r.kind != kind)) continue;
                const double d = log_distance(r.m, m) + log_distance(r.n, n) + log_distance(r.k, k);
                if (d < best_distance) best_distance = d, best = &r;
            }
        if (best) return best->gflops;
        return operands == precision::fp32 ? gemm_gflops
                                           : gemm_gflops_at(kind, m, n, k, precision::fp32);
    }

    friend bool operator==(const machine&, const machine&) = default;

  private:
    static double log_distance(std::size_t a, std::size_t b) {
        const double d = std::log(static_cast<double>(a)) - std::log(static_cast<double>(b));
        return d * d;
    }
};

/// The built-in `cluster`: ranks joined by 100 Gb/s Ethernet (12.5 GB/s, 5 us per message),
/// 200 GFLOP/s float per rank at every shape, 16 GiB per rank. Reductions and element-wise
/// passes are not counted (the description gives no figure for them).
inline machine cluster_machine() {
    machine m;
    m.name = "cluster";
    m.latency_s = 5e-6;
    m.bandwidth_bytes_per_s = 12.5e9;
    m.gemm_gflops = 200;
    m.memory_bytes = 16.0 * (1ull << 30);
    return m;
}

namespace detail {

inline std::string exact_decimal(double v) {
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), v);
    return std::string(buffer, result.ptr);
}

/// The one keyword that opens a machine file, with its format version.
inline constexpr std::string_view machine_file_magic = "shardnet-machine";
inline constexpr int machine_file_version = 1;

}  // namespace detail

/// Writes `m` in the machine file format (docs/scaling.md): a header line, one `key value` line
/// per field and one `gemm KIND M N K GFLOPS` line per measured fp32 rate (`gemm_bf16 ...` for
/// a bf16 one). Numbers are written in
/// their shortest exact form, so read_machine gives back an equal machine.
inline std::string write_machine(const machine& m) {
    using detail::exact_decimal;
    std::ostringstream out;
    out << detail::machine_file_magic << ' ' << detail::machine_file_version << '\n'
        << "# alpha-beta-gamma network model; rates per rank (docs/scaling.md)\n"
        << "name " << m.name << '\n'
        << "latency_s " << exact_decimal(m.latency_s) << '\n'
        << "bandwidth_bytes_per_s " << exact_decimal(m.bandwidth_bytes_per_s) << '\n'
        << "reduce_bytes_per_s " << exact_decimal(m.reduce_bytes_per_s) << '\n'
        << "memory_bytes_per_s " << exact_decimal(m.memory_bytes_per_s) << '\n'
        << "memory_bytes " << exact_decimal(m.memory_bytes) << '\n'
        << "gemm_gflops " << exact_decimal(m.gemm_gflops) << '\n';
    for (const gemm_rate& r : m.gemm_table)
        out << (r.operands == precision::bf16 ? "gemm_bf16 " : "gemm ") << to_string(r.kind) << ' '
            << r.m << ' ' << r.n << ' ' << r.k << ' ' << exact_decimal(r.gflops) << '\n';
    return out.str();
}

/// Parses the machine file format. `source` names the text in messages (a file name).
/// Blank lines and lines starting with # are ignored; every field but the gemm rows is
/// required exactly once.
/// @throws error naming the source, the line, what was expected and what was got.
inline machine read_machine(std::string_view text, const std::string& source) {
    using shardnet::detail::concat;
    machine m;
    m.gemm_table.clear();
    std::istringstream in{std::string(text)};
    std::string line;
    std::size_t number = 0;
    bool header = false;
    std::vector<std::string> seen;
    auto fail = [&](const auto&... parts) -> void {
        throw error(concat("machine file '", source, "', line ", number, ": ", parts...));
    };
    auto positive = [&](std::string_view key, const std::string& word, bool zero_ok) {
        double v = 0;
        const auto r = std::from_chars(word.data(), word.data() + word.size(), v);
        if (r.ec != std::errc{} || r.ptr != word.data() + word.size() || !std::isfinite(v) ||
            v < 0 || (!zero_ok && v == 0))
            fail(key, ": expected a finite number ", zero_ok ? "of at least 0" : "above 0",
                 ", got '", word, "'");
        return v;
    };
    auto count = [&](std::string_view key, std::string_view what, const std::string& word) {
        std::size_t v = 0;
        const auto r = std::from_chars(word.data(), word.data() + word.size(), v);
        if (r.ec != std::errc{} || r.ptr != word.data() + word.size() || v == 0)
            fail(key, ": expected ", what, " as a whole number above 0, got '", word, "'");
        return v;
    };
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        std::istringstream words(line);
        std::vector<std::string> w;
        for (std::string word; words >> word;)
            w.push_back(word);
        if (w.empty() || w[0][0] == '#') continue;
        if (!header) {
            if (w[0] != detail::machine_file_magic)
                fail("expected '", detail::machine_file_magic, " ", detail::machine_file_version,
                     "' first, got '", line, "'");
            if (w.size() != 2 || w[1] != std::to_string(detail::machine_file_version))
                fail("expected format version ", detail::machine_file_version, ", got '", line,
                     "'");
            header = true;
            continue;
        }
        const std::string& key = w[0];
        if (key == "gemm" || key == "gemm_bf16") {
            if (w.size() != 6)
                fail("expected '", key, " KIND M N K GFLOPS' (6 words), got ", w.size(),
                     " words: '", line, "'");
            gemm_rate r;
            r.operands = key == "gemm" ? precision::fp32 : precision::bf16;
            if (w[1] == "forward")
                r.kind = gemm_kind::forward;
            else if (w[1] == "input_gradient")
                r.kind = gemm_kind::input_gradient;
            else if (w[1] == "weight_gradient")
                r.kind = gemm_kind::weight_gradient;
            else
                fail(key, ": expected a kind of forward, input_gradient or weight_gradient, got '",
                     w[1], "'");
            r.m = count(key, "M", w[2]);
            r.n = count(key, "N", w[3]);
            r.k = count(key, "K", w[4]);
            r.gflops = positive(key, w[5], false);
            m.gemm_table.push_back(r);
            continue;
        }
        for (const std::string& s : seen)
            if (s == key) fail("'", key, "' given twice");
        if (w.size() != 2) fail("expected '", key, " VALUE' (2 words), got ", w.size(), " words");
        if (key == "name")
            m.name = w[1];
        else if (key == "latency_s")
            m.latency_s = positive(key, w[1], true);
        else if (key == "bandwidth_bytes_per_s")
            m.bandwidth_bytes_per_s = positive(key, w[1], false);
        else if (key == "reduce_bytes_per_s")
            m.reduce_bytes_per_s = positive(key, w[1], true);
        else if (key == "memory_bytes_per_s")
            m.memory_bytes_per_s = positive(key, w[1], true);
        else if (key == "memory_bytes")
            m.memory_bytes = positive(key, w[1], false);
        else if (key == "gemm_gflops")
            m.gemm_gflops = positive(key, w[1], false);
        else
            fail(
                "expected one of name, latency_s, bandwidth_bytes_per_s, reduce_bytes_per_s, "
                "memory_bytes_per_s, memory_bytes, gemm_gflops, gemm, gemm_bf16; got '",
                key, "'");
        seen.push_back(key);
    }
    if (!header)
        throw error(concat("machine file '", source, "': expected '", detail::machine_file_magic,
                           " ", detail::machine_file_version, "' first, got an empty file"));
    for (const char* key : {"name", "latency_s", "bandwidth_bytes_per_s", "reduce_bytes_per_s",
                            "memory_bytes_per_s", "memory_bytes", "gemm_gflops"}) {
        bool found = false;
        for (const std::string& s : seen)
            found = found || s == key;
        if (!found)
            throw error(
                concat("machine file '", source, "': expected a line '", key, " VALUE', got none"));
    }
    return m;
}

/// Reads a machine file. @throws error if it cannot be read or does not parse (read_machine).
inline machine load_machine(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(shardnet::detail::concat("machine file '", path, "' cannot be opened"));
    std::ostringstream text;
    text << in.rdbuf();
    return read_machine(text.str(), path);
}

/// `cluster` (the built-in description) or the path of a machine file.
inline machine machine_named(const std::string& name_or_path) {
    return name_or_path == "cluster" ? cluster_machine() : load_machine(name_or_path);
}

}  // namespace shardnet::cost
