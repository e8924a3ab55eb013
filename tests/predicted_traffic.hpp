// What cost::predict_step says a step's forward and backward send, counted as
// tracing_communicator counts what the network sends: the model checked against the library.
#pragma once

#include <utility>

#include "shardnet/comm/tracing_communicator.hpp"
#include "shardnet/cost/step_model.hpp"

namespace shardnet::test {

/// The layers' collectives of `s` (not the loss's, nor the replicas' gradient sums), as
/// {forward, backward} traffic: calls, elements and bytes per kind. A reproducible sum's
/// integers are control traffic, as the tracer counts integers.
inline std::pair<traffic, traffic> predicted_traffic(const cost::step_prediction& s) {
    using cost::step_phase;
    traffic forward, backward;
    for (const auto& l : s.layers)
        for (const auto& c : l.collectives) {
            if (c.phase == step_phase::data_parallel) continue;
            const bool ahead =
                c.phase == step_phase::forward || c.phase == step_phase::convert_forward;
            traffic& t = ahead ? forward : backward;
            collective_count& n = c.kind == cost::collective_kind::all_gather ? t.all_gather
                                  : c.integers                                ? t.control
                                                                              : t.all_reduce;
            ++n.calls;
            n.elements += c.elements;
            n.bytes += c.bytes();
        }
    return {forward, backward};
}

}  // namespace shardnet::test
