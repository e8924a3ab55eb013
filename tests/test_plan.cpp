// The cost model and the planner: collective formulas against hand-computed values, the traffic
// each partition causes against the table of issue 12, plans that do not change between runs
// or through a machine file, the machine file's errors, and a calibration on a tiny problem
// (its shape and sanity only: tests never assert a time).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/cost/auto_plan.hpp"
#include "shardnet/cost/calibrate.hpp"
#include "shardnet/cost/planner.hpp"

namespace sc = shardnet::cost;
using sc::partition_kind;
using sc::step_phase;

namespace {

/// alpha 1 us, beta 1 ns/byte (1 GB/s), gamma 0.1 ns/byte (10 GB/s): round numbers by hand.
sc::machine round_machine() {
    sc::machine m;
    m.name = "round";
    m.latency_s = 1e-6;
    m.bandwidth_bytes_per_s = 1e9;
    m.reduce_bytes_per_s = 1e10;
    return m;
}

/// One collective as (kind, phase, group, elements), for comparing lists.
struct call {
    sc::collective_kind kind;
    step_phase phase;
    std::size_t group, elements;
    friend bool operator==(const call&, const call&) = default;
};

std::vector<call> calls_of(const sc::layer_prediction& l) {
    std::vector<call> out;
    for (const auto& c : l.collectives)
        out.push_back({c.kind, c.phase, c.group, c.elements});
    return out;
}

constexpr auto all_reduce = sc::collective_kind::all_reduce;
constexpr auto all_gather = sc::collective_kind::all_gather;

std::vector<partition_kind> kinds(std::initializer_list<partition_kind> k) {
    return k;
}

/// `text` with the line that starts with `key` replaced by `line`.
std::string with_line(const std::string& text, const std::string& key, const std::string& line) {
    const std::size_t at = text.find("\n" + key) + 1;
    const std::size_t end = text.find('\n', at);
    return text.substr(0, at) + line + text.substr(end);
}

void check_message(const std::string& text, const std::string& expected) {
    std::string got;
    try {
        sc::read_machine(text, "test.machine");
    } catch (const shardnet::error& e) {
        got = e.what();
    }
    CAPTURE(text);
    CAPTURE(got);
    CHECK(got.find(expected) != std::string::npos);
}

}  // namespace

