// The communication formulas of docs/partitions.md, written out here exactly as the page states
// them, checked against what the tracing communicator counts and what plans print, for several
// batches B, widths n (in) and m (out), and group sizes P (every size up to the world's).
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "reference.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/comm/tracing_communicator.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/net/sequential.hpp"
#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/replicated.hpp"
#include "shardnet/partition/row_split.hpp"
#include "shardnet/train/cross_entropy.hpp"

namespace sn = shardnet;
namespace act = shardnet::activation;

namespace {

using traced = sn::tracing_communicator<sn::mpi_communicator>;

// docs/partitions.md, "Per layer" and "Per step". Over one rank nothing moves.
namespace documented {
std::size_t column_split_backward(std::size_t batch, std::size_t n, std::size_t parts,
                                  bool first_layer) {
    return parts > 1 && !first_layer ? batch * n : 0;
}
std::size_t row_split_forward(std::size_t batch, std::size_t m, std::size_t parts) {
    return parts > 1 ? batch * m : 0;
}
/// sharded -> replicated forward, replicated -> sharded backward: the whole activation.
std::size_t layout_gather(std::size_t batch, std::size_t width, std::size_t parts) {
    return parts > 1 ? batch * width : 0;
}
/// Softmax cross-entropy on column-sharded logits: row maxima of z and -z (floating point), then
/// 3 sums per row and the argmax index (as integers: control traffic).
std::size_t sharded_loss_all_reduce(std::size_t batch, std::size_t parts) {
    return parts > 1 ? 2 * batch : 0;
}
std::size_t sharded_loss_integer_all_reduce(std::size_t batch, std::size_t parts) {
    return parts > 1 ? 4 * batch : 0;
}
/// A rank's gradient elements, summed over the data-parallel group: its weight and bias shards.
std::size_t column_split_gradient(std::size_t n, std::size_t m, std::size_t parts,
                                  std::size_t part) {
    const std::size_t cols = sn::balanced_shard(m, parts, part).size();
    return n * cols + cols;
}
std::size_t row_split_gradient(std::size_t n, std::size_t m, std::size_t parts, std::size_t part) {
    return sn::balanced_shard(n, parts, part).size() * m + m;
}
std::size_t replicated_gradient(std::size_t n, std::size_t m) {
    return n * m + m;
}
/// Bytes a rank sends with ring algorithms: 2 (P-1)/P N s for an all-reduce of N elements,
/// (P-1)/P N s for an all-gather of N elements in total.
double ring_bytes(std::size_t all_reduce, std::size_t all_gather, std::size_t parts,
                  std::size_t element_size) {
    if (parts < 2) return 0;
    const double share = static_cast<double>(parts - 1) / static_cast<double>(parts);
    return (2.0 * static_cast<double>(all_reduce) + static_cast<double>(all_gather)) * share *
           static_cast<double>(element_size);
}
}  // namespace documented

/// Every group size: world ranks split into consecutive groups of `parts` (the last one may be
/// smaller), so one mpiexec run checks P = 1 .. world size.
traced group_of(std::size_t parts) {
    sn::mpi_communicator world;
    return traced(world.split(static_cast<int>(world.rank() / parts),
                              static_cast<int>(world.rank() % parts)));
}

struct shape {
    std::size_t batch, n, m;
};
// Uneven splits, a P > n case (empty shards on 4 ranks), and B above and below the widths.
const std::vector<shape> layer_shapes = {{1, 7, 3}, {5, 3, 11}, {9, 16, 16}, {4, 2, 5}};

// sharded -> replicated before fc2, replicated -> sharded before fc3, none before fc4, and
// column-sharded logits: every conversion and partition in one step.
using mixed_net = sn::sequential<
    sn::dense<float, sn::column_split, act::tanh>, sn::dense<float, sn::replicated, act::relu>,
    sn::dense<float, sn::row_split, act::relu>, sn::dense<float, sn::column_split, act::identity>>;

sn::matrix<float> batch_of(std::size_t batch, std::size_t width) {
    return sn::test::block_of<float>(sn::test::random_dmatrix(batch, width, 3), {0, batch},
                                     {0, width});
}

std::vector<std::uint32_t> labels_of(std::size_t batch, std::size_t classes) {
    std::vector<std::uint32_t> labels(batch);
    for (std::size_t i = 0; i < batch; ++i)
        labels[i] = static_cast<std::uint32_t>((3 * i + 1) % classes);
    return labels;
}

}  // namespace

