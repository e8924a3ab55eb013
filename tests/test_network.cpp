// Networks: whole-network gradients against finite differences and against one rank, layout
// conversions and their traffic, sharded losses against replicated ones, and training that
// gives the same losses on every grid.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "predicted_traffic.hpp"
#include "reference.hpp"
#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/comm/tracing_communicator.hpp"
#include "shardnet/cost/step_model.hpp"
#include "shardnet/net/network.hpp"
#include "shardnet/net/sequential.hpp"
#include "shardnet/net/visit_layers.hpp"
#include "shardnet/partition/block2d.hpp"
#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/replicated.hpp"
#include "shardnet/partition/row_split.hpp"
#include "shardnet/train/cross_entropy.hpp"
#include "shardnet/train/mse.hpp"
#include "shardnet/train/optimizer.hpp"
#include "shardnet/train/synthetic.hpp"
#include "shardnet/train/trainer.hpp"

namespace sn = shardnet;
namespace act = shardnet::activation;

namespace {

// Every partition and every activation, and every conversion: replicated -> sharded (row
// first), sharded -> replicated (column then replicated), column -> row (none).
template <class T>
using mixed_net = sn::sequential<
    sn::dense<T, sn::row_split, act::gelu>, sn::dense<T, sn::column_split, act::tanh>,
    sn::dense<T, sn::replicated, act::sigmoid>, sn::dense<T, sn::column_split, act::relu>,
    sn::dense<T, sn::row_split, act::identity>>;
const std::vector<std::size_t> mixed_widths = {5, 7, 6, 4, 9, 3};

// 2D layers with every conversion they meet: replicated -> rows (first block2d), none between
// block2d and block2d_transposed (columns -> columns), rows -> replicated (column_split after
// block2d_transposed), sharded -> rows, and columns -> sharded for the loss.
template <class T>
using grid_net = sn::sequential<
    sn::dense<T, sn::block2d, act::gelu>, sn::dense<T, sn::block2d_transposed, act::tanh>,
    sn::dense<T, sn::column_split, act::relu>, sn::dense<T, sn::block2d, act::identity>>;
const std::vector<std::size_t> grid_widths = {5, 7, 6, 9, 3};
// And from 1D into 2D the other way round: sharded -> columns, rows -> sharded (row_split),
// replicated -> columns, and rows -> sharded for the loss.
template <class T>
using grid_net_transposed = sn::sequential<
    sn::dense<T, sn::column_split, act::relu>, sn::dense<T, sn::block2d_transposed, act::tanh>,
    sn::dense<T, sn::row_split, act::sigmoid>, sn::dense<T, sn::block2d_transposed, act::identity>>;

// The same layers with block2d written twice in a row: the second is built as
// block2d_transposed, so no conversion runs between them.
template <class T>
using grid_net_oriented =
    sn::sequential<sn::dense<T, sn::block2d, act::gelu>, sn::dense<T, sn::block2d, act::tanh>,
                   sn::dense<T, sn::column_split, act::relu>,
                   sn::dense<T, sn::block2d, act::identity>>;
static_assert(std::is_same_v<grid_net_oriented<float>::layers_type,
                             std::tuple<sn::dense<float, sn::block2d, act::gelu>,
                                        sn::dense<float, sn::block2d_transposed, act::tanh>,
                                        sn::dense<float, sn::column_split, act::relu>,
                                        sn::dense<float, sn::block2d, act::identity>>>);

// The same layers, chosen at run time: block2d after a block2d becomes block2d_transposed.
const std::vector<sn::layer_spec> grid_specs = {
    {"block2d", "gelu"}, {"block2d", "tanh"}, {"column", "relu"}, {"block2d", "identity"}};

template <class T>
using runtime_net = sn::network<T, sn::model_group<sn::mpi_communicator>>;

/// Every rows x cols grid of p ranks.
std::vector<sn::grid_shape> grids_of(std::size_t p) {
    std::vector<sn::grid_shape> grids;
    for (std::size_t rows = 1; rows <= p; ++rows)
        if (p % rows == 0) grids.push_back({rows, p / rows});
    return grids;
}

using traced_mpi = sn::tracing_communicator<sn::mpi_communicator>;

/// Floating-point elements all-reduced and all-gathered by every communicator of a grid.
std::size_t grid_elements(sn::model_group<traced_mpi>& g) {
    std::size_t n = 0;
    for (traced_mpi* c : {&g.all(), &g.row(), &g.column()})
        n += c->counts().all_reduce.elements + c->counts().all_gather.elements;
    return n;
}
void reset_grid(sn::model_group<traced_mpi>& g) {
    g.all().reset();
    g.row().reset();
    g.column().reset();
}

/// MSE of the network on (x, target); gradient into grad. The same value on every rank.
template <class Net, class Comm>
double mse_loss(Net& net, Comm& group, const sn::matrix<double>& x,
                const sn::matrix<double>& target, sn::matrix<double>& grad) {
    sn::mean_squared_error<double> loss(target.shape(1));
    const auto& y = net.forward(group, x);
    return sn::with_loss_group(group, net.output(), [&]<sn::layout L>(auto& holders) {
        return loss.template forward_backward<L>(holders, y, target, x.shape(0), grad).loss;
    });
}

/// Every layer's weight gradient, gathered whole. Collective over group.
template <class Net, class Comm>
std::vector<sn::matrix<double>> gathered_weight_grads(Net& net, Comm& group) {
    std::vector<sn::matrix<double>> out;
    sn::visit_layers(net, [&](auto& l, auto) {
        // Gather a gradient as if it were the weight: swap in, gather, swap back.
        std::swap(l.weight(), l.weight_grad());
        out.push_back(l.gather_weight(group));
        std::swap(l.weight(), l.weight_grad());
    });
    return out;
}

/// Adds h to global weight (row, col) of layer `layer` on whichever ranks hold it.
template <class Net>
void nudge(Net& net, std::size_t layer, std::size_t row, std::size_t col, double h) {
    sn::visit_layers(net, [&](auto& l, std::size_t index) {
        if (index == layer && l.weight_rows().contains(row) && l.weight_cols().contains(col))
            l.weight()(l.weight_rows().to_local(row), l.weight_cols().to_local(col)) += h;
    });
}

/// Central differences of the MSE on `entries` weights of every layer against `analytic`, the
/// gathered weight gradients; h chosen for double: the truncation error is O(h^2) ~ 1e-10 and
/// rounding O(eps / h) ~ 1e-10. Collective over group.
template <class Net, class Comm>
void check_finite_differences(Net& net, Comm& group, const sn::matrix<double>& x,
                              const sn::matrix<double>& target,
                              const std::vector<std::size_t>& widths,
                              const std::vector<sn::matrix<double>>& analytic,
                              std::size_t entries) {
    const double h = 1e-5;
    sn::matrix<double> grad;
    for (std::size_t l = 0; l < analytic.size(); ++l)
        for (std::size_t k = 0; k < entries; ++k) {
            const std::size_t i = (3 * k + l) % widths[l], j = (5 * k + 2 * l) % widths[l + 1];
            nudge(net, l, i, j, h);
            const double up = mse_loss(net, group, x, target, grad);
            nudge(net, l, i, j, -2 * h);
            const double down = mse_loss(net, group, x, target, grad);
            nudge(net, l, i, j, h);
            const double numeric = (up - down) / (2 * h);
            CAPTURE(l);
            CAPTURE(i);
            CAPTURE(j);
            CHECK(std::abs(numeric - analytic[l](i, j)) <= 1e-7 * (1.0 + std::abs(numeric)));
        }
}

/// A user-defined partition whose weight gradient is only a partial sum over the model-parallel
/// group (here: replicated weights, each rank contributing 1/P of the gradient), and which says
/// so in its type.
struct partial_gradient_replicated : sn::replicated {
    static constexpr std::string_view name = "partial_gradient_replicated";
    using weight_gradient_groups =
        sn::reduced_over<sn::model_parallel_group, sn::data_parallel_group>;

