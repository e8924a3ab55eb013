// block2d: W split into rows x cols balanced blocks over the model grid, the 2D
// weight-stationary algorithm. Each rank multiplies its block; partial products are summed
// along one grid dimension, input gradients along the other. A rank sends about
// B x out / rows + B x in / cols elements per layer instead of 1D's B x in or B x out.
#pragma once

#include <string_view>

#include "shardnet/comm/async.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/dense_products.hpp"
#include "shardnet/partition/partial_sum.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// The rank at grid position (i, j) holds W[rows_i, cols_j]: block i of the in features over
/// the grid's rows and block j of the out features over its columns (Transposed = false), or
/// block j of the in features and block i of the out features (Transposed = true). Its input
/// is sharded over one grid dimension and its output over the other, so a block2d layer
/// followed by a block2d_transposed layer (and so on, alternating) needs no conversion between
/// them, as a column_split layer followed by a row_split layer. The bias block follows the
/// output block; ranks along the other dimension hold copies of it.
///
/// On a 1 x P grid block2d is column_split and block2d_transposed is row_split, with the same
/// collectives; on a P x 1 grid the other way round.
template <bool Transposed>
struct block2d_oriented {
    static constexpr std::string_view name = Transposed ? "block2d_transposed" : "block2d";
    static constexpr layout input_layout =
        Transposed ? layout::sharded_over_cols : layout::sharded_over_rows;
    static constexpr layout output_layout =
        Transposed ? layout::sharded_over_rows : layout::sharded_over_cols;

    /// Elements all-reduced in one forward and one backward pass of a batch, and the size of
    /// the groups they are reduced over (what plans print and tests check against the tracing
    /// communicator).
    static step_traffic traffic(std::size_t batch, std::size_t in, std::size_t out, grid_shape grid,
                                grid_position at) {
        const partition_map map = map_of<block2d_oriented>();
        // The forward sum runs over the ranks holding the other blocks of the input, the
        // backward one over those holding the other blocks of the output.
        const std::size_t forward_group = Transposed ? grid.cols : grid.rows;
        const std::size_t backward_group = Transposed ? grid.rows : grid.cols;
        step_traffic t;
        if (forward_group > 1) {
            t.forward_all_reduce = batch * map.weight_cols(out, grid, at).size();
            t.forward_group = forward_group;
        }
        if (backward_group > 1) {
            t.backward_all_reduce = batch * map.weight_rows(in, grid, at).size();
            t.backward_group = backward_group;
        }
        return t;
    }

    /// z_j = Σ_i x_i · W_ij + b_j: the local product, summed over the ranks that hold the
    /// other input blocks of this output block, then the bias (once). Collective over
    /// `group` (a model_group, or a plain communicator seen as a 1 x P grid). The sums of a bf16
    /// layer (In = bfloat16) travel in bf16 (partition/partial_sum.hpp), here and in backward.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void forward(Comm& group, const matrix<In>& x, const matrix<In>& w, const T* bias,
                        matrix<T>& z) {
        forward_product<Gemm>(x, w, z);
        // Every rank of that group holds the same output block, so all skip an empty one.
        if (auto* sum_over = group_splitting(group, input_layout); sum_over && z.size() > 0)
            sum_partials<In>(*sum_over, z.data(), z.size());
        add_bias(z, bias);
    }

    /// dx_i = Σ_j dz_j · W_ijᵀ (summed over the ranks that hold the other output blocks),
    /// dW_ij = x_iᵀ · dz_j, db_j = Σ dz_j (the same on every copy). The sum of dx is started
    /// before dW is computed and waited after, so it overlaps the weight-gradient product.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void backward(Comm& group, const matrix<In>& x, const matrix<In>& w,
                         const matrix<In>& dz, matrix<T>* dx, matrix<T>& dw, T* dbias) {
        auto* sum_over = group_splitting(group, output_layout);
        if (dx == nullptr || sum_over == nullptr || dx->size() == 0)
            return local_backward<Gemm>(x, w, dz, dx, dw, dbias);
        input_gradient_product<Gemm>(dz, w, *dx);
        auto pending = start_sum_partials<In>(*sum_over, dx->data(), dx->size());
        parameter_gradients<Gemm>(x, dz, dw, dbias);
        pending.wait();
    }
};

/// Input sharded over the grid's rows, output over its columns.
using block2d = block2d_oriented<false>;
/// Input sharded over the grid's columns, output over its rows: the layer to put after a
/// block2d layer (and before the next block2d).
using block2d_transposed = block2d_oriented<true>;

}  // namespace shardnet
