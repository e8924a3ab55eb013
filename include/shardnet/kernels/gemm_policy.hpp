// The GEMM policy: which local matrix product a dense layer runs. The default is shardnet's own
// xsimd GEMM; kernels/cblas_gemm.hpp offers a BLAS-backed one for users who already link a BLAS.
#pragma once

#include <cstddef>
#include <string_view>

#include "shardnet/kernels/gemm.hpp"

namespace shardnet {

/// A GEMM policy provides `name` and, for T = float and double,
/// `G::gemm<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)` with the
/// contract of shardnet::gemm (kernels/gemm.hpp): row-major C = alpha·op(A)·op(B) + beta·C,
/// C not read when beta == 0. Layers call it from the thread that drives the step.
template <class G>
concept gemm_policy = requires(transpose t, std::size_t n, const float* af, float* cf,
                               const double* ad, double* cd) {
    { G::name } -> std::convertible_to<std::string_view>;
    G::template gemm<float>(t, t, n, n, n, 1.0f, af, n, af, n, 0.0f, cf, n);
    G::template gemm<double>(t, t, n, n, n, 1.0, ad, n, ad, n, 0.0, cd, n);
};

/// The default policy: shardnet::gemm, xsimd micro-kernels for the architecture the user's
/// translation unit is compiled for. Needs no BLAS.
struct xsimd_gemm {
    static constexpr std::string_view name = "xsimd";

    template <class T>
    static void gemm(transpose trans_a, transpose trans_b, std::size_t m, std::size_t n,
                     std::size_t k, T alpha, const T* a, std::size_t lda, const T* b,
                     std::size_t ldb, T beta, T* c, std::size_t ldc) {
        shardnet::gemm<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
};

static_assert(gemm_policy<xsimd_gemm>);

}  // namespace shardnet
