// replicated: W whole on every rank of the model-parallel group (pure data parallelism).
#pragma once

#include <string_view>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/dense_products.hpp"
#include "shardnet/kernels/reproducible_sum.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// Every rank holds all of W and b; replicated input and output; no model-parallel traffic.
struct replicated {
    static constexpr std::string_view name = "replicated";
    static constexpr layout input_layout = layout::replicated;
    static constexpr layout output_layout = layout::replicated;

    /// Elements all-reduced over the model-parallel group in one forward and one backward
    /// pass of a batch (what plans print and tests check against the tracing communicator).
    static step_traffic traffic(std::size_t /*batch*/, std::size_t /*in*/, std::size_t /*out*/,
                                grid_shape /*grid*/, grid_position /*at*/) {
        return {};
    }

    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void forward(Comm&, const matrix<In>& x, const matrix<In>& w, const T* bias,
                        matrix<T>& z) {
        local_forward<Gemm>(x, w, bias, z);
    }

    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void backward(Comm&, const matrix<In>& x, const matrix<In>& w, const matrix<In>& dz,
                         matrix<T>* dx, matrix<T>& dw, T* dbias) {
        local_backward<Gemm>(x, w, dz, dx, dw, dbias);
    }

    /// No sum over the group: the same with or without reproducible sums.
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void forward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const T* bias,
                        matrix<T>& z, reproducible_sums<T>&) {
        forward<Gemm>(comm, x, w, bias, z);
    }
    template <gemm_policy Gemm = xsimd_gemm, communicator Comm, class In, class T>
    static void backward(Comm& comm, const matrix<In>& x, const matrix<In>& w, const matrix<In>& dz,
                         matrix<T>* dx, matrix<T>& dw, T* dbias, reproducible_sums<T>&) {
        backward<Gemm>(comm, x, w, dz, dx, dw, dbias);
    }
};

}  // namespace shardnet
