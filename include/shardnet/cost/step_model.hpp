// A training step's predicted time on a grid of D replicas x R x C model ranks: per layer its
// three local GEMMs, every collective with its group and element count, the element-wise
// passes, and the memory a rank needs. Communication is never assumed hidden behind
// computation: the library overlaps only the data-parallel gradient reduction, and only when
// asked, so the model adds every term (docs/scaling.md writes each one out).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/precision.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/cost/collective_cost.hpp"
#include "shardnet/cost/machine.hpp"
#include "shardnet/kernels/reproducible_sum.hpp"

namespace shardnet::cost {

/// How a layer's W (in x out) is split over the model group (docs/design.md).
enum class partition_kind { column, row, replicated, block2d };

inline constexpr std::string_view to_string(partition_kind k) {
    return k == partition_kind::column       ? "column"
           : k == partition_kind::row        ? "row"
           : k == partition_kind::replicated ? "replicated"
                                             : "block2d";
}

/// Parses a partition name as train_mlp spells it. @throws error naming what was got.
inline partition_kind parse_partition(std::string_view name) {
    for (partition_kind k : {partition_kind::column, partition_kind::row,
                             partition_kind::replicated, partition_kind::block2d})
        if (name == to_string(k)) return k;
    throw error(shardnet::detail::concat(
        "expected a partition of column, row, replicated or block2d, got '", name, "'"));
}

/// block2d's two orientations. a: input split over the grid rows (block i of R), output over
/// the grid columns (block j of C). b: the transpose. A block2d layer right after a block2d
/// layer of orientation a takes b and vice versa, otherwise a, so that consecutive 2D layers
/// need no conversion between them.
enum class orientation { a, b };

/// What each model rank holds of a batch x n activation.
enum class flow_layout {
    replicated,  ///< all n features
    flat,        ///< block r of R·C (the 1D "sharded" layout), r = i·C + j
    over_rows,   ///< block i of R, the same on the C ranks of grid row i
    over_cols,   ///< block j of C, the same on the R ranks of grid column j
};

inline constexpr std::string_view to_string(flow_layout l) {
    return l == flow_layout::replicated  ? "replicated"
           : l == flow_layout::flat      ? "sharded"
           : l == flow_layout::over_rows ? "sharded over grid rows"
                                         : "sharded over grid columns";
}

/// D replicas x R rows x C columns of model ranks. 1D partitions use all R·C model ranks as one
/// group, so for them only R·C matters.
struct world_grid {
    std::size_t data = 1, rows = 1, cols = 1;
    std::size_t model() const { return rows * cols; }
    std::size_t ranks() const { return data * rows * cols; }
    friend bool operator==(const world_grid&, const world_grid&) = default;
};

/// The network and the step it trains.
struct network_shape {
    std::vector<std::size_t> widths;  ///< input, hidden..., output
    std::size_t batch = 0;            ///< global batch; a replica takes ceil(batch / D) rows
    std::size_t optimizer_slots = 2;  ///< state copies per parameter: SGD momentum 1, Adam 2
    std::size_t element_bytes = 4;    ///< float: weights, gradients, optimizer state, activations
    /// fp32, or bf16 mixed precision (core/precision.hpp, float only): the GEMMs at the
    /// machine's bf16 rates, activations gathered forward and partial sums all-reduced in 2
    /// bytes, and the layers' bf16 copies (weights, input, output, output gradient) in memory
    /// and in the element-wise passes. Gradients all-reduced over the replicas stay fp32.
    precision compute = precision::fp32;
    /// dense_options::reproducible_across: 0, or N for sums over the model group that are the
    /// same bits on 1 .. N ranks (kernels/reproducible_sum.hpp): row partitions' forward and
    /// column partitions' input-gradient products run chunk by chunk, and their sums travel as
    /// 8-byte integers after an all-reduce of their largest value. Not with block2d, nor on a
    /// model group of more than N ranks.
    std::size_t reproducible_across = 0;
    /// optimizer_options::clip_norm > 0: the global gradient norm (optimizer::global_norm)
    /// reads every local gradient twice more and takes three all-reduces of one value over the
    /// model group; a finite norm proves the gradients finite, so the finite-gradient flag's
    /// all-reduce is not sent.
    bool clips_gradients = false;

