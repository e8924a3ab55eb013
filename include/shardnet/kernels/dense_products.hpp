// The three products of a dense layer on one rank's shards, named after what they compute,
// so that partitions read like the table of one layer's math in docs/design.md. Each runs on
// the GEMM policy Gemm (kernels/gemm_policy.hpp).
#pragma once

#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/gemm_policy.hpp"
#include "shardnet/kernels/reductions.hpp"

namespace shardnet::detail {

/// z = x · w  (batch x in_local times in_local x out_local).
template <gemm_policy Gemm, class T>
void forward_product(const matrix<T>& x, const matrix<T>& w, matrix<T>& z) {
    Gemm::template gemm<T>(transpose::no, transpose::no, x.shape(0), w.shape(1), w.shape(0), T(1),
                           x.data(), x.shape(1), w.data(), w.shape(1), T(0), z.data(), z.shape(1));
}

/// dx = dz · wᵀ.
template <gemm_policy Gemm, class T>
void input_gradient_product(const matrix<T>& dz, const matrix<T>& w, matrix<T>& dx) {
    Gemm::template gemm<T>(transpose::no, transpose::yes, dz.shape(0), w.shape(0), w.shape(1), T(1),
                           dz.data(), dz.shape(1), w.data(), w.shape(1), T(0), dx.data(),
                           dx.shape(1));
}

/// dw = xᵀ · dz.
template <gemm_policy Gemm, class T>
void weight_gradient_product(const matrix<T>& x, const matrix<T>& dz, matrix<T>& dw) {
    Gemm::template gemm<T>(transpose::yes, transpose::no, x.shape(1), dz.shape(1), x.shape(0), T(1),
                           x.data(), x.shape(1), dz.data(), dz.shape(1), T(0), dw.data(),
                           dw.shape(1));
}

/// z = x · w + bias (bias may be null): a forward pass with nothing to communicate.
template <gemm_policy Gemm, class T>
void local_forward(const matrix<T>& x, const matrix<T>& w, const T* bias, matrix<T>& z) {
    forward_product<Gemm>(x, w, z);
    if (bias) add_row_vector(z.data(), z.shape(0), z.shape(1), z.shape(1), bias);
}

/// dw = xᵀ · dz and dbias = Σ dz over rows (if dbias is not null).
template <gemm_policy Gemm, class T>
void parameter_gradients(const matrix<T>& x, const matrix<T>& dz, matrix<T>& dw, T* dbias) {
    weight_gradient_product<Gemm>(x, dz, dw);
    if (dbias) column_sums(dz.data(), dz.shape(0), dz.shape(1), dz.shape(1), dbias);
}

/// The whole backward pass with nothing to communicate: dx (if not null), dw, dbias.
template <gemm_policy Gemm, class T>
void local_backward(const matrix<T>& x, const matrix<T>& w, const matrix<T>& dz, matrix<T>* dx,
                    matrix<T>& dw, T* dbias) {
    if (dx) input_gradient_product<Gemm>(dz, w, *dx);
    parameter_gradients<Gemm>(x, dz, dw, dbias);
}

}  // namespace shardnet::detail
