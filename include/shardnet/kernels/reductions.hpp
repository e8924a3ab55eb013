// Reductions over the batch dimension (bias gradients) and the bias broadcast.
#pragma once

#include <algorithm>
#include <cstddef>

namespace shardnet::detail {

/// out[j] = sum over rows i of a[i * lda + j], for j < cols. Row by row, so the inner loop is
/// contiguous and vectorizes.
template <class T>
void column_sums(const T* a, std::size_t rows, std::size_t cols, std::size_t lda, T* out) {
    std::fill_n(out, cols, T(0));
    for (std::size_t i = 0; i < rows; ++i) {
        const T* row = a + i * lda;
        for (std::size_t j = 0; j < cols; ++j)
            out[j] += row[j];
    }
}

/// a[i * lda + j] += bias[j] for every row i.
template <class T>
void add_row_vector(T* a, std::size_t rows, std::size_t cols, std::size_t lda, const T* bias) {
    for (std::size_t i = 0; i < rows; ++i) {
        T* row = a + i * lda;
        for (std::size_t j = 0; j < cols; ++j)
            row[j] += bias[j];
    }
}

}  // namespace shardnet::detail