    std::size_t layers() const { return widths.size() - 1; }
    /// Rows per replica, as train_mlp splits the batch.
    std::size_t replica_batch(std::size_t data) const { return (batch + data - 1) / data; }
};

/// @throws error if the network or grid cannot be planned, naming what was expected.
inline void check_shape(const network_shape& net, const world_grid& grid) {
    using shardnet::detail::concat;
    if (net.widths.size() < 2)
        throw error(concat("expected at least 2 widths (input, output), got ", net.widths.size()));
    for (std::size_t i = 0; i < net.widths.size(); ++i)
        if (net.widths[i] == 0) throw error(concat("width ", i, ": expected at least 1, got 0"));
    if (net.batch == 0) throw error("batch: expected at least 1, got 0");
    if (grid.data == 0 || grid.rows == 0 || grid.cols == 0)
        throw error(concat("grid: expected every extent at least 1, got ", grid.data, "x",
                           grid.rows, "x", grid.cols));
    if (net.compute == precision::bf16 && net.element_bytes != 4)
        throw error(concat("bf16 precision: expected 4-byte (float) elements, got ",
                           net.element_bytes, "-byte ones"));
    if (net.reproducible_across != 0 && grid.model() > net.reproducible_across)
        throw error(concat("reproducible across at most ", net.reproducible_across,
                           " ranks: expected a model group of at most that many, got ",
                           grid.model(), " (", grid.rows, "x", grid.cols, ")"));
}

/// One local product: its kind, shape, operands' precision and predicted time on the largest
/// shard. A reproducible sum's product is one call per chunk of its depth.
struct gemm_call {
    gemm_kind kind = gemm_kind::forward;
    std::size_t m = 0, n = 0, k = 0;
    double seconds = 0;
    precision operands = precision::fp32;
};

/// When a collective happens in the step, which determines whom it waits for.
enum class step_phase { convert_forward, forward, convert_backward, backward, data_parallel, loss };

inline constexpr std::string_view to_string(step_phase p) {
    switch (p) {
        case step_phase::convert_forward:
            return "convert_forward";
        case step_phase::forward:
            return "forward";
        case step_phase::convert_backward:
            return "convert_backward";
        case step_phase::backward:
            return "backward";
        case step_phase::data_parallel:
            return "data_parallel";
        case step_phase::loss:
            return "loss";
    }
    return "?";
}

enum class collective_kind { all_reduce, all_gather };

/// One collective of a step: over `group` ranks, on a buffer of `elements` (n for an
/// all-reduce, the gathered total for an all-gather: what tracing_communicator counts) of
/// `element_bytes` each (2 for bf16, 8 for a reproducible sum's integers).
struct collective_call {
    collective_kind kind = collective_kind::all_reduce;
    step_phase phase = step_phase::forward;
    std::size_t group = 1;
    std::size_t elements = 0;
    std::size_t element_bytes = 4;
    bool integers = false;  ///< 64-bit integers (a reproducible sum), not floating-point values
    collective_cost cost;

    std::size_t bytes() const { return elements * element_bytes; }
};

/// One layer of a predicted step, on the rank with the largest blocks (the others wait for it
/// at the next collective).
struct layer_prediction {
    partition_kind partition = partition_kind::column;
    orientation orient = orientation::a;  ///< block2d only
    std::size_t in = 0, out = 0, local_rows = 0, local_cols = 0, local_bias = 0;
    flow_layout input = flow_layout::replicated, output = flow_layout::replicated;
    std::vector<gemm_call> gemms;
    /// The conversion before the layer, its own collectives, its gradients' all-reduce over the
    /// replicas (and, for the last layer, the conversion of its output for the loss).
    std::vector<collective_call> collectives;
    double elementwise_s = 0;  ///< bias, activation and optimizer passes
    double memory_bytes = 0;   ///< parameters, gradients, optimizer state and activations