    template <sn::gemm_policy Gemm = sn::xsimd_gemm, sn::communicator Comm, class T>
    static void backward(Comm& comm, const sn::matrix<T>& x, const sn::matrix<T>& w,
                         const sn::matrix<T>& dz, sn::matrix<T>* dx, sn::matrix<T>& dw, T* dbias) {
        sn::replicated::backward<Gemm>(comm, x, w, dz, dx, dw, dbias);
        dw /= static_cast<T>(comm.size());
    }
};
static_assert(sn::partition_policy<partial_gradient_replicated>);

/// A data-parallel group that records, for each non-blocking all-reduce started, whether a
/// watched gradient (the first layer's) was still unwritten (NaN) at that moment.
class start_recorder : public sn::mpi_communicator {
  public:
    explicit start_recorder(sn::mpi_communicator inner) : sn::mpi_communicator(std::move(inner)) {}
    start_recorder split(int color, int key) const {
        return start_recorder(sn::mpi_communicator::split(color, key));
    }
    const double* watched = nullptr;
    std::size_t starts = 0, starts_before_watched = 0, blocking = 0;

    template <class T>
    sn::detail::mpi_request all_reduce_async(T* data, std::size_t n, sn::reduce_op op) {
        ++starts;
        if (watched && std::isnan(*watched)) ++starts_before_watched;
        return sn::mpi_communicator::all_reduce_async(data, n, op);
    }
    template <class T>
    void all_reduce(T* data, std::size_t n, sn::reduce_op op) {
        ++blocking;
        sn::mpi_communicator::all_reduce(data, n, op);
    }
};

}  // namespace

