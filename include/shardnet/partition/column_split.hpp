// column_split: W split by output features. Forward needs no communication; backward
// all-reduces dX, overlapped with the weight-gradient product.
#pragma once

#include <string_view>

#include "shardnet/comm/async.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/dense_products.hpp"
#include "shardnet/kernels/reproducible_sum.hpp"
#include "shardnet/partition/partial_sum.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// Model rank r holds W[:, cols_r] and b[cols_r]; takes a replicated input, gives a sharded
/// output. On a 2D grid it splits over all the group's ranks, as on a 1D one.
struct column_split {
    static constexpr std::string_view name = "column_split";
    static constexpr layout input_layout = layout::replicated;
    static constexpr layout output_layout = layout::sharded;

    /// Elements all-reduced over the model-parallel group in one forward and one backward
    /// pass of a batch (what plans print and tests check against the tracing communicator).
    static step_traffic traffic(std::size_t batch, std::size_t in, std::size_t /*out*/,
                                grid_shape grid, grid_position /*at*/) {
        if (grid.size() == 1) return {};
        return {0, batch * in, 1, grid.size()};
    }

    /// z_r = x · W_r + b_r. No communication.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void forward(Comm&, const matrix<In>& x, const matrix<In>& w, const T* bias,
                        matrix<T>& z) {
        local_forward<Gemm>(x, w, bias, z);
    }

    /// dx = all_reduce(dz_r · W_rᵀ), dW_r = xᵀ · dz_r, db_r = Σ dz_r. Collective over comm:
    /// one all-reduce of batch x in elements (in bf16 when In is bfloat16:
    /// partition/partial_sum.hpp), started before dW is computed and waited after,
    /// so the reduction overlaps the weight-gradient product. With dx null (the first layer of
    /// a network, whose input needs no gradient) neither the product nor the all-reduce runs.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void backward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const matrix<In>& dz,
                         matrix<T>* dx, matrix<T>& dw, T* dbias) {
        if (dx == nullptr) return parameter_gradients<Gemm>(x, dz, dw, dbias);
        input_gradient_product<Gemm>(dz, w, *dx);
        auto pending = start_sum_partials<In>(comm, dx->data(), dx->size());
        parameter_gradients<Gemm>(x, dz, dw, dbias);
        pending.wait();
    }

    /// forward() has no sum over the group: the same with or without reproducible sums.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void forward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const T* bias,
                        matrix<T>& z, reproducible_sums<T>&) {
        forward<Gemm>(comm, x, w, bias, z);
    }

    /// backward() with dx's partial products summed by sums.over_outputs: the same bits for any
    /// group size up to the layer's reproducible_across (kernels/reproducible_sum.hpp). The sum
    /// is blocking, after dW.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void backward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const matrix<In>& dz,
                         matrix<T>* dx, matrix<T>& dw, T* dbias, reproducible_sums<T>& sums) {
        parameter_gradients<Gemm>(x, dz, dw, dbias);
        if (dx)
            sums.over_outputs.template product<Gemm>(comm, transpose::yes, dz.shape(0), w.shape(0),
                                                     dz.data(), dz.shape(1), w.data(), w.shape(1),
                                                     dx->data(), dx->shape(1));
    }
};

}  // namespace shardnet
