// A printable description of what one training step costs: for each layer its global and
// local weight shapes, layouts and collectives, and the bytes a rank sends. Read it before
// running at scale.
#pragma once

#include <cstddef>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/layout.hpp"

namespace shardnet {

/// One layer of a plan. Element counts are per training step of `batch` rows per replica.
struct layer_plan {
    std::string name, partition, activation, conversion;
    std::size_t in = 0, out = 0, local_rows = 0, local_cols = 0;
    layout input_layout = layout::replicated, output_layout = layout::replicated;
    std::size_t forward_all_reduce = 0, backward_all_reduce = 0;
    std::size_t forward_all_gather = 0, backward_all_gather = 0;  ///< of the conversion before
    /// Ranks in each of those collectives (the model-parallel group, or one grid row or column
    /// of it for 2D layouts and partitions).
    std::size_t forward_reduce_group = 1, backward_reduce_group = 1;
    std::size_t forward_gather_group = 1, backward_gather_group = 1;
    /// Bytes of one element of the forward all-gather: the plan's element_size, or 2 when a bf16
    /// layer gathers the bf16 activations of the bf16 layer before it (core/precision.hpp).
    std::size_t forward_gather_element_size = 4;
    bool bf16 = false;  ///< the layer runs its GEMMs in bf16 (mixed precision) and sums in bf16
};

/// The plan of a network for one rank.
struct network_plan {
    std::size_t element_size = 4, batch = 0, model_parallel = 1, data_parallel = 1;
    grid_shape model_grid{1, 1};
    std::vector<layer_plan> layers;
    std::size_t data_parallel_all_reduce = 0;  ///< gradient elements summed across replicas

    /// Elements moved by model-parallel collectives in one step (forward + backward).
    std::size_t model_parallel_elements() const {
        std::size_t n = 0;
        for (const auto& l : layers)
            n += l.forward_all_reduce + l.backward_all_reduce + l.forward_all_gather +
                 l.backward_all_gather;
        return n;
    }

    /// Bytes this rank sends per step with ring algorithms: an all-reduce of n elements over
    /// P ranks sends 2 (P-1)/P n, an all-gather of n in total sends (P-1)/P n.
    double bytes_sent_per_rank() const {
        auto ring = [](std::size_t n, std::size_t p, double factor) {
            return p > 1 ? factor * static_cast<double>(n) * static_cast<double>(p - 1) /
                               static_cast<double>(p)
                         : 0.0;
        };
        double b = 0;
        for (const auto& l : layers) {
            const auto element = static_cast<double>(element_size);
            // A bf16 layer's partial sums travel as bf16 (partition/partial_sum.hpp).
            const double summed = l.bf16 ? 2.0 : element;
            b += ring(l.forward_all_reduce, l.forward_reduce_group, 2.0) * summed;
            b += ring(l.backward_all_reduce, l.backward_reduce_group, 2.0) * summed;
            b += ring(l.forward_all_gather, l.forward_gather_group, 1.0) *
                 static_cast<double>(l.forward_gather_element_size);
            b += ring(l.backward_all_gather, l.backward_gather_group, 1.0) * element;
        }
        b += ring(data_parallel_all_reduce, data_parallel, 2.0) * static_cast<double>(element_size);
        return b;
    }

    /// Prints the plan as a table. Leaves out's formatting state (flags, precision, fill) as it
    /// was; like any inserter, it consumes a width set before it.
    friend std::ostream& operator<<(std::ostream& out, const network_plan& p) {
        // Formatted apart: the columns and the fixed one-decimal KiB below must not change how
        // the caller's later numbers print (nor the caller's fill or showpos the plan's).
        std::ostringstream os;
        os.imbue(out.getloc());
        os << "plan: " << p.layers.size() << " layers, grid " << p.data_parallel
           << " data-parallel x " << p.model_parallel << " model-parallel";
        if (p.model_grid.rows > 1)
            os << " (" << p.model_grid.rows << " x " << p.model_grid.cols << ")";
        os << ", batch " << p.batch << " per replica, " << p.element_size << "-byte elements\n";
        for (const auto& l : p.layers) {
            os << "  " << std::left << std::setw(5) << l.name << std::setw(19) << l.partition
               << std::setw(9) << l.activation << "W " << l.in << " x " << l.out << ", local "
               << l.local_rows << " x " << l.local_cols << "; " << to_string(l.input_layout)
               << " -> " << to_string(l.output_layout) << (l.bf16 ? "; bf16 GEMMs" : "") << "\n";
            if (l.conversion != "none")
                os << "       before it: " << l.conversion << ", " << l.forward_all_gather
                   << (l.forward_gather_element_size == 2 ? " (bf16)" : "") << " + "
                   << l.backward_all_gather << " elements gathered\n";
            const char* summed_as = l.bf16 ? " (bf16)" : "";
            if (l.forward_all_reduce)
                os << "       forward: all-reduce of " << l.forward_all_reduce << summed_as
                   << " elements\n";
            if (l.backward_all_reduce)
                os << "       backward: all-reduce of " << l.backward_all_reduce << summed_as
                   << " elements\n";
        }
        if (p.data_parallel > 1)
            os << "  gradients: all-reduce of " << p.data_parallel_all_reduce
               << " elements over the data-parallel group\n";
        os << "  per step: " << p.model_parallel_elements()
           << " elements in model-parallel collectives, about " << std::fixed
           << std::setprecision(1) << p.bytes_sent_per_rank() / 1024.0 << " KiB sent per rank\n";
        return out << os.str();
    }
};

}  // namespace shardnet
