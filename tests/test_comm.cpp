// Communicators: every collective of mpi_communicator on P ranks with uneven and empty
// counts, the one-rank local_communicator, process grids, and a communicator written by a
// user (in this file) driving a dense layer through the same templates.
#include <doctest/doctest.h>

#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/comm/tracing_communicator.hpp"
#include "shardnet/layers/dense.hpp"
#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/row_split.hpp"

namespace sn = shardnet;

namespace {

/// A user's own communicator: forwards to MPI and remembers how many elements went by.
/// Written only against the documented concept, to prove the extension point is usable.
class counting_communicator {
  public:
    counting_communicator() = default;
    explicit counting_communicator(sn::mpi_communicator inner) : inner_(std::move(inner)) {}
    std::size_t rank() const { return inner_.rank(); }
    std::size_t size() const { return inner_.size(); }
    void barrier() { inner_.barrier(); }
    counting_communicator split(int color, int key) const {
        return counting_communicator(inner_.split(color, key));
    }
    template <class T>
    void all_reduce(T* data, std::size_t n, sn::reduce_op op) {
        elements += n;
        inner_.all_reduce(data, n, op);
    }
    template <class T>
    void broadcast(T* data, std::size_t n, std::size_t root) {
        inner_.broadcast(data, n, root);
    }
    template <class T>
    void all_gather(const T* in, std::size_t n, T* out) {
        elements += n * size();
        inner_.all_gather(in, n, out);
    }
    template <class T>
    void all_gather(const T* in, T* out, std::span<const std::size_t> counts) {
        elements += std::accumulate(counts.begin(), counts.end(), std::size_t{0});
        inner_.all_gather(in, out, counts);
    }
    template <class T>
    void reduce_scatter(const T* in, T* out, std::span<const std::size_t> counts) {
        inner_.reduce_scatter(in, out, counts);
    }
    std::size_t elements = 0;

  private:
    sn::mpi_communicator inner_;
};

static_assert(sn::communicator<counting_communicator>);
static_assert(sn::communicator<sn::mpi_communicator>);
static_assert(sn::communicator<sn::local_communicator>);
static_assert(sn::communicator<sn::tracing_communicator<sn::local_communicator>>);

struct not_a_communicator {
    std::size_t rank() const { return 0; }
};
static_assert(!sn::communicator<not_a_communicator>);

}  // namespace