TEST_SUITE("mpi") {
    TEST_CASE("documented per-layer volumes equal the traced ones") {
        for (std::size_t parts = 1; parts <= sn::mpi_communicator().size(); ++parts) {
            traced group = group_of(parts);
            const std::size_t p = group.size();
            for (const shape s : layer_shapes) {
                CAPTURE(p);
                CAPTURE(s.batch);
                CAPTURE(s.n);
                CAPTURE(s.m);
                const auto x = batch_of(s.batch, s.n);

                sn::dense<float, sn::column_split, act::relu> column(group, s.n, s.m);
                group.reset();
                sn::matrix<float> dy = column.forward(group, x);
                CHECK(group.counts().arithmetic_calls() == 0);
                column.backward(group, dy);  // a lone layer computes its input gradient
                if (p > 1)
                    CHECK(group.counts().all_reduce.elements ==
                          documented::column_split_backward(s.batch, s.n, p, false));
                CHECK(group.counts().all_gather.calls == 0);
                const auto ct = sn::column_split::traffic(s.batch, s.n, s.m, sn::grid_shape{1, p},
                                                          {0, group.rank()});
                CHECK(ct.forward_all_reduce == 0);
                CHECK(ct.backward_all_reduce ==
                      documented::column_split_backward(s.batch, s.n, p, false));

                sn::dense<float, sn::row_split, act::relu> row(group, s.n, s.m);
                const auto x_shard = sn::test::block_of<float>(
                    sn::test::random_dmatrix(s.batch, s.n, 3), {0, s.batch}, row.weight_rows());
                group.reset();
                dy = row.forward(group, x_shard);
                if (p > 1)
                    CHECK(group.counts().all_reduce.elements ==
                          documented::row_split_forward(s.batch, s.m, p));
                group.reset();
                row.backward(group, dy);
                CHECK(group.counts().arithmetic_calls() == 0);
                const auto rt = sn::row_split::traffic(s.batch, s.n, s.m, sn::grid_shape{1, p},
                                                       {0, group.rank()});
                CHECK(rt.forward_all_reduce == documented::row_split_forward(s.batch, s.m, p));
                CHECK(rt.backward_all_reduce == 0);
            }
        }
    }

    TEST_CASE("documented per-step volumes equal the traced ones and the plan") {
        const std::vector<std::vector<std::size_t>> width_sets = {{5, 7, 6, 9, 4},
                                                                  {3, 2, 11, 5, 10}};
        for (std::size_t parts = 1; parts <= sn::mpi_communicator().size(); ++parts) {
            traced group = group_of(parts);
            const std::size_t p = group.size();
            std::vector<std::size_t> control_per_step;
            for (const auto& w : width_sets) {
                for (const std::size_t batch : {std::size_t{1}, std::size_t{6}}) {
                    CAPTURE(p);
                    CAPTURE(batch);
                    CAPTURE(w[1]);
                    mixed_net net(group, w);
                    const auto x = batch_of(batch, w[0]);
                    const auto labels = labels_of(batch, w[4]);
                    sn::softmax_cross_entropy<float> loss(w[4]);
                    sn::matrix<float> grad;

                    group.reset();
                    const auto& logits = net.forward(group, x);
                    const sn::traffic forward = group.counts();
                    group.reset();
                    loss.forward_backward<mixed_net::output_layout>(group, logits, labels, batch,
                                                                    grad, true);
                    const sn::traffic in_loss = group.counts();
                    group.reset();
                    net.backward(group, grad);
                    const sn::traffic backward = group.counts();

                    // Forward: all-gather of fc1's sharded output, all-reduce of fc3's partial
                    // products. Backward: fc4 (column) all-reduces its input gradient, the
                    // replicated -> sharded conversion before fc3 all-gathers; fc1 is first.
                    const std::size_t fwd_gather = documented::layout_gather(batch, w[1], p);
                    const std::size_t fwd_reduce = documented::row_split_forward(batch, w[3], p);
                    const std::size_t bwd_gather = documented::layout_gather(batch, w[2], p);
                    const std::size_t bwd_reduce =
                        documented::column_split_backward(batch, w[3], p, false);
                    if (p > 1) {
                        CHECK(forward.all_gather.elements == fwd_gather);
                        CHECK(forward.all_reduce.elements == fwd_reduce);
                        CHECK(backward.all_gather.elements == bwd_gather);
                        CHECK(backward.all_reduce.elements == bwd_reduce);
                        CHECK(in_loss.all_reduce.elements ==
                              documented::sharded_loss_all_reduce(batch, p));
                        CHECK(in_loss.control.elements ==
                              documented::sharded_loss_integer_all_reduce(batch, p));
                        CHECK(forward.reduce_scatter.calls + backward.reduce_scatter.calls == 0);
                        CHECK(forward.broadcast.calls + backward.broadcast.calls == 0);
                    }
                    // Control traffic (shape agreement) does not grow with B, n or m.
                    control_per_step.push_back(forward.control.elements +
                                               backward.control.elements);

                    const sn::network_plan plan = net.plan(batch);
                    CHECK(plan.layers[0].backward_all_reduce ==
                          documented::column_split_backward(batch, w[0], p, true));
                    CHECK(plan.layers[1].forward_all_gather == fwd_gather);
                    CHECK(plan.layers[2].forward_all_reduce == fwd_reduce);
                    CHECK(plan.layers[2].backward_all_gather == bwd_gather);
                    CHECK(plan.layers[3].backward_all_reduce == bwd_reduce);
                    CHECK(plan.model_parallel_elements() ==
                          fwd_gather + fwd_reduce + bwd_gather + bwd_reduce);
                    CHECK(plan.bytes_sent_per_rank() ==
                          doctest::Approx(documented::ring_bytes(
                              fwd_reduce + bwd_reduce, fwd_gather + bwd_gather, p, sizeof(float))));
                }
            }
            for (const std::size_t c : control_per_step)
                CHECK(c == control_per_step.front());
        }
    }

    TEST_CASE("documented data-parallel gradient volume equals the traced one and the plan") {
        const std::size_t world_size = sn::mpi_communicator().size();
        const std::vector<std::size_t> w = {3, 7, 6, 9, 4};
        for (std::size_t data_parallel = 1; data_parallel <= world_size; ++data_parallel) {
            if (world_size % data_parallel != 0) continue;
            sn::process_grid<traced> grid(traced{}, data_parallel);
            const std::size_t p = grid.model_parallel(), r = grid.model_rank();
            CAPTURE(data_parallel);
            CAPTURE(p);
            mixed_net net(grid.model(), w);
            const std::size_t batch = 4;
            const auto x = batch_of(batch, w[0]);
            sn::matrix<float> dy = net.forward(grid.model(), x);
            net.backward(grid.model(), dy);
            grid.data().reset();
            net.reduce_gradients(grid.data());

            const std::size_t gradient = documented::column_split_gradient(w[0], w[1], p, r) +
                                         documented::replicated_gradient(w[1], w[2]) +
                                         documented::row_split_gradient(w[2], w[3], p, r) +
                                         documented::column_split_gradient(w[3], w[4], p, r);
            if (data_parallel > 1) CHECK(grid.data().counts().all_reduce.elements == gradient);
            const sn::network_plan plan = net.plan(batch, data_parallel);
            CHECK(plan.data_parallel_all_reduce == (data_parallel > 1 ? gradient : 0));
            const double model_bytes = documented::ring_bytes(
                plan.layers[2].forward_all_reduce + plan.layers[3].backward_all_reduce,
                plan.layers[1].forward_all_gather + plan.layers[2].backward_all_gather, p,
                sizeof(float));
            CHECK(plan.bytes_sent_per_rank() ==
                  doctest::Approx(model_bytes + documented::ring_bytes(gradient, 0, data_parallel,
                                                                       sizeof(float))));
        }
    }
}
