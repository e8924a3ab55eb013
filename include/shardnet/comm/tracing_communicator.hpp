// A communicator that forwards to another and counts every collective: calls and elements
// per kind. Tests assert the exact schedule of a layer with it; users print it to see traffic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <ostream>
#include <span>
#include <type_traits>
#include <utility>

#include "shardnet/comm/async.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/bfloat16.hpp"

namespace shardnet {

/// Calls and elements of one kind of collective.
struct collective_count {
    std::size_t calls = 0;
    std::size_t elements = 0;  ///< see traffic for what an element counts
    std::size_t bytes = 0;
    friend bool operator==(const collective_count&, const collective_count&) = default;
};

/// What a group did. Arithmetic traffic (float, double buffers) is counted per kind;
/// `elements` is the size of the group-wide buffer the collective works on: n for all_reduce
/// and broadcast, the gathered total for all_gather, the reduced input for reduce_scatter.
/// Control traffic (std::int64_t flags and sizes, char messages: error agreement and
/// configuration checks) is counted apart, so schedules of layers stay readable.
struct traffic {
    collective_count all_reduce;
    collective_count all_gather;
    collective_count reduce_scatter;
    collective_count broadcast;
    collective_count control;
    std::size_t barriers = 0;

    /// Arithmetic collectives of every kind together.
    std::size_t arithmetic_calls() const {
        return all_reduce.calls + all_gather.calls + reduce_scatter.calls + broadcast.calls;
    }
    friend bool operator==(const traffic&, const traffic&) = default;
    friend std::ostream& operator<<(std::ostream& out, const traffic& t) {
        auto line = [&](const char* name, const collective_count& c) {
            out << "  " << name << ": " << c.calls << " calls, " << c.elements << " elements, "
                << c.bytes << " bytes\n";
        };
        line("all_reduce    ", t.all_reduce);
        line("all_gather    ", t.all_gather);
        line("reduce_scatter", t.reduce_scatter);
        line("broadcast     ", t.broadcast);
        line("control       ", t.control);
        return out << "  barriers: " << t.barriers << "\n";
    }
};

/// Forwards every collective to `Inner` and counts it. Copies share their counters; a split
/// gives the sub-group counters of its own.
template <communicator Inner>
class tracing_communicator {
  public:
    explicit tracing_communicator(Inner inner = Inner{})
        : inner_(std::move(inner)), counts_(std::make_shared<traffic>()) {}

    /// What this group did since construction or the last reset().
    const traffic& counts() const { return *counts_; }
    void reset() { *counts_ = traffic{}; }
    Inner& inner() { return inner_; }

    std::size_t rank() const { return inner_.rank(); }
    std::size_t size() const { return inner_.size(); }
    void barrier() {
        ++counts_->barriers;
        inner_.barrier();
    }
    tracing_communicator split(int color, int key) const {
        return tracing_communicator(inner_.split(color, key));
    }

    template <class T>
    void all_reduce(T* data, std::size_t n, reduce_op op) {
        count<T>(counts_->all_reduce, n);
        inner_.all_reduce(data, n, op);
    }
    template <class T>
    auto all_reduce_async(T* data, std::size_t n, reduce_op op) {
        count<T>(counts_->all_reduce, n);
        return start_all_reduce(inner_, data, n, op);
    }
    template <class T>
    void broadcast(T* data, std::size_t n, std::size_t root) {
        count<T>(counts_->broadcast, n);
        inner_.broadcast(data, n, root);
    }
    template <class T>
    void all_gather(const T* in, std::size_t n, T* out) {
        count<T>(counts_->all_gather, n * size());
        inner_.all_gather(in, n, out);
    }
    template <class T>
    void all_gather(const T* in, T* out, std::span<const std::size_t> counts) {
        count<T>(counts_->all_gather,
                 std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
        inner_.all_gather(in, out, counts);
    }
    template <class T>
    void reduce_scatter(const T* in, T* out, std::span<const std::size_t> counts) {
        count<T>(counts_->reduce_scatter,
                 std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
        inner_.reduce_scatter(in, out, counts);
    }

  private:
    template <class T>
    void count(collective_count& kind, std::size_t n) {
        // bfloat16 activations are data too (bf16 mixed precision gathers them).
        collective_count& c =
            std::is_floating_point_v<T> || std::is_same_v<T, bfloat16> ? kind : counts_->control;
        ++c.calls;
        c.elements += n;
        c.bytes += n * sizeof(T);
    }

    Inner inner_;
    std::shared_ptr<traffic> counts_;
};

}  // namespace shardnet