TEST_SUITE("mpi") {
    TEST_CASE_TEMPLATE("mpi_communicator collectives", T, float, double, std::int64_t) {
        sn::mpi_communicator world;
        const std::size_t p = world.size(), r = world.rank();

        SUBCASE("all_reduce sum, max, min") {
            std::vector<T> v = {T(r + 1), T(10 * r), T(5)};
            auto mx = v, mn = v;
            world.all_reduce(v.data(), v.size(), sn::reduce_op::sum);
            world.all_reduce(mx.data(), mx.size(), sn::reduce_op::max);
            world.all_reduce(mn.data(), mn.size(), sn::reduce_op::min);
            CHECK(v[0] == T(p * (p + 1) / 2));
            CHECK(v[2] == T(5 * p));
            CHECK(mx[1] == T(10 * (p - 1)));
            CHECK(mn[0] == T(1));
        }
        SUBCASE("broadcast from the last rank") {
            std::vector<T> v(4, T(r));
            world.broadcast(v.data(), v.size(), p - 1);
            CHECK(v == std::vector<T>(4, T(p - 1)));
        }
        SUBCASE("all_gather, equal counts") {
            const std::vector<T> mine = {T(r), T(r + 100)};
            std::vector<T> all(2 * p);
            world.all_gather(mine.data(), 2, all.data());
            for (std::size_t q = 0; q < p; ++q) {
                CHECK(all[2 * q] == T(q));
                CHECK(all[2 * q + 1] == T(q + 100));
            }
        }
        SUBCASE("all_gather, varying counts with an empty one") {
            // Balanced shards of p - 1 elements: the last rank's shard is empty.
            const sn::shard_table table(p - 1, p);
            std::vector<T> mine(table.counts()[r]);
            for (std::size_t i = 0; i < mine.size(); ++i)
                mine[i] = T(table.offsets()[r] + i);
            std::vector<T> all(p - 1, T(-1));
            world.all_gather(mine.data(), all.data(), table.counts());
            for (std::size_t i = 0; i + 1 < p; ++i)
                CHECK(all[i] == T(i));
        }
        SUBCASE("reduce_scatter with uneven blocks") {
            const sn::shard_table table(2 * p + 1, p);
            std::vector<T> in(2 * p + 1);
            std::iota(in.begin(), in.end(), T(0));
            std::vector<T> out(table.counts()[r]);
            world.reduce_scatter(in.data(), out.data(), table.counts());
            for (std::size_t i = 0; i < out.size(); ++i)
                CHECK(out[i] == T(p * (table.offsets()[r] + i)));
        }
        SUBCASE("split into even and odd ranks") {
            auto half = world.split(static_cast<int>(r % 2), static_cast<int>(r));
            CHECK(half.size() == (p + 1 - r % 2) / 2);
            CHECK(half.rank() == r / 2);
        }
        SUBCASE("non-blocking all_reduce") {
            std::vector<T> v(3, T(1));
            auto pending = sn::start_all_reduce(world, v.data(), v.size(), sn::reduce_op::sum);
            pending.wait();
            CHECK(v == std::vector<T>(3, T(p)));
        }
    }

    TEST_CASE("bfloat16 all-reduce: summed as bf16, one rounding per addition; max refused") {
        sn::mpi_communicator world;
        const std::size_t p = world.size(), r = world.rank();
        // Sums of small integers are exact in bf16 in any order: the bits were added as values,
        // not as the integers MPI_UINT16_T would add.
        std::vector<sn::bfloat16> v = {sn::to_bfloat16(float(r + 1)), sn::to_bfloat16(0.5f)};
        world.all_reduce(v.data(), v.size(), sn::reduce_op::sum);
        CHECK(sn::to_float(v[0]) == float(p * (p + 1) / 2));
        CHECK(sn::to_float(v[1]) == 0.5f * float(p));
        // 256 + 1 is a tie between the bf16 neighbours 256 and 258 (spacing 2): rounding each
        // addition to nearest even gives 256, where a float sum would keep 257.
        std::vector<sn::bfloat16> tie = {sn::to_bfloat16(r == 0 ? 256.0f : 1.0f)};
        world.all_reduce(tie.data(), 1, sn::reduce_op::sum);
        const float rounded = sn::to_float(tie[0]);
        if (p == 2) CHECK(rounded == 256.0f);
        CHECK(rounded >= 256.0f);
        CHECK(rounded <= 256.0f + 2.0f * float(p - 1));
        // Started and waited, the same sum.
        std::vector<sn::bfloat16> w = {sn::to_bfloat16(float(r + 1))};
        auto pending = sn::start_all_reduce(world, w.data(), 1, sn::reduce_op::sum);
        pending.wait();
        CHECK(sn::to_float(w[0]) == float(p * (p + 1) / 2));
        // No max or min of bf16: refused on every rank alike, before any message.
        CHECK_THROWS_WITH_AS(world.all_reduce(v.data(), v.size(), sn::reduce_op::max),
                             "mpi_communicator: bfloat16 values reduce by sum only, got max",
                             sn::error);
    }

    TEST_CASE("a user-defined communicator drives a dense layer") {
        counting_communicator group;
        sn::dense<double, sn::row_split, sn::activation::relu> layer(group, 6, 4);
        sn::matrix<double> x = sn::matrix<double>::from_shape({3, layer.weight_rows().size()});
        x.fill(1.0);
        const auto& y = layer.forward(group, x);
        CHECK(y.shape(0) == 3);
        CHECK(y.shape(1) == 4);
        // One control all-reduce (the input agreement) and one of batch x out.
        CHECK(group.elements == 1 + 3 * 4);
        sn::mpi_communicator world;
        sn::dense<double, sn::row_split, sn::activation::relu> same(world, 6, 4);
        CHECK(same.forward(world, x) == y);
    }

    TEST_CASE("process_grid factorizes the world") {
        sn::mpi_communicator world;
        const std::size_t p = world.size();
        for (std::size_t d = 1; d <= p; ++d) {
            if (p % d != 0) continue;
            CAPTURE(d);
            sn::process_grid<sn::mpi_communicator> grid(world, d);
            CHECK(grid.data_parallel() == d);
            CHECK(grid.model_parallel() == p / d);
            CHECK(grid.model().size() == p / d);
            CHECK(grid.data().size() == d);
            CHECK(grid.model_rank() == world.rank() % (p / d));
            CHECK(grid.data_rank() == world.rank() / (p / d));
            // Model-parallel neighbours: the sum of world ranks in my model group.
            std::int64_t sum = static_cast<std::int64_t>(world.rank());
            grid.model().all_reduce(&sum, 1, sn::reduce_op::sum);
            const auto first = static_cast<std::int64_t>(grid.data_rank() * (p / d));
            const auto m = static_cast<std::int64_t>(p / d);
            CHECK(sum == m * first + m * (m - 1) / 2);
        }
        if (p > 1 && p % 2 == 1) {
            CHECK_THROWS_WITH_AS(sn::process_grid<sn::mpi_communicator>(world, 2),
                                 doctest::Contains("must divide the world size"), sn::error);
        }
        CHECK_THROWS_WITH_AS(sn::process_grid<sn::mpi_communicator>(world, p + 1),
                             doctest::Contains("must divide the world size"), sn::error);
        if (p > 1) {
            // Rank 0 asks for 1 replica, the others for p: every rank names both.
            const std::size_t asked = world.rank() == 0 ? 1 : p;
            const std::string expected = sn::detail::concat(
                "ranks disagree on data_parallel (got values from 1 to ", p, ")");
            CHECK_THROWS_WITH_AS(sn::process_grid<sn::mpi_communicator>(world, asked),
                                 doctest::Contains(expected.c_str()), sn::error);
        }
    }

    TEST_CASE("agree_on throws the lowest failing rank's message everywhere") {
        sn::mpi_communicator world;
        const std::size_t r = world.rank();
        std::string message;
        try {
            sn::agree_on(world, [&] {
                if (r >= world.size() / 2)
                    throw sn::error("rank " + std::to_string(r) + " says no");
            });
        } catch (const sn::error& e) {
            message = e.what();
        }
        CHECK(message == "rank " + std::to_string(world.size() / 2) + " says no");
        CHECK(sn::agree_on(world, [] { return 42; }) == 42);
    }

    TEST_CASE("an agreed error knows how many ranks throw it together") {
        sn::mpi_communicator world;
        std::size_t group = 0;
        try {
            sn::agree(world, std::optional<std::string>("no"));
        } catch (const sn::agreed_error& e) {
            group = e.group_size();
        }
        CHECK(group == world.size());
    }

    TEST_CASE("ranks with different settings all stop, naming the setting and the rank") {
        sn::mpi_communicator world;
        sn::settings mine;
        mine.set("--lr", "0.01");
        mine.set("--epochs", "3");
        sn::agree_same_settings(world, mine, "options");  // equal everywhere: no error
        if (world.size() < 2) return;
        const std::size_t odd = world.size() - 1;
        if (world.rank() == odd) mine.set("--lr", "0.1");
        std::string message;
        try {
            sn::agree_same_settings(world, mine, "options");
        } catch (const sn::agreed_error& e) {
            message = e.what();
        }
        CHECK(message == "options differ between ranks: --lr is 0.01 on rank 0, 0.1 on rank " +
                             std::to_string(odd));
    }
}