TEST_SUITE("mpi") {
    TEST_CASE("a parameter whose type asks for a model-parallel reduction gets it") {
        sn::mpi_communicator world;
        sn::local_communicator one_replica;
        using net_type = sn::sequential<sn::dense<double, partial_gradient_replicated, act::tanh>,
                                        sn::dense<double, sn::replicated, act::identity>>;
        using reference_type = sn::sequential<sn::dense<double, sn::replicated, act::tanh>,
                                              sn::dense<double, sn::replicated, act::identity>>;
        net_type net(world, {3, 4, 2});
        reference_type reference(world, {3, 4, 2});
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(2, 3, 1), {0, 2}, {0, 3});
        sn::matrix<double> dy = net.forward(world, x);
        sn::matrix<double> dy_reference = reference.forward(world, x);
        net.backward(world, dy);
        reference.backward(world, dy_reference);
        if (world.size() > 1)
            CHECK_THROWS_WITH_AS(net.reduce_gradients(one_replica),
                                 doctest::Contains("fc1.weight must also be reduced over the "
                                                   "model-parallel group"),
                                 sn::error);
        net.reduce_gradients(world, one_replica);
        CHECK(net.gradients() == sn::gradient_state::reduced);
        CHECK(xt::amax(xt::abs(net.layer<0>().weight_grad() -
                               reference.layer<0>().weight_grad()))() < 1e-14);
    }

    TEST_CASE("network gradients match finite differences and one rank") {
        sn::mpi_communicator world;
        sn::network_options options;
        options.seed = 3;
        mixed_net<double> net(world, mixed_widths, options);
        const std::size_t batch = 4;
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 5, 21), {0, batch}, {0, 5});
        const auto target =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 3, 22), {0, batch}, {0, 3});
        sn::matrix<double> grad;
        mse_loss(net, world, x, target, grad);
        net.backward(world, grad);
        const std::vector<sn::matrix<double>> analytic = gathered_weight_grads(net, world);

        // The same network on one rank (local_communicator): same global weights by
        // construction, so gradients must agree to rounding.
        sn::local_communicator alone;
        mixed_net<double> single(alone, mixed_widths, options);
        sn::matrix<double> grad1;
        mse_loss(single, alone, x, target, grad1);
        single.backward(alone, grad1);
        const std::vector<sn::matrix<double>> reference = gathered_weight_grads(single, alone);
        for (std::size_t l = 0; l < analytic.size(); ++l) {
            CAPTURE(l);
            CHECK(xt::amax(xt::abs(analytic[l] - reference[l]))() < 1e-12);
        }

        // Central differences on a few entries of every layer.
        check_finite_differences(net, world, x, target, mixed_widths, analytic, 4);
    }

    TEST_CASE("a column -> row pair issues one all-reduce forward and one backward") {
        sn::tracing_communicator<sn::mpi_communicator> group;
        // The pair sits behind a replicated layer, as in a deeper network: the first layer of a
        // network computes no input gradient, so it would hide the pair's backward all-reduce.
        using net_type = sn::sequential<sn::dense<float, sn::replicated, act::relu>,
                                        sn::dense<float, sn::column_split, act::relu>,
                                        sn::dense<float, sn::row_split, act::identity>>;
        net_type net(group, {5, 6, 10, 4});
        const auto x = sn::test::block_of<float>(sn::test::random_dmatrix(3, 5, 1), {0, 3}, {0, 5});
        group.reset();
        const auto& y = net.forward(group, x);
        CHECK(group.counts().all_reduce.calls == 1);
        CHECK(group.counts().all_reduce.elements == 3 * 4);
        CHECK(group.counts().all_gather.calls == 0);
        sn::matrix<float> dy = y;
        group.reset();
        net.backward(group, dy);
        CHECK(group.counts().all_reduce.calls == 1);
        CHECK(group.counts().all_reduce.elements == 3 * 6);
        CHECK(group.counts().all_gather.calls == 0);
        // The plan says the same.
        const auto plan = net.plan(3);
        if (group.size() > 1) {
            CHECK(plan.layers[2].forward_all_reduce == 3 * 4);
            CHECK(plan.layers[1].backward_all_reduce == 3 * 6);
            CHECK(plan.model_parallel_elements() == 3 * 4 + 3 * 6);
        }
    }

    TEST_CASE("printing a plan leaves the stream's formatting as it was") {
        sn::mpi_communicator world;
        mixed_net<float> net(world, mixed_widths);
        const sn::network_plan plan = net.plan(4, 2);

        // Default formatting: a number printed after the plan keeps its six significant digits.
        std::ostringstream plain;
        plain << plan << 2.0 / 3.0;
        CHECK(plain.str().ends_with("\n0.666667"));

        // The caller's own flags, precision, fill and width survive the plan.
        std::ostringstream out;
        out << std::scientific << std::showpos << std::setprecision(12) << std::setfill('*');
        const std::ios::fmtflags flags = out.flags();
        out << plan;
        CHECK(out.flags() == flags);
        CHECK(out.precision() == 12);
        CHECK(out.fill() == '*');
        CHECK(out.width() == 0);
        out.str("");
        out << std::setw(6) << 7 << ' ' << 2.0 / 3.0;
        CHECK(out.str() == "****+7 +6.666666666667e-01");
    }

    TEST_CASE("the cost model predicts the collectives the network issues (1D partitions)") {
        // Every 1D partition and conversion (mixed_net), on this run's P ranks: the calls and
        // element counts of cost::predict_step, phase by phase, against the tracing counts.
        namespace sc = shardnet::cost;
        sn::tracing_communicator<sn::mpi_communicator> group;
        mixed_net<double> net(group, mixed_widths);
        const std::size_t batch = 4;
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 5, 1), {0, batch}, {0, 5});
        group.reset();
        sn::matrix<double> dy = net.forward(group, x);
        const sn::traffic forward = group.counts();
        group.reset();
        net.backward(group, dy);
        const sn::traffic backward = group.counts();

        using k = sc::partition_kind;
        const sc::step_prediction predicted = sc::predict_step(
            sc::cluster_machine(), sc::network_shape{mixed_widths, batch, 1, 8},
            {1, 1, group.size()}, {k::row, k::column, k::replicated, k::column, k::row});
        const auto [model_forward, model_backward] = sn::test::predicted_traffic(predicted);
        if (group.size() > 1) {
            CHECK(forward.all_reduce == model_forward.all_reduce);
            CHECK(forward.all_gather == model_forward.all_gather);
            CHECK(backward.all_reduce == model_backward.all_reduce);
            CHECK(backward.all_gather == model_backward.all_gather);
            CHECK(forward.reduce_scatter.calls + backward.reduce_scatter.calls == 0);
        } else {
            CHECK(model_forward.arithmetic_calls() + model_backward.arithmetic_calls() == 0);
        }
    }

    TEST_CASE("the cost model predicts the collectives of 2D networks on every grid") {
        // grid_net (block2d, block2d_transposed, column_split, block2d) with widths every grid
        // of 1 to 4 ranks divides, so that every rank's blocks have the model's sizes. Every
        // communicator of the grid is traced; the model's calls and elements, phase by phase.
        namespace sc = shardnet::cost;
        const std::vector<std::size_t> widths = {12, 24, 12, 36, 12};
        const std::size_t batch = 4;
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 12, 1), {0, batch}, {0, 12});
        for (const sn::grid_shape shape : grids_of(sn::mpi_communicator().size())) {
            CAPTURE(shape.rows);
            CAPTURE(shape.cols);
            sn::model_group<traced_mpi> group(traced_mpi{}, shape);
            grid_net<double> net(group, widths);
            reset_grid(group);
            sn::matrix<double> dy = net.forward(group, x);
            const std::size_t forward = grid_elements(group);
            reset_grid(group);
            net.backward(group, dy);
            const std::size_t backward = grid_elements(group);

            using k = sc::partition_kind;
            const sc::step_prediction predicted = sc::predict_step(
                sc::cluster_machine(), sc::network_shape{widths, batch, 1, 8},
                {1, shape.rows, shape.cols}, {k::block2d, k::block2d, k::column, k::block2d});
            const auto [ahead, back] = sn::test::predicted_traffic(predicted);
            const std::size_t model_forward = ahead.all_reduce.elements + ahead.all_gather.elements;
            const std::size_t model_backward = back.all_reduce.elements + back.all_gather.elements;
            // (One rank: the 1D layer still calls its all-reduce over one rank.)
            if (shape.size() > 1) {
                CHECK(forward == model_forward);
                CHECK(backward == model_backward);
            }
        }
    }

    TEST_CASE("the first layer computes no input gradient and so communicates nothing back") {
        sn::tracing_communicator<sn::mpi_communicator> group;
        using net_type = sn::sequential<sn::dense<float, sn::column_split, act::relu>,
                                        sn::dense<float, sn::row_split, act::identity>>;
        net_type net(group, {6, 10, 4});
        const auto x = sn::test::block_of<float>(sn::test::random_dmatrix(3, 6, 1), {0, 3}, {0, 6});
        sn::matrix<float> dy = net.forward(group, x);
        group.reset();
        net.backward(group, dy);
        CHECK(group.counts().arithmetic_calls() == 0);
        CHECK(net.plan(3).layers[0].backward_all_reduce == 0);
    }

    TEST_CASE("conversions: all-gather forward after a sharded output, as planned") {
        sn::tracing_communicator<sn::mpi_communicator> group;
        using net_type = sn::sequential<sn::dense<double, sn::column_split, act::tanh>,
                                        sn::dense<double, sn::replicated, act::identity>>;
        net_type net(group, {4, 7, 2});
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(5, 4, 1), {0, 5}, {0, 4});
        group.reset();
        net.forward(group, x);
        // On one rank the blocks are the whole activation: nothing to gather.
        const bool gathers = group.size() > 1;
        CHECK(group.counts().all_gather.calls == (gathers ? 1 : 0));
        CHECK(group.counts().all_gather.elements == (gathers ? 5 * 7 : 0));
        CHECK(net.plan(5).layers[1].forward_all_gather == (gathers ? 5 * 7 : 0));
    }

    TEST_CASE_TEMPLATE("sharded cross-entropy equals the replicated one, without gathering", T,
                       float, double) {
        sn::tracing_communicator<sn::mpi_communicator> group;
        const std::size_t batch = 6, classes = 7;
        const sn::test::dmatrix z = sn::test::random_dmatrix(batch, classes, 4);
        auto logits = sn::test::block_of<T>(z, {0, batch}, {0, classes});
        logits(2, 3) = logits(2, 5) = T(3);  // a tie: argmax must pick class 3
        std::vector<std::uint32_t> labels = {0, 6, 3, 2, 5, 1};
        const sn::shard_range block = sn::balanced_shard(classes, group.size(), group.rank());
        sn::matrix<T> sharded_logits = sn::matrix<T>::from_shape({batch, block.size()});
        for (std::size_t i = 0; i < batch; ++i)
            for (std::size_t j = 0; j < block.size(); ++j)
                sharded_logits(i, j) = logits(i, block.to_global(j));

        for (double smoothing : {0.0, 0.1}) {
            CAPTURE(smoothing);
            sn::softmax_cross_entropy<T> loss(classes, smoothing);
            sn::matrix<T> grad_full, grad_shard;
            sn::local_communicator alone;
            const auto full = loss.template forward_backward<sn::layout::replicated>(
                alone, logits, labels, 8, grad_full, true);
            group.reset();
            const auto shard = loss.template forward_backward<sn::layout::sharded>(
                group, sharded_logits, labels, 8, grad_shard, true);
            CHECK(group.counts().all_gather.calls == 0);
            // Row maxima of z and -z; then the three sums per row (as integers on their grids)
            // and the argmax indices.
            CHECK(group.counts().all_reduce.elements == batch * 2);
            CHECK(group.counts().control.elements == batch * (3 + 1));
            const double tol = 64 * std::numeric_limits<T>::epsilon();
            // The sums over classes are exact, so the split changes no bit (on any P).
            CHECK(full.loss == shard.loss);
            CHECK(full.correct == shard.correct);
            double worst = 0;
            for (std::size_t i = 0; i < batch; ++i)
                for (std::size_t j = 0; j < block.size(); ++j)
                    worst = std::max(worst, std::abs(double(grad_shard(i, j)) -
                                                     double(grad_full(i, block.to_global(j)))));
            CHECK(worst == 0);

            // Against the definition, in double: mean of lse - (1-eps) z_y - eps/C sum z.
            double expected = 0;
            std::size_t right = 0;
            for (std::size_t i = 0; i < batch; ++i) {
                double m = -1e300, s = 0, total = 0;
                std::size_t arg = 0;
                for (std::size_t j = 0; j < classes; ++j)
                    if (double(logits(i, j)) > m) m = double(logits(i, j)), arg = j;
                for (std::size_t j = 0; j < classes; ++j)
                    s += std::exp(double(logits(i, j)) - m), total += double(logits(i, j));
                expected += (m + std::log(s) - (1 - smoothing) * double(logits(i, labels[i])) -
                             smoothing / classes * total) /
                            8;
                right += arg == labels[i];
            }
            CHECK(std::abs(full.loss - expected) <= tol * (1 + expected));
            CHECK(full.correct == right);
        }
    }

    TEST_CASE_TEMPLATE("training gives the same losses on every grid", T, float, double) {
        sn::mpi_communicator world;
        sn::synthetic_options data_options;
        data_options.samples = 96;
        data_options.width = 9;
        data_options.classes = 5;
        const auto data = sn::make_synthetic<T>(data_options);
        using net_type = sn::sequential<sn::dense<T, sn::column_split, act::relu>,
                                        sn::dense<T, sn::row_split, act::gelu>,
                                        sn::dense<T, sn::column_split, act::identity>>;
        const std::vector<std::size_t> widths = {9, 13, 11, 5};
        sn::trainer_options options;
        options.epochs = 1;
        options.batch = 5;  // 20 steps; the last has one row, fewer than the replicas
        options.seed = 9;
        options.report = false;

        auto run = [&]<class Comm>(sn::process_grid<Comm>& grid) {
            sn::network_options net_options;
            net_options.seed = 4;
            net_type net(grid.model(), widths, net_options);
            sn::optimizer<T> opt(sn::adam(1e-2));
            sn::trainer<net_type, Comm> trainer(grid, net, opt, options);
            return trainer.fit(data).step_losses;
        };
        sn::process_grid<sn::local_communicator> single(sn::local_communicator{});
        const auto reference = run(single);
        REQUIRE(reference.size() == 20);
        // Float: the sums of a step are reordered by the split, so losses agree to a few
        // float ulps of the loss and Adam's normalization keeps it from growing over 20 steps.
        const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
        for (std::size_t d = 1; d <= world.size(); ++d) {
            if (world.size() % d != 0) continue;
            CAPTURE(d);
            sn::process_grid<sn::mpi_communicator> grid(world, d);
            for (const bool overlap : {false, true}) {
                CAPTURE(overlap);
                options.overlap_gradient_reduction = overlap;
                const auto losses = run(grid);
                double worst = 0;
                for (std::size_t s = 0; s < reference.size(); ++s)
                    worst = std::max(worst,
                                     std::abs(losses[s] - reference[s]) / std::abs(reference[s]));
                CHECK(worst < tol);
            }
        }
    }

    TEST_CASE("backward with a data-parallel group reduces each layer as soon as it is done") {
        // Every rank a replica (model-parallel group of one), each with its own rows.
        sn::mpi_communicator world;
        sn::local_communicator alone;
        start_recorder data(world);
        using net_type = sn::sequential<sn::dense<double, sn::column_split, act::relu>,
                                        sn::dense<double, sn::row_split, act::tanh>,
                                        sn::dense<double, sn::column_split, act::identity>>;
        net_type net(alone, {6, 8, 7, 3});
        net_type reference(alone, {6, 8, 7, 3});
        const auto x = sn::test::block_of<double>(
            sn::test::random_dmatrix(4, 6, static_cast<std::uint32_t>(10 + world.rank())), {0, 4},
            {0, 6});
        const sn::matrix<double> dy = net.forward(alone, x);
        const sn::matrix<double> dy_reference = reference.forward(alone, x);
        net.layer<0>().weight_grad().fill(std::numeric_limits<double>::quiet_NaN());
        data.watched = net.layer<0>().weight_grad().data();

        net.backward(alone, dy, data);
        reference.backward(alone, dy_reference);
        reference.reduce_gradients(world);

        CHECK(net.gradients() == sn::gradient_state::reduced);
        CHECK(data.blocking == 0);
        if (world.size() > 1) {
            // Weight and bias of each of the 3 layers, non-blocking; those of layers 3 and 2
            // before the first layer's gradient even exists.
            CHECK(data.starts == 6);
            CHECK(data.starts_before_watched == 4);
        } else {
            CHECK(data.starts == 0);  // one replica: nothing to reduce
        }
        // Same sums; with more than two ranks the algorithms may add in another order.
        for (std::size_t p = 0; p < net.parameters().size(); ++p) {
            const auto& ours = net.parameters()[p];
            const auto& theirs = reference.parameters()[p];
            CAPTURE(ours.name);
            double scale = 0, worst = 0;
            for (std::size_t i = 0; i < ours.size; ++i) {
                scale = std::max(scale, std::abs(theirs.grad[i]));
                worst = std::max(worst, std::abs(ours.grad[i] - theirs.grad[i]));
            }
            CHECK(worst <= 8.0 * static_cast<double>(world.size()) * 1e-16 * scale);
        }
    }

    TEST_CASE("the optimizer refuses gradients that were not reduced") {
        sn::mpi_communicator world;
        sn::sequential<sn::dense<float, sn::column_split, act::relu>,
                       sn::dense<float, sn::row_split, act::identity>>
            net(world, {3, 4, 2});
        sn::optimizer<float> opt(sn::sgd(0.1));
        const auto x = sn::test::block_of<float>(sn::test::random_dmatrix(2, 3, 1), {0, 2}, {0, 3});
        sn::matrix<float> dy = net.forward(world, x);
        CHECK_THROWS_WITH_AS(opt.step(net, world), doctest::Contains("call backward() first"),
                             sn::error);
        net.backward(world, dy);
        CHECK_THROWS_WITH_AS(opt.step(net, world), doctest::Contains("not reduced"), sn::error);
        sn::local_communicator one_replica;
        net.reduce_gradients(one_replica);
        CHECK_NOTHROW(opt.step(net, world));
    }

    TEST_CASE("ranks built with different widths stop together") {
        sn::mpi_communicator world;
        if (world.size() > 1) {
            const std::size_t hidden = world.rank() == 0 ? 8 : 9;
            using net_type = sn::sequential<sn::dense<float, sn::column_split, act::relu>,
                                            sn::dense<float, sn::row_split, act::identity>>;
            CHECK_THROWS_WITH_AS(
                net_type(world, {3, hidden, 2}),
                doctest::Contains("network configurations differ between ranks: widths is "
                                  "3,8,2 on rank 0, 3,9,2 on rank 1"),
                sn::error);
        }
    }

    TEST_CASE("ranks fed different batch sizes stop together, told the range") {
        sn::mpi_communicator world;
        using net_type = sn::sequential<sn::dense<float, sn::column_split, act::relu>,
                                        sn::dense<float, sn::row_split, act::identity>>;
        net_type net(world, {3, 8, 2});
        if (world.size() > 1) {
            // Batch 4 on rank 0, 5 elsewhere: every rank names both ends, 4 and 5.
            const std::size_t batch = world.rank() == 0 ? 4 : 5;
            const auto x = sn::test::block_of<float>(sn::test::random_dmatrix(batch, 3, 1),
                                                     {0, batch}, {0, 3});
            CHECK_THROWS_WITH_AS(net.forward(world, x),
                                 "sequential: ranks of a model-parallel group hold different "
                                 "batch sizes (4 to 5); they must read the same rows",
                                 sn::error);
        }
    }

    TEST_CASE_TEMPLATE("2D networks: gradients, norm and traffic on every grid equal one rank's",
                       Net, grid_net<double>, grid_net_transposed<double>,
                       grid_net_oriented<double>) {
        sn::mpi_communicator world;
        sn::network_options options;
        options.seed = 6;
        const std::size_t batch = 4;
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 5, 31), {0, batch}, {0, 5});
        const auto target =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 3, 32), {0, batch}, {0, 3});
        sn::local_communicator alone;
        Net single(alone, grid_widths, options);
        sn::matrix<double> grad1;
        const double loss1 = mse_loss(single, alone, x, target, grad1);
        single.backward(alone, grad1);
        const auto reference = gathered_weight_grads(single, alone);
        const double norm1 = sn::optimizer<double>::global_norm(single.parameters(), alone);

        for (const sn::grid_shape shape : grids_of(world.size())) {
            CAPTURE(shape.rows);
            CAPTURE(shape.cols);
            sn::model_group<traced_mpi> group(traced_mpi{}, shape);
            Net net(group, grid_widths, options);
            sn::matrix<double> grad;
            CHECK(mse_loss(net, group, x, target, grad) == doctest::Approx(loss1).epsilon(1e-13));
            net.backward(group, grad);
            const auto analytic = gathered_weight_grads(net, group);
            for (std::size_t l = 0; l < analytic.size(); ++l) {
                CAPTURE(l);
                CHECK(xt::amax(xt::abs(analytic[l] - reference[l]))() < 1e-12);
            }
            // Copies of a block (a block2d bias down a grid column) count once.
            CHECK(sn::optimizer<double>::global_norm(net.parameters(), group) ==
                  doctest::Approx(norm1).epsilon(1e-12));

            // The collectives move what the plan says, every grid communicator included.
            const sn::network_plan plan = net.plan(batch);
            std::size_t planned_forward = 0, planned_backward = 0;
            for (const auto& l : plan.layers) {
                planned_forward += l.forward_all_reduce + l.forward_all_gather;
                planned_backward += l.backward_all_reduce + l.backward_all_gather;
            }
            // (On one rank the 1D layers still call their all-reduces, over one rank, which the
            // plan does not count as traffic.)
            reset_grid(group);
            const auto& y = net.forward(group, x);
            if (world.size() > 1) CHECK(grid_elements(group) == planned_forward);
            const sn::matrix<double> dy = y;
            reset_grid(group);
            net.backward(group, dy);
            if (world.size() > 1) CHECK(grid_elements(group) == planned_backward);
            CHECK(plan.model_parallel_elements() == planned_forward + planned_backward);
            if (world.size() == 1) CHECK(plan.model_parallel_elements() == 0);
        }
    }

    TEST_CASE_TEMPLATE("2D training gives the same losses on every data x rows x cols grid", T,
                       float, double) {
        sn::mpi_communicator world;
        sn::synthetic_options data_options;
        data_options.samples = 60;
        data_options.width = 5;
        data_options.classes = 3;
        const auto data = sn::make_synthetic<T>(data_options);
        using net_type = grid_net<T>;
        sn::trainer_options options;
        options.epochs = 1;
        options.batch = 6;
        options.seed = 2;
        options.report = false;
        auto run = [&]<class Comm>(sn::process_grid<Comm>& grid) {
            sn::network_options net_options;
            net_options.seed = 8;
            net_type net(grid.model(), grid_widths, net_options);
            sn::optimizer<T> opt(sn::adam(1e-2));
            sn::trainer<net_type, Comm> trainer(grid, net, opt, options);
            return trainer.fit(data).step_losses;
        };
        sn::process_grid<sn::local_communicator> single(sn::local_communicator{});
        const auto reference = run(single);
        REQUIRE(reference.size() == 10);
        const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
        for (std::size_t d = 1; d <= world.size(); ++d) {
            if (world.size() % d != 0) continue;
            for (const sn::grid_shape model : grids_of(world.size() / d)) {
                CAPTURE(d);
                CAPTURE(model.rows);
                CAPTURE(model.cols);
                sn::process_grid<sn::mpi_communicator> grid(world, d, model);
                CHECK(grid.model_grid() == model);
                const auto losses = run(grid);
                REQUIRE(losses.size() == reference.size());
                double worst = 0;
                for (std::size_t i = 0; i < losses.size(); ++i)
                    worst = std::max(
                        worst, std::abs(losses[i] - reference[i]) / (1 + std::abs(reference[i])));
                CHECK(worst <= tol);
            }
        }
    }

    TEST_CASE_TEMPLATE(
        "network<> trains bitwise as sequential<> with the same layers, on every "
        "grid",
        T, float, double) {
        sn::mpi_communicator world;
        sn::synthetic_options data_options;
        data_options.samples = 60;
        data_options.width = 5;
        data_options.classes = 3;
        const auto data = sn::make_synthetic<T>(data_options);
        sn::trainer_options options;
        options.epochs = 1;
        options.batch = 6;
        options.seed = 2;
        options.report = false;
        sn::network_options net_options;
        net_options.seed = 8;
        for (std::size_t d = 1; d <= world.size(); ++d) {
            if (world.size() % d != 0) continue;
            for (const sn::grid_shape model : grids_of(world.size() / d)) {
                CAPTURE(d);
                CAPTURE(model.rows);
                CAPTURE(model.cols);
                sn::process_grid<sn::mpi_communicator> grid(world, d, model);
                grid_net<T> fixed(grid.model(), grid_widths, net_options);
                runtime_net<T> chosen(grid.model(), grid_widths, grid_specs, net_options);
                CHECK(chosen.layer_specs()[1].partition == "block2d_transposed");
                CHECK(chosen.output() == grid_net<T>::output_layout);
                std::vector<std::vector<double>> losses;
                auto fit = [&](auto& net) {
                    sn::optimizer<T> opt(sn::adam(1e-2));
                    sn::trainer trainer(grid, net, opt, options);
                    losses.push_back(trainer.fit(data).step_losses);
                };
                fit(fixed);
                fit(chosen);
                CHECK(losses[0] == losses[1]);
                const auto a = gathered_weight_grads(fixed, grid.model());
                const auto b = gathered_weight_grads(chosen, grid.model());
                for (std::size_t l = 0; l < a.size(); ++l)
                    CHECK(xt::amax(xt::abs(a[l] - b[l]))() == 0);
                std::ostringstream plan_a, plan_b;
                plan_a << fixed.plan(6, d);
                plan_b << chosen.plan(6, d);
                CHECK(plan_a.str() == plan_b.str());
            }
        }
    }

    TEST_CASE("a deep network chosen at run time matches finite differences and one rank") {
        sn::mpi_communicator world;
        // Seven layers, every partition and activation, uneven widths.
        const std::vector<std::size_t> widths = {5, 9, 7, 8, 6, 7, 5, 3};
        const std::vector<sn::layer_spec> specs = {
            {"column", "relu"},  {"row", "gelu"},    {"replicated", "tanh"}, {"block2d", "sigmoid"},
            {"block2d", "relu"}, {"column", "gelu"}, {"block2d", "identity"}};
        sn::network_options options;
        options.seed = 12;
        const std::size_t batch = 4;
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 5, 41), {0, batch}, {0, 5});
        const auto target =
            sn::test::block_of<double>(sn::test::random_dmatrix(batch, 3, 42), {0, batch}, {0, 3});
        // One rank, as a one-rank model group (the same network type).
        sn::model_group<sn::mpi_communicator> alone(world.split(static_cast<int>(world.rank()), 0));
        runtime_net<double> single(alone, widths, specs, options);
        sn::matrix<double> grad1;
        mse_loss(single, alone, x, target, grad1);
        single.backward(alone, grad1);
        const auto reference = gathered_weight_grads(single, alone);

        const sn::grid_shape shape =
            world.size() == 4 ? sn::grid_shape{2, 2} : sn::grid_shape{1, world.size()};
        sn::model_group<sn::mpi_communicator> group(world, shape);
        runtime_net<double> net(group, widths, specs, options);
        REQUIRE(net.layer_count() == 7);
        sn::matrix<double> grad;
        mse_loss(net, group, x, target, grad);
        net.backward(group, grad);
        const auto analytic = gathered_weight_grads(net, group);
        for (std::size_t l = 0; l < analytic.size(); ++l) {
            CAPTURE(l);
            CHECK(xt::amax(xt::abs(analytic[l] - reference[l]))() < 1e-12);
        }
        check_finite_differences(net, group, x, target, widths, analytic, 3);
    }

    TEST_CASE("a network chosen at run time refuses unknown names on every rank, naming them") {
        sn::model_group<sn::mpi_communicator> group(sn::mpi_communicator{});
        CHECK_THROWS_WITH_AS(runtime_net<float>(group, {4, 3}, {{"diagonal", "relu"}}),
                             doctest::Contains("layer 1: unknown partition 'diagonal'"), sn::error);
        CHECK_THROWS_WITH_AS(
            runtime_net<float>(group, {4, 3, 2}, {{"row", "relu"}, {"row", "swish"}}),
            doctest::Contains("layer 2: unknown activation 'swish': expected one of"), sn::error);
        CHECK_THROWS_WITH_AS(runtime_net<float>(group, {4, 3}, {{"row", "relu"}, {"row", "relu"}}),
                             doctest::Contains("2 layers need 3 widths"), sn::error);
    }

    TEST_CASE("a grid that does not fit the world stops every rank with the numbers") {
        sn::mpi_communicator world;
        const std::size_t p = world.size();
        CHECK_THROWS_WITH_AS(sn::process_grid<sn::mpi_communicator>(world, 1, {2, p}),
                             doctest::Contains("needs"), sn::error);
        CHECK_THROWS_WITH_AS(sn::model_group<sn::mpi_communicator>(world, {p + 1, 1}),
                             doctest::Contains("grid needs"), sn::error);
    }

    TEST_CASE("clipping uses the global norm, each element counted once") {
        sn::mpi_communicator world;
        sn::network_options options;
        options.seed = 5;
        mixed_net<double> net(world, mixed_widths, options);
        sn::local_communicator alone;
        mixed_net<double> single(alone, mixed_widths, options);
        const auto x =
            sn::test::block_of<double>(sn::test::random_dmatrix(3, 5, 2), {0, 3}, {0, 5});
        const auto t =
            sn::test::block_of<double>(sn::test::random_dmatrix(3, 3, 3), {0, 3}, {0, 3});
        sn::matrix<double> g, g1;
        mse_loss(net, world, x, t, g);
        net.backward(world, g);
        mse_loss(single, alone, x, t, g1);
        single.backward(alone, g1);
        const double norm = sn::optimizer<double>::global_norm(net.parameters(), world);
        const double norm1 = sn::optimizer<double>::global_norm(single.parameters(), alone);
        CHECK(norm == doctest::Approx(norm1).epsilon(1e-12));
        CHECK(norm > 0);

        // What a step sends over the model group, with and without clipping, traced, against
        // the cost model's step collectives over it (floating-point values, integers).
        namespace sc = shardnet::cost;
        sn::tracing_communicator<sn::mpi_communicator> traced;
        sn::local_communicator one_replica;
        for (const bool clip : {false, true}) {
            CAPTURE(clip);
            sn::optimizer_options o = sn::sgd(0.01);
            o.clip_norm = clip ? norm / 2 : 0.0;
            sn::optimizer<double> opt(o);
            mse_loss(net, world, x, t, g);
            net.backward(world, g);
            net.reduce_gradients(one_replica);
            traced.reset();
            CHECK(opt.step(net, traced, sn::gradient_check::during_update).finite);
            const sn::traffic sent = traced.counts();

            sc::network_shape shape{mixed_widths, 3, 1, 8};
            shape.clips_gradients = clip;
            const sc::step_prediction predicted =
                sc::predict_step(sc::cluster_machine(), shape, {1, 1, world.size()},
                                 std::vector<sc::partition_kind>(mixed_widths.size() - 1,
                                                                 sc::partition_kind::replicated));
            std::size_t values = 0, integers = 0;
            for (const auto& c : predicted.step_collectives)
                if (c.group == world.size()) ++(c.integers ? integers : values);
            if (world.size() > 1) {
                CHECK(sent.all_reduce.calls == values);
                CHECK(sent.control.calls == integers);
                CHECK(values + integers == (clip ? 3u : 1u));
            }
        }
    }
}

