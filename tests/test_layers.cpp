// Dense layers on P ranks against a naive double reference: forward, dX, dW, db for every
// partition, activation and precision, with uneven sizes and empty shards; the collectives
// each layer issues; initialization that is the same global matrix for every P; errors that
// every rank throws alike.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "reference.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/comm/tracing_communicator.hpp"
#include "shardnet/kernels/cblas_gemm.hpp"
#include "shardnet/layers/dense.hpp"
#include "shardnet/partition/block2d.hpp"
#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/replicated.hpp"
#include "shardnet/partition/row_split.hpp"

namespace sn = shardnet;
using sn::test::dmatrix;

namespace {

struct layer_case {
    std::size_t in, out, batch;
};

// (7, 5): sizes that divide by no P > 1; (2, 3): empty shards at P = 3, 4 for row and
// column splits; (33, 17): several elements per shard and a larger inner dimension.
constexpr layer_case cases[] = {{7, 5, 6}, {2, 3, 3}, {33, 17, 9}, {1, 1, 1}};

template <class Activation>
dmatrix apply(const dmatrix& z) {
    dmatrix y = z;
    for (double& v : y.v)
        v = Activation::forward(v);
    return y;
}

template <class T, class Partition, class Activation, class Gemm = sn::xsimd_gemm, class Group>
void check_layer_against_reference(Group& group, const layer_case& c, bool bias) {
    CAPTURE(c.in);
    CAPTURE(c.out);
    CAPTURE(c.batch);
    CAPTURE(bias);
    sn::dense_options options;
    options.bias = bias;
    options.seed = 7;
    options.layer = 3;
    sn::dense<T, Partition, Activation, Gemm> layer(group, c.in, c.out, options);

    // Biases start at zero; give them values so that their path is tested.
    const dmatrix bias_global = sn::test::random_dmatrix(1, c.out, 5);
    if (bias)
        for (std::size_t j = 0; j < layer.weight_cols().size(); ++j)
            layer.bias()(j) = static_cast<T>(bias_global(0, layer.weight_cols().to_global(j)));

    const dmatrix w = sn::test::to_dmatrix(layer.gather_weight(group));
    const dmatrix x = sn::test::random_dmatrix(c.batch, c.in, 1);
    const dmatrix dy = sn::test::random_dmatrix(c.batch, c.out, 2);

    // Reference in double, from the T-rounded inputs so that only arithmetic differs.
    const dmatrix xr = sn::test::to_dmatrix(sn::test::block_of<T>(x, {0, c.batch}, {0, c.in}));
    const dmatrix dyr = sn::test::to_dmatrix(sn::test::block_of<T>(dy, {0, c.batch}, {0, c.out}));
    dmatrix z = sn::test::multiply(xr, w);
    if (bias)
        for (std::size_t i = 0; i < c.batch; ++i)
            for (std::size_t j = 0; j < c.out; ++j)
                z(i, j) += static_cast<double>(static_cast<T>(bias_global(0, j)));
    const dmatrix y = apply<Activation>(z);
    dmatrix dz = dyr;
    for (std::size_t i = 0; i < dz.v.size(); ++i)
        dz.v[i] *= Activation::derivative(z.v[i]);
    const dmatrix dx = sn::test::multiply(dz, sn::test::transposed(w));
    const dmatrix dw = sn::test::multiply(sn::test::transposed(xr), dz);
    dmatrix db(1, c.out);
    for (std::size_t i = 0; i < c.batch; ++i)
        for (std::size_t j = 0; j < c.out; ++j)
            db(0, j) += dz(i, j);

    const sn::shard_range rows = layer.weight_rows(), cols = layer.weight_cols();
    const sn::shard_range all_batch{0, c.batch};
    const auto x_local = sn::test::block_of<T>(x, all_batch, rows);
    const auto& y_local = layer.forward(group, x_local);
    CHECK(sn::test::max_error(y_local, y, all_batch, cols) <=
          sn::test::product_tolerance<T>(c.in, xr.max_abs(), w.max_abs()));

    const auto dy_local = sn::test::block_of<T>(dy, all_batch, cols);
    const auto& dx_local = layer.backward(group, dy_local);
    const double max_dz = dz.max_abs();
    CHECK(sn::test::max_error(dx_local, dx, all_batch, rows) <=
          sn::test::product_tolerance<T>(c.out, max_dz, w.max_abs()));
    CHECK(sn::test::max_error(layer.weight_grad(), dw, rows, cols) <=
          sn::test::product_tolerance<T>(c.batch, xr.max_abs(), max_dz));
    if (bias) {
        sn::matrix<T> db_local = sn::matrix<T>::from_shape({1, cols.size()});
        for (std::size_t j = 0; j < cols.size(); ++j)
            db_local(0, j) = layer.bias_grad()(j);
        CHECK(sn::test::max_error(db_local, db, {0, 1}, cols) <=
              sn::test::product_tolerance<T>(c.batch, max_dz, 1.0));
    }
}

template <class T, class Partition, class Group>
void check_all_activations(Group& group) {
    for (const layer_case& c : cases) {
        check_layer_against_reference<T, Partition, sn::activation::identity>(group, c, true);
        check_layer_against_reference<T, Partition, sn::activation::identity>(group, c, false);
        check_layer_against_reference<T, Partition, sn::activation::relu>(group, c, true);
        check_layer_against_reference<T, Partition, sn::activation::gelu>(group, c, true);
        check_layer_against_reference<T, Partition, sn::activation::tanh>(group, c, true);
        check_layer_against_reference<T, Partition, sn::activation::sigmoid>(group, c, true);
    }
}

/// A user GEMM policy: ours, counting the products it is asked for.
struct counting_gemm {
    static constexpr std::string_view name = "counting";
    static inline std::size_t calls = 0;
    template <class T>
    static void gemm(sn::transpose ta, sn::transpose tb, std::size_t m, std::size_t n,
                     std::size_t k, T alpha, const T* a, std::size_t lda, const T* b,
                     std::size_t ldb, T beta, T* c, std::size_t ldc) {
        ++calls;
        sn::xsimd_gemm::gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
};

/// Records how a layer uses non-blocking all-reduces: started, then waited for, and never
/// replaced by a blocking one.
class overlap_recorder : public sn::mpi_communicator {
  public:
    struct request {
        sn::detail::mpi_request inner;
        std::size_t* waits;
        void wait() {
            inner.wait();
            ++*waits;
        }
    };
    template <class T>
    request all_reduce_async(T* data, std::size_t n, sn::reduce_op op) {
        ++starts;
        return {sn::mpi_communicator::all_reduce_async(data, n, op), &waits};
    }
    template <class T>
    void all_reduce(T* data, std::size_t n, sn::reduce_op op) {
        if constexpr (std::is_floating_point_v<T>) ++blocking;
        sn::mpi_communicator::all_reduce(data, n, op);
    }
    overlap_recorder split(int color, int key) const {
        return overlap_recorder(sn::mpi_communicator::split(color, key));
    }
    overlap_recorder() = default;
    explicit overlap_recorder(sn::mpi_communicator c) : sn::mpi_communicator(std::move(c)) {}
    std::size_t starts = 0, waits = 0, blocking = 0;
};

}  // namespace

TEST_SUITE("serial") {
    TEST_CASE_TEMPLATE("a partition map holds every element, and one first copy of each", P,
                       sn::column_split, sn::row_split, sn::replicated, sn::block2d,
                       sn::block2d_transposed) {
        const sn::partition_map map = sn::map_of<P>();
        for (const sn::grid_shape grid :
             {sn::grid_shape{1, 1}, sn::grid_shape{1, 3}, sn::grid_shape{3, 1},
              sn::grid_shape{2, 2}, sn::grid_shape{2, 3}, sn::grid_shape{4, 2}}) {
            for (const std::size_t in : {1, 5, 7})
                for (const std::size_t out : {1, 2, 6}) {
                    CAPTURE(grid.rows);
                    CAPTURE(grid.cols);
                    CAPTURE(in);
                    CAPTURE(out);
                    // How many ranks hold each element, and how many call themselves its first
                    // copy: at least one, and exactly one.
                    std::vector<std::size_t> held(in * out), first(in * out), bias_first(out);
                    for (std::size_t q = 0; q < grid.size(); ++q) {
                        const sn::grid_position at = sn::position_of_rank(grid, q);
                        const sn::shard_range rows = map.weight_rows(in, grid, at);
                        const sn::shard_range cols = map.weight_cols(out, grid, at);
                        const bool is_first = map.first_weight_copy(in, out, grid, at);
                        for (std::size_t i = rows.begin; i < rows.end; ++i)
                            for (std::size_t j = cols.begin; j < cols.end; ++j) {
                                ++held[i * out + j];
                                first[i * out + j] += is_first;
                            }
                        if (map.first_bias_copy(out, grid, at))
                            for (std::size_t j = cols.begin; j < cols.end; ++j)
                                ++bias_first[j];
                    }
                    for (std::size_t e = 0; e < in * out; ++e) {
                        CHECK(held[e] >= 1);
                        CHECK(first[e] == 1);
                    }
                    for (std::size_t j = 0; j < out; ++j)
                        CHECK(bias_first[j] == 1);
                }
        }
    }
}

TEST_SUITE("mpi") {
    TEST_CASE_TEMPLATE("block2d layers match the double reference on every grid", T, float,
                       double) {
        sn::mpi_communicator world;
        for (std::size_t rows = 1; rows <= world.size(); ++rows) {
            if (world.size() % rows != 0) continue;
            CAPTURE(rows);
            sn::model_group<sn::mpi_communicator> grid(world, {rows, world.size() / rows});
            check_all_activations<T, sn::block2d>(grid);
            check_all_activations<T, sn::block2d_transposed>(grid);
        }
    }

    TEST_CASE("block2d overlaps its backward all-reduce with the weight gradient") {
        overlap_recorder world;
        sn::model_group<overlap_recorder> grid(world, {1, world.size()});
        sn::dense<float, sn::block2d, sn::activation::relu> layer(grid, 7, 5);
        const dmatrix x = sn::test::random_dmatrix(4, 7, 1);
        const dmatrix dy = sn::test::random_dmatrix(4, 5, 2);
        layer.forward(grid, sn::test::block_of<float>(x, {0, 4}, layer.weight_rows()));
        layer.backward(grid, sn::test::block_of<float>(dy, {0, 4}, layer.weight_cols()));
        // The input gradient is summed along the grid row: world.size() ranks here.
        CHECK(grid.row().starts == (world.size() > 1 ? 1 : 0));
        CHECK(grid.row().waits == grid.row().starts);
        CHECK(grid.row().blocking == 0);
    }

    TEST_CASE("column_split overlaps its backward all-reduce with the weight gradient") {
        overlap_recorder group;
        sn::dense<float, sn::column_split, sn::activation::relu> layer(group, 7, 5);
        const dmatrix x = sn::test::random_dmatrix(4, 7, 1);
        const dmatrix dy = sn::test::random_dmatrix(4, 5, 2);
        const auto x_local = sn::test::block_of<float>(x, {0, 4}, layer.weight_rows());
        layer.forward(group, x_local);  // the layer keeps a pointer to its input until backward
        layer.backward(group, sn::test::block_of<float>(dy, {0, 4}, layer.weight_cols()));
        CHECK(group.starts == 1);
        CHECK(group.waits == 1);
        CHECK(group.blocking == 0);
    }

    TEST_CASE_TEMPLATE("dense layers match the double reference on every rank count", T, float,
                       double) {
        sn::mpi_communicator world;
        SUBCASE("column_split") {
            check_all_activations<T, sn::column_split>(world);
        }
        SUBCASE("row_split") {
            check_all_activations<T, sn::row_split>(world);
        }
        SUBCASE("replicated") {
            check_all_activations<T, sn::replicated>(world);
        }
    }

    TEST_CASE_TEMPLATE("dense layers on the cblas_gemm policy match the double reference", T, float,
                       double) {
        sn::mpi_communicator world;
        for (const layer_case& c : cases) {
            check_layer_against_reference<T, sn::column_split, sn::activation::relu,
                                          sn::cblas_gemm>(world, c, true);
            check_layer_against_reference<T, sn::row_split, sn::activation::identity,
                                          sn::cblas_gemm>(world, c, true);
            check_layer_against_reference<T, sn::replicated, sn::activation::tanh, sn::cblas_gemm>(
                world, c, false);
        }
    }

    TEST_CASE("every product of a layer runs on the layer's GEMM policy") {
        sn::mpi_communicator world;
        const dmatrix x = sn::test::random_dmatrix(4, 7, 1);
        const dmatrix dy = sn::test::random_dmatrix(4, 5, 2);
        sn::dense<double, sn::column_split, sn::activation::relu, counting_gemm> column(world, 7,
                                                                                        5);
        sn::dense<double, sn::row_split, sn::activation::identity, counting_gemm> row(world, 7, 5);
        counting_gemm::calls = 0;
        const auto column_x = sn::test::block_of<double>(x, {0, 4}, column.weight_rows());
        const auto row_x = sn::test::block_of<double>(x, {0, 4}, row.weight_rows());
        column.forward(world, column_x);
        column.backward(world, sn::test::block_of<double>(dy, {0, 4}, column.weight_cols()));
        row.forward(world, row_x);
        row.backward(world, sn::test::block_of<double>(dy, {0, 4}, row.weight_cols()));
        CHECK(counting_gemm::calls == 6);  // X·W, dZ·Wᵀ, Xᵀ·dZ per layer
    }

    TEST_CASE("each layer issues exactly the collectives of its partition") {
        sn::tracing_communicator<sn::mpi_communicator> group;
        const std::size_t in = 7, out = 5, batch = 6;
        const dmatrix x = sn::test::random_dmatrix(batch, in, 1);
        const dmatrix dy = sn::test::random_dmatrix(batch, out, 2);

        SUBCASE("column_split: nothing forward, one all-reduce of batch x in backward") {
            sn::dense<float, sn::column_split, sn::activation::relu> layer(group, in, out);
            const auto xl = sn::test::block_of<float>(x, {0, batch}, layer.weight_rows());
            const auto dyl = sn::test::block_of<float>(dy, {0, batch}, layer.weight_cols());
            group.reset();
            layer.forward(group, xl);
            CHECK(group.counts().arithmetic_calls() == 0);
            layer.backward(group, dyl);
            CHECK(group.counts().all_reduce.calls == 1);
            CHECK(group.counts().all_reduce.elements == batch * in);
            CHECK(group.counts().arithmetic_calls() == 1);
        }
        SUBCASE("row_split: one all-reduce of batch x out forward, nothing backward") {
            sn::dense<float, sn::row_split, sn::activation::gelu> layer(group, in, out);
            const auto xl = sn::test::block_of<float>(x, {0, batch}, layer.weight_rows());
            const auto dyl = sn::test::block_of<float>(dy, {0, batch}, layer.weight_cols());
            group.reset();
            layer.forward(group, xl);
            CHECK(group.counts().all_reduce.calls == 1);
            CHECK(group.counts().all_reduce.elements == batch * out);
            CHECK(group.counts().arithmetic_calls() == 1);
            group.reset();
            layer.backward(group, dyl);
            CHECK(group.counts().arithmetic_calls() == 0);
        }
        SUBCASE("replicated: no model-parallel traffic at all") {
            sn::dense<double, sn::replicated, sn::activation::tanh> layer(group, in, out);
            const auto xl = sn::test::block_of<double>(x, {0, batch}, layer.weight_rows());
            const auto dyl = sn::test::block_of<double>(dy, {0, batch}, layer.weight_cols());
            group.reset();
            layer.forward(group, xl);
            layer.backward(group, dyl);
            CHECK(group.counts().arithmetic_calls() == 0);
        }
        // The only other traffic is the agreement on input shapes: one control all-reduce of
        // one element per checked call.
        CHECK(group.counts().control.calls <= 2);
    }

    TEST_CASE_TEMPLATE("the gathered weight is the same global matrix for every P", T, float,
                       double) {
        sn::mpi_communicator world;
        for (auto scheme : {sn::init_scheme::xavier_uniform, sn::init_scheme::xavier_normal,
                            sn::init_scheme::he_uniform, sn::init_scheme::he_normal}) {
            CAPTURE(sn::to_string(scheme));
            sn::dense_options options;
            options.init = scheme;
            options.seed = 2024;
            options.layer = 1;
            const std::size_t in = 13, out = 6;
            sn::dense<T, sn::column_split> column(world, in, out, options);
            sn::dense<T, sn::row_split> row(world, in, out, options);
            const auto from_columns = column.gather_weight(world);
            const auto from_rows = row.gather_weight(world);
            // What one rank alone (P = 1) would generate, element by element.
            bool identical = true;
            for (std::size_t i = 0; i < in; ++i)
                for (std::size_t j = 0; j < out; ++j) {
                    const T expected =
                        static_cast<T>(sn::initial_value(scheme, {2024, 1, 0}, in, out, i, j));
                    identical =
                        identical && from_columns(i, j) == expected && from_rows(i, j) == expected;
                }
            CHECK(identical);
        }
    }

    TEST_CASE("import then gather gives back the global weight and bias") {
        sn::mpi_communicator world;
        const std::size_t in = 5, out = 7;
        const dmatrix w = sn::test::random_dmatrix(in, out, 11);
        const auto wg = sn::test::block_of<double>(w, {0, in}, {0, out});
        sn::vector<double> b = sn::vector<double>::from_shape({out});
        for (std::size_t j = 0; j < out; ++j)
            b(j) = static_cast<double>(j) - 2.5;
        sn::dense<double, sn::column_split> column(world, in, out);
        sn::dense<double, sn::row_split> row(world, in, out);
        column.import_weights(world, wg, &b);
        row.import_weights(world, wg, &b);
        CHECK(column.gather_weight(world) == wg);
        CHECK(row.gather_weight(world) == wg);
        CHECK(column.gather_bias(world) == b);
        CHECK(row.gather_bias(world) == b);
    }

    TEST_CASE("a wrong input width throws the same error on every rank, and nothing hangs") {
        sn::mpi_communicator world;
        sn::dense_options options;
        options.name = "fc1";
        sn::dense<float, sn::column_split, sn::activation::relu> layer(world, 7, 5, options);

        // Only the last rank passes a bad input: the others must still throw, not wait.
        const bool bad_here = world.rank() + 1 == world.size();
        const sn::matrix<float> x = sn::matrix<float>::from_shape({4, bad_here ? 6u : 7u});
        std::string message;
        try {
            layer.forward(world, x);
        } catch (const sn::error& e) {
            message = e.what();
        }
        CHECK(message.find("dense 'fc1'") != std::string::npos);
        CHECK(message.find("input has 6 features") != std::string::npos);
        CHECK(message.find("expected 7") != std::string::npos);
        // Every rank holds the same message.
        std::int64_t length = static_cast<std::int64_t>(message.size()), low = length;
        world.all_reduce(&length, 1, sn::reduce_op::max);
        world.all_reduce(&low, 1, sn::reduce_op::min);
        CHECK(length == low);

        // The suite goes on: the layer still works with a good input everywhere.
        const sn::matrix<float> good = sn::matrix<float>::from_shape({4, 7});
        CHECK_NOTHROW(layer.forward(world, good));

        // A bad import is caught alike.
        const sn::matrix<float> wrong = sn::matrix<float>::from_shape({5, 7});
        CHECK_THROWS_WITH_AS(layer.import_weights(world, wrong),
                             doctest::Contains("imported weight is 5 x 7, expected 7 x 5"),
                             sn::error);
    }
}
