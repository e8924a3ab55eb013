// An optional GEMM policy on the CBLAS interface, for users who already link a BLAS (OpenBLAS,
// BLIS, MKL...). Never the default and not included by shardnet.hpp: including this header
// needs <cblas.h>, and the program must link a library that provides cblas_sgemm/cblas_dgemm,
// for instance with CMake `find_package(BLAS)` and `target_link_libraries(app BLAS::BLAS)`.
//
//   sn::dense<float, sn::column_split, sn::activation::relu, sn::cblas_gemm> layer(...);
#pragma once

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <string_view>
#include <type_traits>

#include "shardnet/core/error.hpp"
#include "shardnet/kernels/gemm.hpp"

namespace shardnet {

/// GEMM policy (see kernels/gemm_policy.hpp) calling cblas_sgemm / cblas_dgemm in row-major
/// order. The BLAS's own threading applies (e.g. OPENBLAS_NUM_THREADS): with one MPI rank per
/// core, set it to 1.
/// @throws error if a dimension or leading dimension exceeds the BLAS's int range.
struct cblas_gemm {
    static constexpr std::string_view name = "cblas";

    template <class T>
    static void gemm(transpose trans_a, transpose trans_b, std::size_t m, std::size_t n,
                     std::size_t k, T alpha, const T* a, std::size_t lda, const T* b,
                     std::size_t ldb, T beta, T* c, std::size_t ldc) {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                      "shardnet::cblas_gemm: BLAS has float (sgemm) and double (dgemm) only");
        if (m == 0 || n == 0) return;
        // BLAS wants lda >= max(1, rows of the stored A) even when the matrix is empty.
        const int im = blas_int(m, "m"), in = blas_int(n, "n"), ik = blas_int(k, "k");
        const int ilda = blas_int(std::max<std::size_t>(lda, 1), "lda");
        const int ildb = blas_int(std::max<std::size_t>(ldb, 1), "ldb");
        const int ildc = blas_int(ldc, "ldc");
        const auto ta = trans_a == transpose::yes ? CblasTrans : CblasNoTrans;
        const auto tb = trans_b == transpose::yes ? CblasTrans : CblasNoTrans;
        if constexpr (std::is_same_v<T, float>)
            cblas_sgemm(CblasRowMajor, ta, tb, im, in, ik, alpha, a, ilda, b, ildb, beta, c, ildc);
        else
            cblas_dgemm(CblasRowMajor, ta, tb, im, in, ik, alpha, a, ilda, b, ildb, beta, c, ildc);
    }

  private:
    static int blas_int(std::size_t v, const char* what) {
        if (v > static_cast<std::size_t>(INT_MAX))
            throw error(detail::concat("cblas_gemm: ", what, " = ", v,
                                       " exceeds the BLAS integer range (at most ", INT_MAX, ")"));
        return static_cast<int>(v);
    }
};

}  // namespace shardnet