namespace {

/// What optimizer::step needs of a network: shards of parameters with their gradients.
template <class T>
struct shard_set {
    std::vector<std::vector<T>> values, grads;
    std::vector<sn::parameter_ref<T>> refs;
    sn::gradient_state state = sn::gradient_state::reduced;

    /// Shards of the given sizes; element i of shard s starts at a value depending on (s, i)
    /// only through `key`, so two sets can hold the same values at different positions.
    shard_set(const std::vector<std::size_t>& sizes, std::uint64_t key, std::size_t shift = 0) {
        for (std::size_t s = 0; s < sizes.size(); ++s) {
            values.emplace_back(sizes[s]);
            grads.emplace_back(sizes[s]);
            for (std::size_t i = 0; i < sizes[s]; ++i) {
                values[s][i] = static_cast<T>(
                    2.0 * sn::uniform_at({key, 1, static_cast<std::uint32_t>(s)}, 0, i + shift) -
                    1);
                grads[s][i] = static_cast<T>(
                    2.0 * sn::uniform_at({key, 2, static_cast<std::uint32_t>(s)}, 0, i + shift) -
                    1);
            }
        }
        for (std::size_t s = 0; s < sizes.size(); ++s) {
            std::string name = "p";  // not "p" + ...: g++ 12 warns falsely (-Wrestrict)
            name += std::to_string(s);
            refs.push_back({name, values[s].data(), grads[s].data(), sizes[s], true});
        }
    }
    sn::gradient_state gradients() const { return state; }
    std::vector<sn::parameter_ref<T>>& parameters() { return refs; }
    void mark_updated() { state = sn::gradient_state::none; }
};

/// PyTorch's update rules (torch.optim.SGD, Adam, AdamW), written out element by element in
/// double, with clipping as torch.nn.utils.clip_grad_norm_ (factor clip / (norm + 1e-6)).
struct reference_optimizer {
    sn::optimizer_options o;
    std::vector<std::vector<double>> m, v;
    std::size_t t = 0;