    double gemm_s() const {
        double s = 0;
        for (const auto& g : gemms)
            s += g.seconds;
        return s;
    }
    /// Collectives of a phase (all of them without an argument).
    double communication_s() const {
        double s = 0;
        for (const auto& c : collectives)
            s += c.cost.seconds;
        return s;
    }
    double communication_s(step_phase phase) const {
        double s = 0;
        for (const auto& c : collectives)
            if (c.phase == phase) s += c.cost.seconds;
        return s;
    }
    double seconds() const { return gemm_s() + communication_s() + elementwise_s; }
};

/// A whole step.
struct step_prediction {
    world_grid grid;
    std::size_t replica_batch = 0, global_batch = 0;
    std::vector<layer_prediction> layers;
    std::vector<collective_call> step_collectives;  ///< loss and bookkeeping
    double seconds = 0;
    double memory_bytes = 0;

    double samples_per_s() const {
        return seconds > 0 ? static_cast<double>(global_batch) / seconds : 0.0;
    }
};

namespace detail {

inline std::size_t ceil_div(std::size_t a, std::size_t b) {
    return (a + b - 1) / b;
}

/// Layouts that are the same thing on this grid are made one, so that a conversion between
/// them is free: over a grid dimension of extent 1 nothing is split, and a 1 x C grid's
/// columns are its flat 1D order (likewise R x 1).
inline flow_layout normalized(flow_layout l, const world_grid& g) {
    if (g.model() == 1) return flow_layout::replicated;
    switch (l) {
        case flow_layout::over_rows:
            return g.rows == 1 ? flow_layout::replicated : (g.cols == 1 ? flow_layout::flat : l);
        case flow_layout::over_cols:
            return g.cols == 1 ? flow_layout::replicated : (g.rows == 1 ? flow_layout::flat : l);
        default:
            return l;
    }
}

/// How many ranks a layout splits the features over.
inline std::size_t split_over(flow_layout l, const world_grid& g) {
    switch (normalized(l, g)) {
        case flow_layout::replicated:
            return 1;
        case flow_layout::flat:
            return g.model();
        case flow_layout::over_rows:
            return g.rows;
        case flow_layout::over_cols:
            return g.cols;
    }
    return 1;
}

/// Features of n this rank holds (the largest block).
inline std::size_t held(flow_layout l, const world_grid& g, std::size_t n) {
    return ceil_div(n, split_over(l, g));
}

inline flow_layout input_of(partition_kind k, orientation o) {
    switch (k) {
        case partition_kind::column:
        case partition_kind::replicated:
            return flow_layout::replicated;
        case partition_kind::row:
            return flow_layout::flat;
        case partition_kind::block2d:
            return o == orientation::a ? flow_layout::over_rows : flow_layout::over_cols;
    }
    return flow_layout::replicated;
}

inline flow_layout output_of(partition_kind k, orientation o) {
    switch (k) {
        case partition_kind::column:
            return flow_layout::flat;
        case partition_kind::row:
        case partition_kind::replicated:
            return flow_layout::replicated;
        case partition_kind::block2d:
            return o == orientation::a ? flow_layout::over_cols : flow_layout::over_rows;
    }
    return flow_layout::replicated;
}

// A group of one rank sends nothing (the communicators return at once): such calls are not
// listed, so that the list is what crosses between ranks.
inline void add_all_reduce(std::vector<collective_call>& out, const machine& m, step_phase phase,
                           std::size_t group, std::size_t elements, std::size_t element_bytes,
                           bool integers = false) {
    if (group > 1 && elements > 0)
        out.push_back({collective_kind::all_reduce, phase, group, elements, element_bytes, integers,
                       all_reduce_cost(m, group, static_cast<double>(elements * element_bytes))});
}

inline void add_all_gather(std::vector<collective_call>& out, const machine& m, step_phase phase,
                           std::size_t group, std::size_t elements, std::size_t element_bytes) {
    if (group > 1 && elements > 0)
        out.push_back({collective_kind::all_gather, phase, group, elements, element_bytes, false,
                       all_gather_cost(m, group, static_cast<double>(elements * element_bytes))});
}

/// The conversion of a batch x n activation from layout `from` to layout `to`: gather to
/// replicated over the group `from` is split over, then slice; its backward twin gathers the
/// gradient over the group `to` is split over. Nothing when the layouts are the same. The
/// activation and its gradient may differ in element size (bf16 activations, fp32 gradients).
inline void add_conversion(std::vector<collective_call>& out, const machine& m, const world_grid& g,
                           flow_layout from, flow_layout to, std::size_t rows, std::size_t n,
                           std::size_t forward_bytes, std::size_t backward_bytes) {
    if (normalized(from, g) == normalized(to, g)) return;
    add_all_gather(out, m, step_phase::convert_forward, split_over(from, g), rows * n,
                   forward_bytes);
    add_all_gather(out, m, step_phase::convert_backward, split_over(to, g), rows * n,
                   backward_bytes);
}

/// The depths of the chunks a reproducible sum over n features (kernels/reproducible_sum.hpp)
/// cuts block `index` of a split over `parts` ranks into, one product call each. The largest
/// block need not have the most chunks (1024 over 4 ranks, N = 4: 1, 2, 2, 1).
inline std::vector<std::size_t> reproducible_chunk_depths(std::size_t n, std::size_t parts,
                                                          std::size_t across, std::size_t index) {
    const shard_range block = balanced_shard(n, parts, index);
    std::vector<std::size_t> depths;
    std::size_t previous = block.begin;
    for (const std::size_t bound : reproducible_chunk_bounds(n, across))
        if (bound > block.begin && bound <= block.end) {
            depths.push_back(bound - previous);
            previous = bound;
        }
    return depths;
}

// Elements read and written, per element of a layer's output, by the element-wise passes the
// model counts (only when the machine gives memory_bytes_per_s): forward bias add and activation
// (read + write each: 4), backward activation derivative and bias-gradient sum (4); the last
// layer has no activation (2 forward, 1 backward). Per parameter and step, the optimizer's one
// pass (train/optimizer_update.hpp, with the finite check folded in) reads gradient, weight and
// `slots` state arrays and writes weight and state: 3 + 2·slots.
inline constexpr double hidden_forward_elements = 4, hidden_backward_elements = 4;
inline constexpr double last_forward_elements = 2, last_backward_elements = 1;
inline double optimizer_elements(std::size_t slots) {
    return 3.0 + 2.0 * static_cast<double>(slots);
}
/// With clipping, the global norm's two reads of every gradient (train/gradient_norm.hpp).
inline constexpr double norm_elements = 2;

}  // namespace detail

/// The orientation a block2d layer takes after a layer of partition `previous` and
/// orientation `previous_orient` (`first` for the first layer).
inline orientation orientation_after(bool first, partition_kind previous,
                                     orientation previous_orient) {
    if (!first && previous == partition_kind::block2d && previous_orient == orientation::a)
        return orientation::b;
    return orientation::a;
}

/// Predicts layer `index` of `net` under `partition` (with orientation `orient` if block2d),
/// its input arriving in layout `previous_output` (ignored for the first layer, whose input is
/// the data: every rank slices what it needs, and no input gradient is computed).
/// @pre check_shape(net, grid) passed; index < net.layers().
inline layer_prediction predict_layer(const machine& m, const network_shape& net,
                                      const world_grid& g, std::size_t index,
                                      partition_kind partition, orientation orient,
                                      flow_layout previous_output) {
    using detail::ceil_div;
    const std::size_t rows = net.replica_batch(g.data);
    const std::size_t bytes = net.element_bytes;
    const std::size_t model = g.model();
    const bool first = index == 0;
    const bool last = index + 1 == net.layers();
    layer_prediction p;
    p.partition = partition;
    p.orient = partition == partition_kind::block2d ? orient : orientation::a;
    p.in = net.widths[index];
    p.out = net.widths[index + 1];
    p.input = detail::input_of(partition, p.orient);
    p.output = detail::output_of(partition, p.orient);

    // The largest block: balanced shards give the first n % parts parts ceil(n / parts).
    const std::size_t r_in = p.orient == orientation::a ? g.rows : g.cols;
    const std::size_t r_out = p.orient == orientation::a ? g.cols : g.rows;
    switch (partition) {
        case partition_kind::column:
            p.local_rows = p.in, p.local_cols = ceil_div(p.out, model), p.local_bias = p.local_cols;
            break;
        case partition_kind::row:
            p.local_rows = ceil_div(p.in, model), p.local_cols = p.out, p.local_bias = p.out;
            break;
        case partition_kind::replicated:
            p.local_rows = p.in, p.local_cols = p.out, p.local_bias = p.out;
            break;
        case partition_kind::block2d:
            p.local_rows = ceil_div(p.in, r_in), p.local_cols = ceil_div(p.out, r_out);
            p.local_bias = p.local_cols;
            break;
    }

    const bool low = net.compute == precision::bf16;
    const std::size_t across = net.reproducible_across;
    if (across != 0 && partition == partition_kind::block2d)
        throw error(shardnet::detail::concat("layer ", index,
                                             ": reproducible_across needs a 1D partition (column, "
                                             "row or replicated), got block2d"));
    // A bf16 layer passes its bf16 output on, so the next one gathers 2-byte activations; the
    // gradients gathered backward are fp32.
    if (!first)
        detail::add_conversion(p.collectives, m, g, previous_output, p.input, rows, p.in,
                               low ? 2 : bytes, bytes);

    auto gemm = [&](gemm_kind kind, std::size_t gm, std::size_t gn, std::size_t gk) {
        p.gemms.push_back(
            {kind, gm, gn, gk, m.gemm_seconds(kind, gm, gn, gk, net.compute), net.compute});
    };
    // A product summed over the model group: in bf16 its partials travel as bf16
    // (partition/partial_sum.hpp); with reproducible sums it runs chunk by chunk of its depth
    // (of the global `depth`, split over the group) and its sum is an all-reduce of the largest
    // partial, then one of 8-byte integers. Ranks differ in chunks, and the sum waits for the
    // slowest: its products are priced (ties: the rank with more chunks). Returns the most
    // chunks any rank has (1 for a plain sum), which its passes and workspace scale with.
    auto summed_product = [&](gemm_kind kind, step_phase phase, std::size_t gm, std::size_t gn,
                              std::size_t depth, std::size_t group) -> std::size_t {
        if (across == 0) {
            gemm(kind, gm, gn, ceil_div(depth, group));
            detail::add_all_reduce(p.collectives, m, phase, group, gm * gn, low ? 2 : bytes);
            return 1;
        }
        std::vector<std::size_t> slowest;
        double slowest_s = -1;
        std::size_t most = 0;
        for (std::size_t r = 0; r < group; ++r) {
            const std::vector<std::size_t> chunks =
                detail::reproducible_chunk_depths(depth, group, across, r);
            double seconds = 0;
            for (const std::size_t chunk : chunks)
                seconds += m.gemm_seconds(kind, gm, gn, chunk, net.compute);
            // Equal within rounding (the same flops at a flat rate): the rank with more chunks.
            const bool tie = std::abs(seconds - slowest_s) <= 1e-12 * slowest_s;
            if ((seconds > slowest_s && !tie) || (tie && chunks.size() > slowest.size()))
                slowest = chunks, slowest_s = seconds;
            most = std::max(most, chunks.size());
        }
        for (const std::size_t chunk : slowest)
            gemm(kind, gm, gn, chunk);
        detail::add_all_reduce(p.collectives, m, phase, group, 1, bytes);
        detail::add_all_reduce(p.collectives, m, phase, group, gm * gn, 8, true);
        return most;
    };
    // Reproducible sums' passes (elements of `bytes`, integers of 8) and workspace, added below.
    double reproducible_moved = 0, reproducible_memory = 0;
    auto reproducible_costs = [&](std::size_t chunks, std::size_t tile) {
        if (across == 0) return;
        const double c = static_cast<double>(chunks), t = static_cast<double>(tile);
        const double b = static_cast<double>(bytes);
        // The partials scanned for their largest, read onto the grid; the integers written,
        // read back, and the result written.
        reproducible_moved += t * (2.0 * c * b + 16.0 + b);
        reproducible_memory += t * (c * b + 8.0);
    };

    switch (partition) {
        case partition_kind::column:
            gemm(gemm_kind::forward, rows, p.local_cols, p.local_rows);
            if (!first)
                reproducible_costs(summed_product(gemm_kind::input_gradient, step_phase::backward,
                                                  rows, p.in, p.out, model),
                                   rows * p.in);
            break;
        case partition_kind::row:
            reproducible_costs(
                summed_product(gemm_kind::forward, step_phase::forward, rows, p.out, p.in, model),
                rows * p.out);
            if (!first) gemm(gemm_kind::input_gradient, rows, p.local_rows, p.local_cols);
            break;
        case partition_kind::replicated:
            gemm(gemm_kind::forward, rows, p.local_cols, p.local_rows);
            if (!first) gemm(gemm_kind::input_gradient, rows, p.local_rows, p.local_cols);
            break;
        case partition_kind::block2d:
            // Partial products are summed over the ranks that hold the same output block (the
            // r_in ranks along the input dimension); input gradients over the other dimension.
            summed_product(gemm_kind::forward, step_phase::forward, rows, p.local_cols, p.in, r_in);
            if (!first)
                summed_product(gemm_kind::input_gradient, step_phase::backward, rows, p.local_rows,
                               p.out, r_out);
            break;
    }
    gemm(gemm_kind::weight_gradient, p.local_rows, p.local_cols, rows);

    // Every rank's own gradient blocks are summed over the replicas, one all-reduce per
    // parameter (weight, bias), as the trainer issues them, in fp32 whatever the precision.
    detail::add_all_reduce(p.collectives, m, step_phase::data_parallel, g.data,
                           p.local_rows * p.local_cols, bytes);
    detail::add_all_reduce(p.collectives, m, step_phase::data_parallel, g.data, p.local_bias,
                           bytes);

    const double weights = static_cast<double>(p.local_rows * p.local_cols);
    const double parameters = weights + static_cast<double>(p.local_bias);
    const std::size_t in_held = detail::held(p.input, g, p.in);
    const std::size_t out_held = detail::held(p.output, g, p.out);
    const double in_elements = static_cast<double>(rows * in_held);
    const double out_elements = static_cast<double>(rows * out_held);
    if (m.memory_bytes_per_s > 0) {
        const double pass_elements =
            out_elements *
            (last ? detail::last_forward_elements + detail::last_backward_elements
                  : detail::hidden_forward_elements + detail::hidden_backward_elements);
        double moved =
            (pass_elements + parameters * (detail::optimizer_elements(net.optimizer_slots) +
                                           (net.clips_gradients ? detail::norm_elements : 0.0))) *
                static_cast<double>(bytes) +
            reproducible_moved;
        // bf16: the optimizer's pass also writes the weights' bf16 copy, the forward and
        // backward passes the bf16 output and output gradient, and the first layer rounds its
        // input (the data arrives fp32).
        if (low)
            moved += 2.0 * weights + 4.0 * out_elements +
                     (first ? in_elements * (static_cast<double>(bytes) + 2.0) : 0.0);
        p.elementwise_s = moved / m.memory_bytes_per_s;
    }
    // Weights, gradients and optimizer state; the input kept for dW, the product, the output
    // and its gradient; the gathered buffer of a conversion; in bf16 the layer's bf16 copies
    // (weights, input, output, output gradient), as estimate_training_memory counts them;
    // reproducible sums' partials and integers.
    const bool converts = p.communication_s(step_phase::convert_forward) > 0 ||
                          p.communication_s(step_phase::convert_backward) > 0;
    const double gathered = converts ? static_cast<double>(rows * std::max(p.in, p.out)) : 0.0;
    p.memory_bytes =
        static_cast<double>(bytes) * (parameters * static_cast<double>(2 + net.optimizer_slots) +
                                      in_elements + 3.0 * out_elements + gathered) +
        (low ? 2.0 * (weights + in_elements + 2.0 * out_elements) : 0.0) + reproducible_memory;
    return p;
}

/// The step-level collectives: the loss on sharded logits (two all-reduces: 2 and 3 eight-byte
/// values per row) over the ranks that hold the logits' different blocks (all of
/// the model group for the flat layout, one grid row or column for a 2D output: the loss takes
/// the logits where they are, see shardnet::with_loss_group), the finite-gradient flag over the
/// model group (with clipping, the global norm's three values instead), and the loss and
/// accuracy totals over the replicas.
inline std::vector<collective_call> step_collectives(const machine& m, const network_shape& net,
                                                     const world_grid& g, flow_layout logits) {
    std::vector<collective_call> out;
    const std::size_t rows = net.replica_batch(g.data);
    // Sharded logits: the row maxima of z and -z (doubles), then three sums per row as 64-bit
    // integers (train/cross_entropy.hpp).
    if (detail::normalized(logits, g) != flow_layout::replicated) {
        detail::add_all_reduce(out, m, step_phase::loss, detail::split_over(logits, g), 2 * rows,
                               8);
        detail::add_all_reduce(out, m, step_phase::loss, detail::split_over(logits, g), 3 * rows, 8,
                               true);
    }
    // The finite-gradient flag (an integer), or with clipping the norm's largest square (a
    // double), element count and sum on its grid (integers); the loss and accuracy totals
    // (doubles).
    if (net.clips_gradients) detail::add_all_reduce(out, m, step_phase::loss, g.model(), 1, 8);
    for (int integer = 0; integer < (net.clips_gradients ? 2 : 1); ++integer)
        detail::add_all_reduce(out, m, step_phase::loss, g.model(), 1, 8, true);
    detail::add_all_reduce(out, m, step_phase::loss, g.data, 2, 8);
    return out;
}

/// Predicts a training step of `net` on grid `g` with one partition per layer; block2d layers
/// take their orientation by orientation_after.
/// @throws error if the shapes are bad or the partitions do not name one per layer.
inline step_prediction predict_step(const machine& m, const network_shape& net, const world_grid& g,
                                    const std::vector<partition_kind>& partitions) {
    check_shape(net, g);
    if (partitions.size() != net.layers())
        throw error(shardnet::detail::concat(
            "expected ", net.layers(), " partitions (one per layer), got ", partitions.size()));
    step_prediction s;
    s.grid = g;
    s.global_batch = net.batch;
    s.replica_batch = net.replica_batch(g.data);
    flow_layout previous = flow_layout::replicated;
    orientation previous_orient = orientation::a;
    for (std::size_t i = 0; i < partitions.size(); ++i) {
        const orientation o =
            orientation_after(i == 0, i == 0 ? partitions[0] : partitions[i - 1], previous_orient);
        s.layers.push_back(predict_layer(m, net, g, i, partitions[i], o, previous));
        previous = s.layers.back().output;
        previous_orient = s.layers.back().orient;
        s.seconds += s.layers.back().seconds();
        s.memory_bytes += s.layers.back().memory_bytes;
    }
    s.step_collectives = step_collectives(m, net, g, previous);
    for (const auto& c : s.step_collectives)
        s.seconds += c.cost.seconds;
    return s;
}

}  // namespace shardnet::cost
