// The planner run where training runs: measure this machine (GEMMs at the shapes the candidate
// plans need, the collectives between the ranks at hand), then choose a grid and a partition per
// layer. What `train_mlp --partition auto` and `shardnet_plan --calibrate` share.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/cost/calibrate.hpp"
#include "shardnet/cost/machine.hpp"
#include "shardnet/cost/planner.hpp"
#include "shardnet/cost/step_model.hpp"

namespace shardnet::cost {

/// The GEMM shapes a predicted step runs.
inline void add_gemm_shapes(std::vector<gemm_shape>& shapes, const step_prediction& s) {
    for (const auto& l : s.layers)
        for (const auto& g : l.gemms)
            shapes.push_back({g.kind, g.m, g.n, g.k, g.operands});
}

/// "2x32x32": data x rows x cols.
inline std::string grid_text(const world_grid& g) {
    return std::to_string(g.data) + "x" + std::to_string(g.rows) + "x" + std::to_string(g.cols);
}

/// The planner's three plans for one network and rank count.
struct plan_choice {
    /// What train_mlp does without the planner; none when that cannot run (a model group of
    /// all the ranks is larger than net.reproducible_across allows).
    std::optional<plan> default_plan;
    plan best_1d;  ///< the best with column, row and replicated only
    plan chosen;   ///< the best with block2d too

    /// `chosen: <partitions> grid=DxRxC predicted_samples_per_s=... speedup_vs_default=...
    /// speedup_vs_best_1d=...` (speedup_vs_default=none without a default plan).
    std::string line() const {
        char numbers[160];
        char versus_default[32] = "none";
        if (default_plan)
            std::snprintf(versus_default, sizeof versus_default, "%.3f",
                          default_plan->prediction.seconds / chosen.prediction.seconds);
        std::snprintf(numbers, sizeof numbers,
                      " predicted_samples_per_s=%.1f speedup_vs_default=%s "
                      "speedup_vs_best_1d=%.3f",
                      chosen.prediction.samples_per_s(), versus_default,
                      best_1d.prediction.seconds / chosen.prediction.seconds);
        return "chosen: " + partitions_text(chosen.partitions) + " grid=" + grid_text(chosen.grid) +
               numbers;
    }
};

/// The three plans of `net` on `ranks` ranks of `m`.
/// @throws error if no plan fits in the machine's memory, or no grid allows the network's
/// reproducible_across.
inline plan_choice choose_plans(const machine& m, const network_shape& net, std::size_t ranks) {
    std::optional<plan> baseline;
    if (net.reproducible_across == 0 || ranks <= net.reproducible_across)
        baseline = default_plan(m, net, ranks);
    return {std::move(baseline), best_plan(m, net, ranks, partition_family::one_d),
            best_plan(m, net, ranks, partition_family::all)};
}

/// Measures this machine for `net` within about `budget_s` seconds, starting from `m` (whose
/// network figures stay when `world` has one rank): the GEMMs of the plans the planner weighs on
/// `m`, the element-wise rate, and the collectives between the ranks of `world`. Memory per rank
/// is this node's, shared by the ranks of `world`. Collective over `world`; every rank ends with
/// the same description (measurements are agreed: the slowest rank's).
template <communicator Comm>
calibration_report calibrate_for(Comm& world, machine& m, const network_shape& net,
                                 double budget_s) {
    std::vector<gemm_shape> shapes;
    agree_on(world, [&] {
        const plan_choice c = choose_plans(m, net, world.size());
        if (c.default_plan) add_gemm_shapes(shapes, c.default_plan->prediction);
        for (const plan* p : {&c.best_1d, &c.chosen})
            add_gemm_shapes(shapes, p->prediction);
    });
    calibration_options options;
    // GEMMs take half the budget, collectives a third, the memory pass the rest.
    options.gemm_budget_s = budget_s * 0.5;
    options.collective_budget_s = budget_s * 0.3;
    options.memory_budget_s = std::min(2.0, budget_s * 0.05);
    m.name = "calibrated";
    const calibration_report report = calibrate(world, m, shapes, options);
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0)
        m.memory_bytes = static_cast<double>(pages) * static_cast<double>(page) /
                         static_cast<double>(world.size());
    // Nodes may differ in memory: plan with the smallest, so that every rank plans alike.
    world.all_reduce(&m.memory_bytes, 1, reduce_op::min);
    return report;
}

}  // namespace shardnet::cost
