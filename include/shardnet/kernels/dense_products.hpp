// The three products of a dense layer on one rank's shards, named after what they compute,
// so that partitions read like the table of one layer's math in docs/design.md. Each runs on
// the GEMM policy Gemm (kernels/gemm_policy.hpp). Public: they are what a user-written
// partition's forward and backward are built from (docs/partitions.md).
#pragma once

#include <type_traits>

#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/gemm_bf16.hpp"
#include "shardnet/kernels/gemm_policy.hpp"
#include "shardnet/kernels/reductions.hpp"

namespace shardnet {

// Common to every function below:
// - Gemm is the GEMM policy the partition's forward or backward received as its first template
//   parameter; passing it on is what makes a layer built with cblas_gemm (or a user policy) use
//   it in every product.
// - Matrices are this rank's local blocks, row-major and contiguous, already of the shapes
//   given in @pre (nothing is resized); outputs are overwritten, never accumulated into, and
//   their previous contents are not read. Any extent may be 0 (an empty shard): an output
//   whose contraction is empty becomes 0.
// - Nothing communicates, so none of them is collective.
// - Operands (In) are T, or bfloat16 with T = float (bf16 mixed precision, core/precision.hpp):
//   then the product runs Gemm::gemm_bf16 if the policy offers one, shardnet::gemm_bf16
//   otherwise, with fp32 accumulation and an fp32 result. Sums (bias, column sums) stay in T
//   and take T operands only.

namespace detail {

/// The operand types a product accepts: T with T, or bfloat16 with a float result.
template <class In, class T>
concept product_operands = std::same_as<In, T> ||
    (std::same_as<In, bfloat16>&& std::same_as<T, float>);

/// A GEMM policy that brings its own bfloat16 product (same contract as shardnet::gemm_bf16).
template <class G>
concept gemm_policy_with_bf16 = requires(transpose t, std::size_t n, const bfloat16* a, float* c) {
    G::gemm_bf16(t, t, n, n, n, 1.0f, a, n, a, n, 0.0f, c, n);
};

/// C = op(A)·op(B) on Gemm, for T operands or bfloat16 ones (see the top of the file).
template <gemm_policy Gemm, class In, class T>
void product(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k, const In* a,
             std::size_t lda, const In* b, std::size_t ldb, T* c, std::size_t ldc) {
    if constexpr (std::is_same_v<In, T>)
        Gemm::template gemm<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, T(0), c, ldc);
    else if constexpr (gemm_policy_with_bf16<Gemm>)
        Gemm::gemm_bf16(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
    else
        gemm_bf16(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

}  // namespace detail

/// z = x · w: the forward product of a layer's block.
/// @tparam Gemm a gemm_policy (the layer's).
/// @pre  x is batch x in_local, w is in_local x out_local, z is batch x out_local.
/// @post z holds x · w.
template <gemm_policy Gemm, class In, class T>
requires detail::product_operands<In, T>
void forward_product(const matrix<In>& x, const matrix<In>& w, matrix<T>& z) {
    detail::product<Gemm>(transpose::no, transpose::no, x.shape(0), w.shape(1), w.shape(0),
                          x.data(), x.shape(1), w.data(), w.shape(1), z.data(), z.shape(1));
}

/// dx = dz · wᵀ: the gradient of a layer's input from the gradient of its output.
/// @tparam Gemm a gemm_policy (the layer's).
/// @pre  dz is batch x out_local, w is in_local x out_local, dx is batch x in_local.
/// @post dx holds dz · wᵀ.
template <gemm_policy Gemm, class In, class T>
requires detail::product_operands<In, T>
void input_gradient_product(const matrix<In>& dz, const matrix<In>& w, matrix<T>& dx) {
    detail::product<Gemm>(transpose::no, transpose::yes, dz.shape(0), w.shape(0), w.shape(1),
                          dz.data(), dz.shape(1), w.data(), w.shape(1), dx.data(), dx.shape(1));
}

/// dw = xᵀ · dz: the gradient of a layer's weight block.
/// @tparam Gemm a gemm_policy (the layer's).
/// @pre  x is batch x in_local, dz is batch x out_local, dw is in_local x out_local.
/// @post dw holds xᵀ · dz.
template <gemm_policy Gemm, class In, class T>
requires detail::product_operands<In, T>
void weight_gradient_product(const matrix<In>& x, const matrix<In>& dz, matrix<T>& dw) {
    detail::product<Gemm>(transpose::yes, transpose::no, x.shape(1), dz.shape(1), x.shape(0),
                          x.data(), x.shape(1), dz.data(), dz.shape(1), dw.data(), dw.shape(1));
}

/// z += bias in every row. A partition whose product is a partial sum adds the bias after the
/// reduction, so that it counts once whatever the number of ranks.
/// @pre  bias is null (no bias: nothing happens) or points to z.shape(1) values.
/// @post every row of z has had bias added (z is read, unlike the products').
template <class T>
void add_bias(matrix<T>& z, const T* bias) {
    if (bias) detail::add_row_vector(z.data(), z.shape(0), z.shape(1), z.shape(1), bias);
}

/// z = x · w + bias: a forward pass with nothing to communicate (the bias block matches the
/// output block).
/// @tparam Gemm a gemm_policy (the layer's).
/// @pre  as forward_product; bias is null or points to out_local values.
/// @post z holds x · w, plus bias in every row if bias is not null.
template <gemm_policy Gemm, class In, class T>
void local_forward(const matrix<In>& x, const matrix<In>& w, const T* bias, matrix<T>& z) {
    forward_product<Gemm>(x, w, z);
    add_bias(z, bias);
}

/// dw = xᵀ · dz and dbias = Σ dz over the rows: a layer's parameter gradients.
/// @tparam Gemm a gemm_policy (the layer's).
/// @pre  as weight_gradient_product; dbias is null (no bias) or points to out_local values.
/// With bfloat16 operands dbias must be null: the layer sums the fp32 dz itself (the bias
/// gradient of a mixed-precision layer is not rounded to bf16 first).
/// @post dw holds xᵀ · dz; if dbias is not null, dbias[j] holds the sum of column j of dz.
template <gemm_policy Gemm, class In, class T>
void parameter_gradients(const matrix<In>& x, const matrix<In>& dz, matrix<T>& dw, T* dbias) {
    weight_gradient_product<Gemm>(x, dz, dw);
    if constexpr (std::is_same_v<In, T>) {
        if (dbias) detail::column_sums(dz.data(), dz.shape(0), dz.shape(1), dz.shape(1), dbias);
    } else {
        SHARDNET_ASSERT(dbias == nullptr);
    }
}

/// The whole backward pass with nothing to communicate: dx = dz · wᵀ (if dx is not null, i.e.
/// the input gradient is wanted), dw = xᵀ · dz, dbias = Σ dz (if dbias is not null).
/// @tparam Gemm a gemm_policy (the layer's).
/// @pre  as input_gradient_product and parameter_gradients.
/// @post as input_gradient_product (for a non-null dx) and parameter_gradients.
template <gemm_policy Gemm, class In, class T>
void local_backward(const matrix<In>& x, const matrix<In>& w, const matrix<In>& dz, matrix<T>* dx,
                    matrix<T>& dw, T* dbias) {
    if (dx) input_gradient_product<Gemm>(dz, w, *dx);
    parameter_gradients<Gemm>(x, dz, dw, dbias);
}

}  // namespace shardnet
