// The planner: for P ranks, every factorization P = D x R x C and, per layer, the partition that
// minimizes the predicted step time under the memory per rank, by dynamic programming over the
// layout that flows between layers (conversions included).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/cost/step_model.hpp"

namespace shardnet::cost {

/// A grid, a partition per layer and their predicted step.
struct plan {
    world_grid grid;
    std::vector<partition_kind> partitions;
    step_prediction prediction;
};

/// Which partitions a search may use.
enum class partition_family {
    one_d,  ///< column, row, replicated (what the library runs today)
    all,    ///< and block2d
};

namespace detail {

/// The states of the dynamic program: the previous layer's partition, with block2d's two
/// orientations apart, since the next layer's input layout and orientation follow from it.
struct layer_state {
    partition_kind partition;
    orientation orient;
};

inline std::vector<partition_kind> candidates(partition_family family, const world_grid& g,
                                              const network_shape& net) {
    std::vector<partition_kind> out = {partition_kind::column, partition_kind::row,
                                       partition_kind::replicated};
    // On a 1D grid block2d is column or row under another name: searching it there would only
    // make ties. Reproducible sums are 1D only.
    if (family == partition_family::all && g.rows > 1 && g.cols > 1 && net.reproducible_across == 0)
        out.push_back(partition_kind::block2d);
    return out;
}

/// One partial plan: time and memory of the layers so far, and the choices that led there.
struct partial_plan {
    double seconds = 0, memory = 0;
    std::vector<partition_kind> partitions;
    layer_state last{partition_kind::column, orientation::a};
    flow_layout output = flow_layout::replicated;
};

/// Keeps, per state, the partial plans no other one beats in both time and memory (memory is
/// a constraint summed over layers, so the fastest prefix alone could exhaust it).
inline void keep_pareto(std::vector<partial_plan>& front, partial_plan candidate) {
    for (const auto& p : front)
        if (p.seconds <= candidate.seconds && p.memory <= candidate.memory) return;
    std::erase_if(front, [&](const partial_plan& p) {
        return candidate.seconds <= p.seconds && candidate.memory <= p.memory;
    });
    front.push_back(std::move(candidate));
}

}  // namespace detail

/// The fastest partitions for one grid that fit in the machine's memory, if any do.
/// @throws error if the shapes are bad (check_shape).
inline std::optional<plan> best_plan_for_grid(const machine& m, const network_shape& net,
                                              const world_grid& g, partition_family family) {
    check_shape(net, g);
    const auto kinds = detail::candidates(family, g, net);
    // States: index into kinds, block2d's orientation b as one more.
    const std::size_t states = kinds.size() + 1;
    auto state_index = [&](partition_kind k, orientation o) {
        for (std::size_t i = 0; i < kinds.size(); ++i)
            if (kinds[i] == k)
                return k == partition_kind::block2d && o == orientation::b ? kinds.size() : i;
        return std::size_t{0};
    };
    std::vector<std::vector<detail::partial_plan>> fronts(states);
    fronts[0].push_back({});  // before the first layer: nothing chosen
    for (std::size_t layer = 0; layer < net.layers(); ++layer) {
        std::vector<std::vector<detail::partial_plan>> next(states);
        for (const auto& front : fronts)
            for (const auto& p : front)
                for (partition_kind k : kinds) {
                    const orientation o =
                        orientation_after(layer == 0, p.last.partition, p.last.orient);
                    const layer_prediction l = predict_layer(m, net, g, layer, k, o, p.output);
                    detail::partial_plan q = p;
                    q.seconds += l.seconds();
                    q.memory += l.memory_bytes;
                    if (q.memory > m.memory_bytes) continue;
                    q.partitions.push_back(k);
                    q.last = {k, l.orient};
                    q.output = l.output;
                    detail::keep_pareto(next[state_index(k, l.orient)], std::move(q));
                }
        fronts = std::move(next);
    }
    std::optional<plan> best;
    for (const auto& front : fronts)
        for (const auto& p : front) {
            step_prediction s = predict_step(m, net, g, p.partitions);
            if (s.memory_bytes > m.memory_bytes) continue;
            // Strictly faster only: among equals the first found stays, so plans are
            // deterministic.
            if (!best || s.seconds < best->prediction.seconds)
                best = plan{g, p.partitions, std::move(s)};
        }
    return best;
}

/// Every grid D x R x C of `ranks` ranks with D <= the batch (a replica needs a row), and a model
/// group of at most `max_model` ranks (0: any), in a fixed order: D, then R, ascending.
inline std::vector<world_grid> grids_of(std::size_t ranks, std::size_t batch,
                                        std::size_t max_model = 0) {
    std::vector<world_grid> out;
    for (std::size_t d = 1; d <= ranks; ++d) {
        if (ranks % d != 0 || d > batch) continue;
        if (max_model != 0 && ranks / d > max_model) continue;
        for (std::size_t r = 1; r <= ranks / d; ++r)
            if ((ranks / d) % r == 0) out.push_back({d, r, ranks / d / r});
    }
    return out;
}

/// The fastest plan over every grid of `ranks` ranks and the partitions of `family`.
/// With one_d, grids differing only in R x C at the same R·C are one grid (taken as 1 x R·C).
/// With net.reproducible_across = N, only grids whose model group has at most N ranks.
/// @throws error if nothing fits in the machine's memory, saying how much the smallest needs.
inline plan best_plan(const machine& m, const network_shape& net, std::size_t ranks,
                      partition_family family) {
    if (ranks == 0) throw error("ranks: expected at least 1, got 0");
    check_shape(net, {});
    std::optional<plan> best;
    const std::vector<world_grid> grids = grids_of(ranks, net.batch, net.reproducible_across);
    // (Without reproducible_across, 1 x 1 x ranks is always a grid.)
    if (grids.empty())
        throw error(shardnet::detail::concat(
            "no grid of ", ranks, " ranks has a model group of at most ", net.reproducible_across,
            " ranks (reproducible_across) and at most ", net.batch, " replicas (the batch)"));
    for (const world_grid& g : grids) {
        if (family == partition_family::one_d && g.rows != 1) continue;
        auto p = best_plan_for_grid(m, net, g, family);
        if (p && (!best || p->prediction.seconds < best->prediction.seconds)) best = std::move(p);
    }
    if (!best)
        throw error(shardnet::detail::concat(
            "no plan of ", ranks, " ranks fits in ", m.memory_bytes / (1u << 30),
            " GiB per rank (machine '", m.name, "'): use more ranks or a smaller batch"));
    return *best;
}

/// What train_mlp does without the planner: every rank model-parallel (1 x 1 x P), 1D
/// partitions alternating column, row, column, ...
inline plan default_plan(const machine& m, const network_shape& net, std::size_t ranks) {
    plan p;
    p.grid = {1, 1, ranks};
    for (std::size_t i = 0; i < net.layers(); ++i)
        p.partitions.push_back(i % 2 == 0 ? partition_kind::column : partition_kind::row);
    p.prediction = predict_step(m, net, p.grid, p.partitions);
    return p;
}

/// "column,row,block2d" for a plan's partitions.
inline std::string partitions_text(const std::vector<partition_kind>& partitions) {
    std::string out;
    for (std::size_t i = 0; i < partitions.size(); ++i) {
        if (i) out += ',';
        out += to_string(partitions[i]);
    }
    return out;
}

}  // namespace shardnet::cost