    void step(std::vector<std::vector<double>>& w, std::vector<std::vector<double>> g) {
        double sum = 0;
        for (const auto& shard : g)
            for (double x : shard)
                sum += x * x;
        const double norm = std::sqrt(sum);
        if (o.clip_norm > 0 && norm > o.clip_norm)
            for (auto& shard : g)
                for (double& x : shard)
                    x *= o.clip_norm / (norm + 1e-6);
        if (m.empty())
            for (const auto& shard : w)
                m.emplace_back(shard.size(), 0.0), v.emplace_back(shard.size(), 0.0);
        ++t;
        for (std::size_t s = 0; s < w.size(); ++s)
            for (std::size_t i = 0; i < w[s].size(); ++i) {
                double d = g[s][i];
                double& x = w[s][i];
                if (o.method == sn::optimizer_options::kind::sgd) {
                    d += o.weight_decay * x;
                    if (o.momentum != 0) {
                        m[s][i] = t == 1 ? d : o.momentum * m[s][i] + d;
                        d = o.nesterov ? d + o.momentum * m[s][i] : m[s][i];
                    }
                    x -= o.lr * d;
                    continue;
                }
                if (o.method == sn::optimizer_options::kind::adamw)
                    x -= o.lr * o.weight_decay * x;
                else
                    d += o.weight_decay * x;
                m[s][i] = o.beta1 * m[s][i] + (1 - o.beta1) * d;
                v[s][i] = o.beta2 * v[s][i] + (1 - o.beta2) * d * d;
                const double mhat = m[s][i] / (1 - std::pow(o.beta1, static_cast<double>(t)));
                const double vhat = v[s][i] / (1 - std::pow(o.beta2, static_cast<double>(t)));
                x -= o.lr * mhat / (std::sqrt(vhat) + o.eps);
            }
    }
};

std::vector<sn::optimizer_options> optimizer_cases() {
    std::vector<sn::optimizer_options> cases = {sn::sgd(0.1), sn::sgd(0.1, 0.9, 0.01),
                                                sn::adam(0.01), sn::adam(0.01, 0.1),
                                                sn::adamw(0.01, 0.1)};
    sn::optimizer_options nesterov = sn::sgd(0.05, 0.8, 0.001);
    nesterov.nesterov = true;
    cases.push_back(nesterov);
    sn::optimizer_options clipped = sn::adam(0.01);
    clipped.clip_norm = 0.5;  // the gradients' norm is about 4: clipping acts
    cases.push_back(clipped);
    sn::optimizer_options clipped_sgd = sn::sgd(0.1, 0.9);
    clipped_sgd.clip_norm = 0.5;
    cases.push_back(clipped_sgd);
    return cases;
}

}  // namespace