TEST_SUITE("serial") {
    TEST_CASE("local_communicator is a group of one") {
        sn::local_communicator one;
        std::vector<float> v = {1, 2}, out(2);
        one.all_reduce(v.data(), 2, sn::reduce_op::sum);
        CHECK(v == std::vector<float>{1, 2});
        one.all_gather(v.data(), 2, out.data());
        CHECK(out == v);
        const std::size_t counts[] = {2};
        std::fill(out.begin(), out.end(), 0.0f);
        one.reduce_scatter(v.data(), out.data(), counts);
        CHECK(out == v);
        sn::dense<float, sn::column_split> layer(one, 3, 2);
        CHECK(layer.weight().shape(1) == 2);
    }

    TEST_CASE("tracing_communicator counts per kind") {
        sn::tracing_communicator<sn::local_communicator> t;
        std::vector<double> v(10);
        std::int64_t flag = 0;
        t.all_reduce(v.data(), 10, sn::reduce_op::sum);
        t.all_reduce(&flag, 1, sn::reduce_op::min);
        t.all_gather(v.data(), 5, v.data() + 5);
        CHECK(t.counts().all_reduce.calls == 1);
        CHECK(t.counts().all_reduce.bytes == 80);
        CHECK(t.counts().all_gather.elements == 5);
        CHECK(t.counts().control.calls == 1);
        auto sub = t.split(0, 0);
        sub.all_reduce(v.data(), 1, sn::reduce_op::sum);
        CHECK(t.counts().all_reduce.calls == 1);
        CHECK(sub.counts().all_reduce.calls == 1);
    }
}