TEST_SUITE("serial") {
    TEST_CASE("collective formulas give the hand-computed values") {
        const sc::machine m = round_machine();
        // (p-1) alpha + (p-1)/p n beta = 3 us + 0.75 * 4000 ns
        CHECK(sc::ring_all_gather(m, 4, 4000) == doctest::Approx(6e-6).epsilon(1e-12));
        // lg 8 alpha + 7/8 * 8000 ns
        CHECK(sc::recursive_doubling_all_gather(m, 8, 8000) == doctest::Approx(10e-6));
        // Bruck on 6 ranks: ceil(lg 6) = 3 rounds + 5/6 * 6000 ns
        CHECK(sc::recursive_doubling_all_gather(m, 6, 6000) == doctest::Approx(8e-6));
        // lg 4 (alpha + n beta + n gamma) = 2 (1 + 1 + 0.1) us
        CHECK(sc::recursive_doubling_all_reduce(m, 4, 1000) == doctest::Approx(4.2e-6));
        // 2 lg 4 alpha + 2 * 3/4 * 1e6 ns + 3/4 * 1e5 ns
        CHECK(sc::rabenseifner_all_reduce(m, 4, 1e6) == doctest::Approx(1.579e-3));
        // 6 ranks: the 4-rank cost plus 2 alpha + 2 n beta + n gamma for the 2 extra ranks
        CHECK(sc::rabenseifner_all_reduce(m, 6, 1e6) == doctest::Approx(1.579e-3 + 2.102e-3));
        // 2 (p-1) alpha + the same bandwidth and reduction terms as Rabenseifner
        CHECK(sc::ring_all_reduce(m, 4, 1e6) == doctest::Approx(1.581e-3));
        CHECK(sc::ring_all_reduce(m, 1, 1e6) == 0);
        CHECK(sc::rabenseifner_all_reduce(m, 1, 1e6) == 0);
    }

    TEST_CASE("the algorithm changes where MPICH changes it") {
        const sc::machine m = round_machine();
        using a = sc::collective_algorithm;
        CHECK(sc::all_reduce_cost(m, 4, 2048).algorithm == a::recursive_doubling);
        CHECK(sc::all_reduce_cost(m, 4, 2049).algorithm == a::rabenseifner);
        CHECK(sc::all_gather_cost(m, 4, 512 * 1024 - 1).algorithm == a::recursive_doubling);
        CHECK(sc::all_gather_cost(m, 4, 512 * 1024).algorithm == a::ring);
        CHECK(sc::all_gather_cost(m, 6, 80 * 1024 - 1).algorithm == a::bruck);
        CHECK(sc::all_gather_cost(m, 6, 80 * 1024).algorithm == a::ring);
        CHECK(sc::all_reduce_cost(m, 1, 1e6).algorithm == a::none);
        CHECK(sc::all_reduce_cost(m, 1, 1e6).seconds == 0);
        CHECK(sc::all_reduce_cost(m, 4, 1e6).seconds ==
              doctest::Approx(sc::rabenseifner_all_reduce(m, 4, 1e6)));
    }

    TEST_CASE("1D partitions cause the traffic of the table") {
        const sc::machine m = round_machine();
        sc::network_shape net{{8, 12, 10, 6}, 5, 1, 4};
        const sc::world_grid g{1, 1, 4};
        // column, row, column: the Megatron pair then a column; the first layer sends nothing.
        const auto s = sc::predict_step(
            m, net, g,
            kinds({partition_kind::column, partition_kind::row, partition_kind::column}));
        CHECK(calls_of(s.layers[0]).empty());
        CHECK(calls_of(s.layers[1]) == std::vector<call>{{all_reduce, step_phase::forward, 4, 50}});
        CHECK(calls_of(s.layers[2]) ==
              std::vector<call>{{all_reduce, step_phase::backward, 4, 50}});
        CHECK(s.layers[0].local_rows == 8);
        CHECK(s.layers[0].local_cols == 3);
        CHECK(s.layers[1].local_rows == 3);
        CHECK(s.layers[1].local_cols == 10);
        CHECK(s.layers[0].gemms.size() == 2);  // no input gradient for the data
        CHECK(s.layers[1].gemms.size() == 3);
        // Sharded logits: two all-reduces (row maxima, then the integer sums), the gradient
        // flag, and nothing over a data group of one.
        CHECK(s.step_collectives.size() == 3);

        // row first: forward all-reduce, no backward; column -> replicated: gather forward;
        // replicated -> row: gather backward (the gradient of the slice).
        const auto t = sc::predict_step(
            m, net, g,
            kinds({partition_kind::row, partition_kind::column, partition_kind::replicated}));
        CHECK(calls_of(t.layers[0]) == std::vector<call>{{all_reduce, step_phase::forward, 4, 60}});
        CHECK(calls_of(t.layers[1]) ==
              std::vector<call>{{all_reduce, step_phase::backward, 4, 60}});
        CHECK(calls_of(t.layers[2]) ==
              std::vector<call>{{all_gather, step_phase::convert_forward, 4, 50}});
        const auto u = sc::predict_step(
            m, net, g,
            kinds({partition_kind::replicated, partition_kind::row, partition_kind::row}));
        CHECK(calls_of(u.layers[1]) ==
              std::vector<call>{{all_gather, step_phase::convert_backward, 4, 60},
                                {all_reduce, step_phase::forward, 4, 50}});
        CHECK(calls_of(u.layers[2]) ==
              std::vector<call>{{all_gather, step_phase::convert_backward, 4, 50},
                                {all_reduce, step_phase::forward, 4, 30}});

        // Uneven shards: 10 over 3 ranks gives 4, 3, 3; the largest block is priced.
        const auto v = sc::predict_step(m, sc::network_shape{{7, 10}, 2, 1, 4}, {1, 1, 3},
                                        kinds({partition_kind::column}));
        CHECK(v.layers[0].local_cols == 4);
        // One rank: nothing crosses between ranks.
        const auto w = sc::predict_step(
            m, net, {1, 1, 1},
            kinds({partition_kind::column, partition_kind::row, partition_kind::column}));
        for (const auto& l : w.layers)
            CHECK(l.collectives.empty());
        CHECK(w.step_collectives.empty());
    }

    TEST_CASE("block2d alternates orientation and reduces over one grid dimension each way") {
        const sc::machine m = round_machine();
        sc::network_shape net{{8, 12, 10, 6}, 5, 1, 4};
        const sc::world_grid g{1, 2, 3};  // R = 2, C = 3
        const auto s = sc::predict_step(
            m, net, g,
            kinds({partition_kind::block2d, partition_kind::block2d, partition_kind::block2d}));
        // A: W[8/R, 12/C] = 4 x 4; forward sum over the R = 2 ranks of a grid column.
        CHECK(s.layers[0].orient == sc::orientation::a);
        CHECK(s.layers[0].local_rows == 4);
        CHECK(s.layers[0].local_cols == 4);
        CHECK(calls_of(s.layers[0]) ==
              std::vector<call>{{all_reduce, step_phase::forward, 2, 5 * 4}});
        // B: W[12/C, 10/R] = 4 x 5; forward over C = 3, backward B x |rows_j| over R = 2; no
        // conversion after an A layer.
        CHECK(s.layers[1].orient == sc::orientation::b);
        CHECK(s.layers[1].local_rows == 4);
        CHECK(s.layers[1].local_cols == 5);
        CHECK(calls_of(s.layers[1]) ==
              std::vector<call>{{all_reduce, step_phase::forward, 3, 5 * 5},
                                {all_reduce, step_phase::backward, 2, 5 * 4}});
        // A again: W[10/R, 6/C] = 5 x 2; its output, over the C = 3 grid columns, goes to the
        // loss as it is: nothing is gathered, and the loss reduces over those 3 ranks.
        CHECK(s.layers[2].orient == sc::orientation::a);
        CHECK(calls_of(s.layers[2]) ==
              std::vector<call>{{all_reduce, step_phase::forward, 2, 5 * 2},
                                {all_reduce, step_phase::backward, 3, 5 * 5}});
        CHECK(s.step_collectives.front().group == 3);
        // From a 1D layer: row's replicated output is sliced (free) into block2d's input over the
        // grid rows, whose backward gathers the gradient over R = 2.
        const auto t = sc::predict_step(
            m, net, g,
            kinds({partition_kind::row, partition_kind::block2d, partition_kind::column}));
        CHECK(t.layers[1].orient == sc::orientation::a);
        CHECK(calls_of(t.layers[1]) ==
              std::vector<call>{{all_gather, step_phase::convert_backward, 2, 5 * 12},
                                {all_reduce, step_phase::forward, 2, 5 * 4},
                                {all_reduce, step_phase::backward, 3, 5 * 6}});
        // block2d's output over the C grid columns gathered (over 3) before a column layer.
        CHECK(calls_of(t.layers[2]) ==
              std::vector<call>{{all_gather, step_phase::convert_forward, 3, 5 * 10},
                                {all_reduce, step_phase::backward, 6, 5 * 10}});
    }

    TEST_CASE("replicas all-reduce each gradient block; the batch is split over them") {
        const sc::machine m = round_machine();
        sc::network_shape net{{8, 12, 10}, 5, 1, 4};
        const auto s = sc::predict_step(m, net, {2, 1, 2},
                                        kinds({partition_kind::column, partition_kind::row}));
        CHECK(s.replica_batch == 3);
        CHECK(calls_of(s.layers[0]) ==
              std::vector<call>{{all_reduce, step_phase::data_parallel, 2, 8 * 6},
                                {all_reduce, step_phase::data_parallel, 2, 6}});
        CHECK(calls_of(s.layers[1]) ==
              std::vector<call>{{all_reduce, step_phase::forward, 2, 3 * 10},
                                {all_reduce, step_phase::data_parallel, 2, 6 * 10},
                                {all_reduce, step_phase::data_parallel, 2, 10}});
        // Memory: weights, gradients and one state copy (SGD) per parameter, and activations.
        CHECK(s.layers[0].memory_bytes == 4.0 * ((8 * 6 + 6) * 3 + 3 * 8 + 3.0 * 3 * 6));
    }

    TEST_CASE("GEMM time: the nearest measured shape, the flat rate without one") {
        sc::machine m;
        m.gemm_gflops = 100;
        CHECK(m.gemm_seconds(sc::gemm_kind::forward, 100, 100, 100) == doctest::Approx(2e-5));
        CHECK(m.gemm_seconds(sc::gemm_kind::forward, 0, 100, 100) == 0);
        m.gemm_table = {{sc::gemm_kind::forward, 64, 64, 64, 50},
                        {sc::gemm_kind::forward, 1024, 1024, 1024, 150},
                        {sc::gemm_kind::weight_gradient, 64, 64, 64, 20}};
        CHECK(m.gemm_gflops_at(sc::gemm_kind::forward, 70, 60, 64) == 50);
        CHECK(m.gemm_gflops_at(sc::gemm_kind::forward, 900, 1000, 2000) == 150);
        CHECK(m.gemm_gflops_at(sc::gemm_kind::weight_gradient, 900, 1000, 2000) == 20);
        // No row of that kind: the nearest of any kind.
        CHECK(m.gemm_gflops_at(sc::gemm_kind::input_gradient, 900, 1000, 2000) == 150);
        // bf16 without a bf16 row: the fp32 rate of the shape; with bf16 rows, only those.
        const auto bf16 = shardnet::precision::bf16;
        CHECK(m.gemm_gflops_at(sc::gemm_kind::forward, 70, 60, 64, bf16) == 50);
        m.gemm_table.push_back({sc::gemm_kind::forward, 1024, 1024, 1024, 290, bf16});
        CHECK(m.gemm_gflops_at(sc::gemm_kind::forward, 70, 60, 64, bf16) == 290);
        CHECK(m.gemm_gflops_at(sc::gemm_kind::weight_gradient, 64, 64, 64, bf16) == 290);
        CHECK(m.gemm_gflops_at(sc::gemm_kind::forward, 1024, 1024, 1024) == 150);
        CHECK(m.gemm_seconds(sc::gemm_kind::forward, 1024, 1024, 1024, bf16) ==
              doctest::Approx(2.0 * 1024 * 1024 * 1024 / 290e9));
    }

    TEST_CASE("bf16: GEMMs at bf16 rates, 2-byte activations and sums, fp32 gradients") {
        sc::machine m = round_machine();
        m.memory_bytes_per_s = 1e10;
        for (auto kind : {sc::gemm_kind::forward, sc::gemm_kind::input_gradient,
                          sc::gemm_kind::weight_gradient}) {
            m.gemm_table.push_back({kind, 8, 8, 8, 100, shardnet::precision::fp32});
            m.gemm_table.push_back({kind, 8, 8, 8, 250, shardnet::precision::bf16});
        }
        sc::network_shape fp32{{8, 12, 10, 6, 4}, 5, 1, 4};
        sc::network_shape bf16 = fp32;
        bf16.compute = shardnet::precision::bf16;
        // 2 replicas x 4 model ranks. The second column gathers its input forward and sums its
        // input gradient; replicated gathers forward; row gathers its input's gradient backward
        // and sums its forward product.
        const sc::world_grid g{2, 1, 4};
        const auto partitions = kinds({partition_kind::column, partition_kind::column,
                                       partition_kind::replicated, partition_kind::row});
        const auto a = sc::predict_step(m, fp32, g, partitions);
        const auto b = sc::predict_step(m, bf16, g, partitions);
        REQUIRE(a.layers.size() == b.layers.size());
        double gemm_a = 0, gemm_b = 0;
        for (std::size_t i = 0; i < a.layers.size(); ++i) {
            CAPTURE(i);
            const auto& la = a.layers[i];
            const auto& lb = b.layers[i];
            CHECK(calls_of(la) == calls_of(lb));  // the same collectives, element for element
            for (const auto& c : la.collectives)
                CHECK(c.element_bytes == 4);
            for (const auto& c : lb.collectives) {
                CAPTURE(sc::to_string(c.phase));
                const bool twice_as_small = c.phase == step_phase::convert_forward ||
                                            c.phase == step_phase::forward ||
                                            c.phase == step_phase::backward;
                CHECK(c.element_bytes == (twice_as_small ? 2u : 4u));
                const double bytes = static_cast<double>(c.bytes());
                CHECK(c.cost.seconds == (c.kind == all_reduce
                                             ? sc::all_reduce_cost(m, c.group, bytes).seconds
                                             : sc::all_gather_cost(m, c.group, bytes).seconds));
            }
            for (const auto& call : lb.gemms)
                CHECK(call.operands == shardnet::precision::bf16);
            gemm_a += la.gemm_s(), gemm_b += lb.gemm_s();
            CHECK(lb.elementwise_s > la.elementwise_s);  // the bf16 copies are written too
        }
        CHECK(gemm_b == doctest::Approx(gemm_a * 100 / 250));
        // Every kind of collective is there: a gather each way, both sums, the replicas'.
        std::vector<step_phase> phases;
        for (const auto& l : b.layers)
            for (const auto& c : l.collectives)
                phases.push_back(c.phase);
        for (auto phase : {step_phase::convert_forward, step_phase::convert_backward,
                           step_phase::forward, step_phase::backward, step_phase::data_parallel})
            CHECK(std::count(phases.begin(), phases.end(), phase) > 0);
        // Memory: layer 1 (column, 8 x 3 of W on 3 rows per replica, input 8 features held,
        // output 3) adds its bf16 weights, input, output and output gradient, 2 bytes each.
        CHECK(b.layers[0].memory_bytes - a.layers[0].memory_bytes == 2.0 * (24 + 24 + 2 * 9));

        bf16.element_bytes = 8;
        CHECK_THROWS_WITH_AS(sc::predict_step(m, bf16, g, partitions),
                             "bf16 precision: expected 4-byte (float) elements, got 8-byte ones",
                             shardnet::error);
    }

    TEST_CASE("reproducible sums: a product per chunk, integer sums, 1D groups of at most N") {
        sc::machine m = round_machine();
        m.memory_bytes_per_s = 1e10;
        sc::network_shape plain{{8, 12, 10, 6}, 5, 1, 4};
        sc::network_shape net = plain;
        net.reproducible_across = 4;
        const auto partitions =
            kinds({partition_kind::row, partition_kind::column, partition_kind::column});
        const auto s = sc::predict_step(m, net, {1, 1, 2}, partitions);
        const auto t = sc::predict_step(m, plain, {1, 1, 2}, partitions);
        // Row's forward over 8 inputs: splits over 1 .. 4 ranks cut at 2, 3, 4 and 6; the
        // largest block of 2 ranks, [0, 4), is 3 chunks: one product each.
        std::vector<std::size_t> depths;
        for (const auto& g : s.layers[0].gemms)
            if (g.kind == sc::gemm_kind::forward) depths.push_back(g.k);
        CHECK(depths == std::vector<std::size_t>{2, 1, 1});
        CHECK(sc::detail::reproducible_chunk_depths(8, 2, 4, 0) == depths);
        // Its sum: the largest partial (one float), then 5 x 12 integers.
        REQUIRE(s.layers[0].collectives.size() == 2);
        CHECK(calls_of(s.layers[0]) == std::vector<call>{{all_reduce, step_phase::forward, 2, 1},
                                                         {all_reduce, step_phase::forward, 2, 60}});
        CHECK(s.layers[0].collectives[0].element_bytes == 4);
        CHECK(s.layers[0].collectives[1].element_bytes == 8);
        CHECK(s.layers[0].collectives[1].integers);
        CHECK_FALSE(s.layers[0].collectives[0].integers);
        // Column's input gradient over 10 outputs (cut at 3 .. 8): [0, 5) is 3 chunks, [5, 10) 4,
        // the same flops: the rank with more chunks is the one priced.
        depths.clear();
        for (const auto& g : s.layers[1].gemms)
            if (g.kind == sc::gemm_kind::input_gradient) depths.push_back(g.k);
        CHECK(depths == std::vector<std::size_t>{1, 1, 1, 2});
        // The largest block need not have the most chunks: 1024 over 4 ranks has 1, 2, 2, 1.
        CHECK(sc::detail::reproducible_chunk_depths(1024, 4, 4, 0).size() == 1);
        CHECK(sc::detail::reproducible_chunk_depths(1024, 4, 4, 1).size() == 2);
        CHECK(calls_of(s.layers[1]) ==
              std::vector<call>{{all_reduce, step_phase::backward, 2, 1},
                                {all_reduce, step_phase::backward, 2, 60}});
        // The chunks' products are the plain product's flops (a flat rate: the same time), and
        // their partials cost passes over memory and workspace.
        for (std::size_t i = 0; i < s.layers.size(); ++i) {
            CAPTURE(i);
            CHECK(s.layers[i].gemm_s() == doctest::Approx(t.layers[i].gemm_s()));
            CHECK(s.layers[i].elementwise_s > t.layers[i].elementwise_s);
            CHECK(s.layers[i].memory_bytes > t.layers[i].memory_bytes);
        }
        // One rank chunks all the same (its results must be the bits of N ranks').
        const auto one = sc::predict_step(m, net, {1, 1, 1}, partitions);
        CHECK(one.layers[0].gemms.size() == 5 + 1);  // 5 chunks of 8, and dW
        CHECK(one.layers[0].collectives.empty());

        CHECK_THROWS_WITH_AS(
            sc::predict_step(m, net, {1, 1, 8}, partitions),
            "reproducible across at most 4 ranks: expected a model group of at most that many, "
            "got 8 (1x8)",
            shardnet::error);
        CHECK_THROWS_WITH_AS(sc::predict_step(m, net, {1, 2, 2},
                                              kinds({partition_kind::block2d, partition_kind::row,
                                                     partition_kind::column})),
                             "layer 0: reproducible_across needs a 1D partition (column, row or "
                             "replicated), got block2d",
                             shardnet::error);
        // The planner keeps to what runs: model groups of at most 4, no block2d; on 8 ranks
        // the default (all 8 model-parallel) cannot run.
        const sc::machine cluster = sc::cluster_machine();
        sc::network_shape wide{{1024, 4096, 4096, 1024}, 256, 2, 4};
        wide.reproducible_across = 4;
        const sc::plan_choice c = sc::choose_plans(cluster, wide, 8);
        CHECK_FALSE(c.default_plan.has_value());
        CHECK(c.line().find(" speedup_vs_default=none ") != std::string::npos);
        CHECK(c.chosen.grid.model() <= 4);
        for (auto k : c.chosen.partitions)
            CHECK(k != partition_kind::block2d);
        CHECK(sc::choose_plans(cluster, wide, 4).default_plan.has_value());
        wide.batch = 1;
        CHECK_THROWS_WITH_AS(sc::best_plan(cluster, wide, 8, sc::partition_family::all),
                             "no grid of 8 ranks has a model group of at most 4 ranks "
                             "(reproducible_across) and at most 1 replicas (the batch)",
                             shardnet::error);
    }

    TEST_CASE("clipping: the norm reads every gradient twice and sends three values over M") {
        sc::machine m = round_machine();
        m.memory_bytes_per_s = 1e10;
        sc::network_shape plain{{8, 12, 10, 6}, 6, 1, 4};
        sc::network_shape clipped = plain;
        clipped.clips_gradients = true;
        const auto partitions =
            kinds({partition_kind::row, partition_kind::column, partition_kind::replicated});
        const sc::world_grid grid{2, 1, 3};
        const auto s = sc::predict_step(m, clipped, grid, partitions);
        const auto t = sc::predict_step(m, plain, grid, partitions);
        for (std::size_t i = 0; i < s.layers.size(); ++i) {
            CAPTURE(i);
            const auto& l = s.layers[i];
            const double parameters = double(l.local_rows * l.local_cols + l.local_bias);
            CHECK(l.elementwise_s - t.layers[i].elementwise_s ==
                  doctest::Approx(2 * parameters * 4 / m.memory_bytes_per_s));
            CHECK(calls_of(l) == calls_of(t.layers[i]));  // the layers' own traffic unchanged
        }
        // The finite-gradient flag over the model group (3 ranks) gives way to the norm's largest
        // square (a double) and its element count and sum (integers); the replicas' totals stay.
        const auto steps = [](const sc::step_prediction& p) {
            std::vector<std::tuple<std::size_t, std::size_t, bool>> out;
            for (const auto& c : p.step_collectives)
                out.emplace_back(c.group, c.elements, c.integers);
            return out;
        };
        using step_call = std::tuple<std::size_t, std::size_t, bool>;
        CHECK(steps(t) == std::vector<step_call>{{3, 1, true}, {2, 2, false}});
        CHECK(steps(s) ==
              std::vector<step_call>{{3, 1, false}, {3, 1, true}, {3, 1, true}, {2, 2, false}});
        CHECK(s.seconds > t.seconds);
    }

    TEST_CASE("plans are the same every time, and after a machine file round trip") {
        sc::machine m = sc::cluster_machine();
        m.gemm_table = {{sc::gemm_kind::forward, 256, 512, 1024, 123.25},
                        {sc::gemm_kind::input_gradient, 256, 1024, 512, 97.5},
                        {sc::gemm_kind::weight_gradient, 1024, 512, 256, 88.125},
                        {sc::gemm_kind::forward, 256, 512, 1024, 240.5, shardnet::precision::bf16}};
        m.memory_bytes_per_s = 3.3e10;
        m.reduce_bytes_per_s = 7.1e9;
        const sc::network_shape net{{1024, 4096, 4096, 1024}, 256, 2, 4};
        const sc::plan a = sc::best_plan(m, net, 64, sc::partition_family::all);
        const sc::plan b = sc::best_plan(m, net, 64, sc::partition_family::all);
        CHECK(a.partitions == b.partitions);
        CHECK(a.grid == b.grid);
        CHECK(a.prediction.seconds == b.prediction.seconds);

        const std::string text = sc::write_machine(m);
        const sc::machine read = sc::read_machine(text, "round trip");
        CHECK(read == m);
        CHECK(sc::write_machine(read) == text);
        const sc::plan c = sc::best_plan(read, net, 64, sc::partition_family::all);
        CHECK(c.partitions == a.partitions);
        CHECK(c.grid == a.grid);
        CHECK(c.prediction.seconds == a.prediction.seconds);
        CHECK(sc::read_machine(sc::write_machine(sc::cluster_machine()), "x") ==
              sc::cluster_machine());
    }

    TEST_CASE("the planner never beats itself: best <= best 1D <= default, all fit") {
        const sc::machine m = sc::cluster_machine();
        for (std::size_t ranks : {1u, 2u, 6u, 16u, 64u}) {
            CAPTURE(ranks);
            const sc::network_shape net{{1024, 4096, 4096, 1024}, 256, 2, 4};
            const auto base = sc::default_plan(m, net, ranks);
            const auto one_d = sc::best_plan(m, net, ranks, sc::partition_family::one_d);
            const auto best = sc::best_plan(m, net, ranks, sc::partition_family::all);
            CHECK(best.prediction.seconds <= one_d.prediction.seconds);
            CHECK(one_d.prediction.seconds <= base.prediction.seconds);
            CHECK(best.grid.ranks() == ranks);
            CHECK(best.prediction.memory_bytes <= m.memory_bytes);
            for (auto k : one_d.partitions)
                CHECK(k != partition_kind::block2d);
        }
    }

    TEST_CASE("memory per rank is a constraint: a network too big for replicas is sharded") {
        sc::machine m = sc::cluster_machine();
        const sc::network_shape net{{8192, 32768, 32768, 8192}, 512, 2, 4};
        // Replicated everywhere needs 4 copies of 1.6 G parameters: 25 GB, more than 16 GiB.
        const auto replicated =
            sc::predict_step(m, net, {1024, 1, 1},
                             kinds({partition_kind::replicated, partition_kind::replicated,
                                    partition_kind::replicated}));
        CHECK(replicated.memory_bytes > m.memory_bytes);
        const auto best = sc::best_plan(m, net, 1024, sc::partition_family::all);
        CHECK(best.prediction.memory_bytes <= m.memory_bytes);
        m.memory_bytes = 1e6;
        CHECK_THROWS_WITH_AS(sc::best_plan(m, net, 4, sc::partition_family::all),
                             doctest::Contains("no plan of 4 ranks fits"), shardnet::error);
    }

    TEST_CASE("the goal of issue 12: 1024 ranks of cluster choose block2d for the wide layers") {
        const sc::machine m = sc::cluster_machine();
        const sc::network_shape net{{8192, 32768, 32768, 8192}, 512, 2, 4};
        const auto base = sc::default_plan(m, net, 1024);
        const auto one_d = sc::best_plan(m, net, 1024, sc::partition_family::one_d);
        const auto best = sc::best_plan(m, net, 1024, sc::partition_family::all);
        CHECK(best.partitions[1] == partition_kind::block2d);
        CHECK(base.prediction.seconds / best.prediction.seconds >= 1.5);
        CHECK(one_d.prediction.seconds / best.prediction.seconds >= 1.15);
    }

    TEST_CASE("machine files: bad input is refused, naming what was expected and got") {
        const std::string good = sc::write_machine(sc::cluster_machine());
        check_message("", "expected 'shardnet-machine 1' first, got an empty file");
        check_message("hello 1\n", "line 1: expected 'shardnet-machine 1' first, got 'hello 1'");
        check_message("shardnet-machine 2\n", "line 1: expected format version 1");
        check_message(good + "colour blue\n", "expected one of name, latency_s");
        check_message(good + "latency_s 1e-6\n", "'latency_s' given twice");
        check_message(with_line(good, "latency_s", "latency_s fast"),
                      "latency_s: expected a finite number of at least 0, got 'fast'");
        check_message(with_line(good, "bandwidth_bytes_per_s", "bandwidth_bytes_per_s 0"),
                      "bandwidth_bytes_per_s: expected a finite number above 0, got '0'");
        check_message(with_line(good, "memory_bytes ", "# no memory"),
                      "expected a line 'memory_bytes VALUE', got none");
        check_message(good + "gemm forward 1 2 3\n", "expected 'gemm KIND M N K GFLOPS'");
        check_message(good + "gemm sideways 1 2 3 4\n",
                      "gemm: expected a kind of forward, input_gradient or weight_gradient, got "
                      "'sideways'");
        check_message(good + "gemm forward 1 -2 3 4\n",
                      "gemm: expected N as a whole number above 0, got '-2'");
        check_message(good + "gemm forward 1 2 3 inf\n", "got 'inf'");
        check_message(good + "gemm_bf16 forward 1 2 3\n", "expected 'gemm_bf16 KIND M N K GFLOPS'");
        check_message(good + "gemm_bf16 forward 0 2 3 4\n",
                      "gemm_bf16: expected M as a whole number above 0, got '0'");
        check_message("shardnet-machine 1\nname two words\n",
                      "line 2: expected 'name VALUE' (2 words), got 3 words");
        CHECK_THROWS_WITH_AS(sc::load_machine("/nonexistent/x.machine"),
                             "machine file '/nonexistent/x.machine' cannot be opened",
                             shardnet::error);
        // Comments, blank lines and CRLF are fine.
        std::string crlf;
        for (char ch : "# a comment\n\n" + good)
            if (ch == '\n')
                crlf += "\r\n";
            else if (ch)
                crlf += ch;
        CHECK(sc::read_machine(crlf, "crlf") == sc::cluster_machine());
    }

    TEST_CASE("partition names are parsed, and a wrong one is named") {
        CHECK(sc::parse_partition("block2d") == partition_kind::block2d);
        CHECK_THROWS_WITH_AS(sc::parse_partition("diagonal"),
                             "expected a partition of column, row, replicated or block2d, got "
                             "'diagonal'",
                             shardnet::error);
        CHECK_THROWS_WITH_AS(sc::predict_step(sc::cluster_machine(), {{4, 4}, 2, 1, 4}, {},
                                              kinds({partition_kind::row, partition_kind::row})),
                             "expected 1 partitions (one per layer), got 2", shardnet::error);
    }

    TEST_CASE("calibration on one rank: a rate per distinct shape, no collective") {
        shardnet::local_communicator self;
        sc::machine m = sc::cluster_machine();
        sc::calibration_options o;
        o.gemm_budget_s = o.collective_budget_s = o.memory_budget_s = 0.001;
        o.memory_pass_bytes = 1 << 16;
        const std::vector<sc::gemm_shape> shapes = {
            {sc::gemm_kind::forward, 8, 16, 24},
            {sc::gemm_kind::input_gradient, 8, 24, 16},
            {sc::gemm_kind::weight_gradient, 24, 16, 8},
            {sc::gemm_kind::forward, 8, 16, 24},
            {sc::gemm_kind::forward, 0, 16, 24},
            {sc::gemm_kind::input_gradient, 8, 24, 16, shardnet::precision::bf16}};
        const auto report = sc::calibrate(self, m, shapes, o);
        REQUIRE(m.gemm_table.size() == 4);
        CHECK(m.gemm_table[3].operands == shardnet::precision::bf16);
        for (const auto& r : m.gemm_table) {
            CHECK(std::isfinite(r.gflops));
            CHECK(r.gflops > 0);
        }
        CHECK(m.gemm_table[2].kind == sc::gemm_kind::weight_gradient);
        CHECK(std::isfinite(m.memory_bytes_per_s));
        CHECK(m.memory_bytes_per_s > 0);
        CHECK_FALSE(report.collectives_measured);
        CHECK(m.latency_s == sc::cluster_machine().latency_s);  // kept: nothing to measure
        // A calibrated machine plans, and its file reads back equal.
        CHECK(sc::read_machine(sc::write_machine(m), "calibrated") == m);
        const auto p = sc::predict_step(m, {{24, 16, 8}, 8, 1, 4}, {},
                                        kinds({partition_kind::column, partition_kind::row}));
        CHECK(std::isfinite(p.seconds));
        CHECK(p.seconds > 0);
    }
}

