// row_split: W split by input features. Forward all-reduces the partial products; backward
// needs no communication. After a column_split layer, the pair costs one all-reduce each way.
#pragma once

#include <string_view>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/dense_products.hpp"
#include "shardnet/kernels/reproducible_sum.hpp"
#include "shardnet/partition/partial_sum.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// Model rank r holds W[rows_r, :] and the whole b; takes a sharded input, gives a replicated
/// output. On a 2D grid it splits over all the group's ranks, as on a 1D one.
struct row_split {
    static constexpr std::string_view name = "row_split";
    static constexpr layout input_layout = layout::sharded;
    static constexpr layout output_layout = layout::replicated;

    /// Elements all-reduced over the model-parallel group in one forward and one backward
    /// pass of a batch (what plans print and tests check against the tracing communicator).
    static step_traffic traffic(std::size_t batch, std::size_t /*in*/, std::size_t out,
                                grid_shape grid, grid_position /*at*/) {
        if (grid.size() == 1) return {};
        return {batch * out, 0, grid.size(), 1};
    }

    /// z = all_reduce(x_r · W_r) + b. Collective over comm: one all-reduce of batch x out (in
    /// bf16 when In is bfloat16: partition/partial_sum.hpp). The bias is added after the
    /// reduction, so it counts once whatever P is.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void forward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const T* bias,
                        matrix<T>& z) {
        forward_product<Gemm>(x, w, z);
        sum_partials<In>(comm, z.data(), z.size());
        add_bias(z, bias);
    }

    /// dx_r = dz · W_rᵀ, dW_r = x_rᵀ · dz, db = Σ dz (the same on every rank, since dz is
    /// replicated). No communication.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void backward(Comm&, const matrix<In>& x, const matrix<In>& w, const matrix<In>& dz,
                         matrix<T>* dx, matrix<T>& dw, T* dbias) {
        local_backward<Gemm>(x, w, dz, dx, dw, dbias);
    }

    /// forward() with the partial products summed by sums.over_inputs: the same bits for any
    /// group size up to the layer's reproducible_across (kernels/reproducible_sum.hpp).
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void forward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const T* bias,
                        matrix<T>& z, reproducible_sums<T>& sums) {
        sums.over_inputs.template product<Gemm>(comm, transpose::no, x.shape(0), w.shape(1),
                                                x.data(), x.shape(1), w.data(), w.shape(1),
                                                z.data(), z.shape(1));
        add_bias(z, bias);
    }

    /// backward() has no sum over the group: the same with or without reproducible sums.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void backward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const matrix<In>& dz,
                         matrix<T>* dx, matrix<T>& dw, T* dbias, reproducible_sums<T>&) {
        backward<Gemm>(comm, x, w, dz, dx, dw, dbias);
    }
};

}  // namespace shardnet