TEST_SUITE("serial") {
    TEST_CASE_TEMPLATE("optimizer updates follow PyTorch's rules on shards of any length", T, float,
                       double) {
        // Lengths around the vector width (8 or 16 for float, 4 or 8 for double) and ragged.
        const std::vector<std::size_t> sizes = {1, 3, 7, 16, 17, 33, 0, 50};
        sn::local_communicator alone;
        for (const auto& options : optimizer_cases()) {
            CAPTURE(static_cast<int>(options.method));
            CAPTURE(options.momentum);
            CAPTURE(options.clip_norm);
            shard_set<T> net(sizes, 5);
            sn::optimizer<T> opt(options);
            reference_optimizer ref{options, {}, {}, 0};
            std::vector<std::vector<double>> w(sizes.size()), g(sizes.size());
            for (int update = 0; update < 3; ++update) {
                for (std::size_t s = 0; s < sizes.size(); ++s) {
                    w[s].assign(net.values[s].begin(), net.values[s].end());
                    g[s].assign(net.grads[s].begin(), net.grads[s].end());
                }
                ref.step(w, g);
                net.state = sn::gradient_state::reduced;
                const sn::step_report r = opt.step(net, alone, sn::gradient_check::during_update);
                CHECK(r.finite);
                CHECK(r.applied);
                for (std::size_t s = 0; s < sizes.size(); ++s)
                    for (std::size_t i = 0; i < sizes[s]; ++i) {
                        // A few roundings of T per update on values of order 1; the reference
                        // starts each update from our (rounded) weights.
                        const double tolerance =
                            16 * static_cast<double>(std::numeric_limits<T>::epsilon());
                        CHECK(std::abs(static_cast<double>(net.values[s][i]) - w[s][i]) <=
                              tolerance);
                    }
                // The gradients are left as backward produced them, even when clipped.
                for (std::size_t s = 0; s < sizes.size(); ++s)
                    for (std::size_t i = 0; i < sizes[s]; ++i)
                        CHECK(net.grads[s][i] == static_cast<T>(g[s][i]));
            }
        }
    }

    TEST_CASE_TEMPLATE("an element updates bitwise alike wherever it sits in its shard", T, float,
                       double) {
        // The same values held at offset 0 of long shards and at offsets 5 of shorter ones (as
        // on 1 and on P ranks): the vector body and the ragged tail must agree exactly.
        sn::local_communicator alone;
        for (const auto& options : optimizer_cases()) {
            if (options.clip_norm > 0) continue;  // the norm differs between the two sets
            shard_set<T> whole({40, 21}, 9);
            shard_set<T> cut({35, 16}, 9, 5);
            sn::optimizer<T> a(options), b(options);
            for (int update = 0; update < 3; ++update) {
                whole.state = cut.state = sn::gradient_state::reduced;
                a.step(whole, alone);
                b.step(cut, alone);
            }
            for (std::size_t s = 0; s < 2; ++s)
                for (std::size_t i = 0; i < cut.values[s].size(); ++i)
                    CHECK(cut.values[s][i] == whole.values[s][i + 5]);
        }
    }

    TEST_CASE_TEMPLATE("the global norm is its scalar definition's bits, ties on the grid included",
                       T, float, double) {
        // The definition: the largest square sets the grid, each square rounds onto it to nearest
        // even, the grid values add as integers. The largest square is 1 and the elements 2^10
        // or 2^11, so the grid's scale is 50 or 49: at 49, the squares of 2^-25 and 3·2^-25 sit
        // at 0.5 and 4.5 steps, where rounding halves away from zero would give 1 and 5.
        sn::local_communicator alone;
        std::size_t even_ties = 0;
        for (const std::size_t log_elements : {10, 11}) {
            CAPTURE(log_elements);
            std::vector<T> values(std::size_t{1} << log_elements);
            std::uint64_t state = 12345;
            for (auto& v : values) {
                state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                v = static_cast<T>(static_cast<double>(state >> 11) * 0x1p-53 - 0.5);
            }
            values[0] = T(1);
            std::size_t at = 1;
            for (int e = -40; e <= -10; ++e)
                for (const double m : {1.0, 3.0, -1.0, -3.0})
                    values[at++] = static_cast<T>(std::ldexp(m, e));
            // Ragged shards (no multiple of a batch width), and a copy that must not count.
            std::vector<T> copy = {T(10), T(-3)};
            const std::size_t cuts[] = {0, 7, 107, 440, values.size()};
            std::vector<sn::parameter_ref<T>> params;
            for (std::size_t q = 0; q + 1 < std::size(cuts); ++q)
                params.push_back({"shard", values.data() + cuts[q], values.data() + cuts[q],
                                  cuts[q + 1] - cuts[q], true});
            params.push_back({"copy", copy.data(), copy.data(), copy.size(), false});

            const sn::fixed_point_grid grid(1.0, values.size());
            const double step = grid.from_grid(1);
            std::int64_t sum = 0;
            for (const T v : values) {
                const double square = static_cast<double>(v) * static_cast<double>(v);
                const std::int64_t q = grid.to_grid(square);
                if (std::abs(grid.from_grid(q) - square) == step / 2 && q % 2 == 0) ++even_ties;
                sum += q;
            }
            const double expected = std::sqrt(grid.from_grid(sum));
            CHECK(sn::optimizer<T>::global_norm(params, alone) == expected);

            values[440] = std::numeric_limits<T>::quiet_NaN();
            CHECK(sn::optimizer<T>::global_norm(params, alone) ==
                  std::numeric_limits<double>::infinity());
            values[440] = -std::numeric_limits<T>::infinity();
            CHECK(sn::optimizer<T>::global_norm(params, alone) ==
                  std::numeric_limits<double>::infinity());
        }
        CHECK(even_ties > 0);  // the data did reach the case the rounding mode decides
    }

    TEST_CASE("a non-finite gradient: skipped before the update, or reported after it") {
        sn::local_communicator alone;
        for (const double bad :
             {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
              -std::numeric_limits<double>::infinity()}) {
            for (const double clip : {0.0, 0.5}) {
                CAPTURE(bad);
                CAPTURE(clip);
                sn::optimizer_options options = sn::adam(0.01);
                options.clip_norm = clip;
                // Poison the last element of a ragged shard: the padded tail must see it.
                shard_set<double> net({16, 19}, 3);
                net.grads[1][18] = bad;
                const auto before = net.values;

                sn::optimizer<double> skip(options);
                sn::step_report r = skip.step(net, alone, sn::gradient_check::before_update);
                CHECK_FALSE(r.finite);
                CHECK_FALSE(r.applied);
                CHECK(net.values == before);
                CHECK(skip.updates() == 0);

                sn::optimizer<double> stop(options);
                net.state = sn::gradient_state::reduced;
                r = stop.step(net, alone, sn::gradient_check::during_update);
                CHECK_FALSE(r.finite);
                // Without clipping the update's own pass found it, after updating; with
                // clipping the norm found it first and nothing moved.
                CHECK(r.applied == (clip == 0.0));
                CHECK((net.values == before) == (clip != 0.0));

                sn::optimizer<double> blind(options);
                net.values = before;
                net.state = sn::gradient_state::reduced;
                CHECK(blind.step(net, alone, sn::gradient_check::none).finite);
            }
        }
    }
}