TEST_SUITE("mpi") {
    TEST_CASE("calibration between the ranks: fitted figures are positive and finite") {
        shardnet::mpi_communicator world;
        sc::machine m = sc::cluster_machine();
        sc::calibration_options o;
        o.gemm_budget_s = o.collective_budget_s = o.memory_budget_s = 0.001;
        o.memory_pass_bytes = 1 << 16;
        o.max_message_bytes = 1 << 12;
        const auto report = sc::calibrate(world, m, {{sc::gemm_kind::forward, 4, 8, 8}}, o);
        CHECK(report.collectives_measured == (world.size() > 1));
        CHECK(m.gemm_table.size() == 1);
        CHECK(std::isfinite(m.latency_s));
        CHECK(m.latency_s > 0);
        CHECK(std::isfinite(m.bandwidth_bytes_per_s));
        CHECK(m.bandwidth_bytes_per_s > 0);
        CHECK(m.reduce_bytes_per_s >= 0);
        if (world.size() > 1) CHECK(report.samples.size() >= 2);
    }

    TEST_CASE("calibration: ranks that start apart share the budget and agree on every rate") {
        // Rank 0 starts 150 ms late, so its own clock says it has spent less of the budget.
        // Each shape's budget must still be the same on every rank: timed_median's loop ends
        // on a budget, and a rank that left it early would leave the others in its barrier
        // (this hung 1 run in 8 on 3 oversubscribed ranks before the budget was agreed).
        // Products of about 10 ms, so that the budget, not the 50-run cap, ends each loop.
        shardnet::mpi_communicator world;
        if (world.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(150));
        sc::machine m = sc::cluster_machine();
        sc::calibration_options o;
        o.gemm_budget_s = 0.3;
        o.collective_budget_s = o.memory_budget_s = 0.001;
        o.memory_pass_bytes = 1 << 16;
        o.max_message_bytes = 1 << 10;
        sc::calibrate(world, m,
                      {{sc::gemm_kind::forward, 1024, 1024, 1024},
                       {sc::gemm_kind::weight_gradient, 1024, 1024, 1024}},
                      o);
        REQUIRE(m.gemm_table.size() == 2);
        for (const auto& r : m.gemm_table) {
            double low = r.gflops, high = r.gflops;
            world.all_reduce(&low, 1, shardnet::reduce_op::min);
            world.all_reduce(&high, 1, shardnet::reduce_op::max);
            CHECK(low == high);
        }
    }
}
