// Feature standardization with statistics from the training set only, applied unchanged to
// the test set (fitting on test data would leak it into the model).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "shardnet/core/error.hpp"
#include "shardnet/core/tensor.hpp"

namespace shardnet {

/// Maps each feature x_j to (x_j - mean_j) * inv_std_j.
///
/// Represents per-feature statistics of a training matrix. A feature whose spread is within
/// rounding of its magnitude (a constant column, e.g. MNIST's border pixels) gets
/// inv_std = 1: it becomes 0 on the training set and stays finite elsewhere, instead of the
/// inf or noise amplification a division by ~0 would give.
/// @tparam T the feature type.
template <class T>
struct standardizer {
    vector<T> mean = vector<T>::from_shape({0});     ///< per feature
    vector<T> inv_std = vector<T>::from_shape({0});  ///< per feature, 1 for constant ones

    /// Number of features the statistics were fitted on.
    std::size_t width() const { return mean.shape(0); }

    /// Per-feature mean and population standard deviation of `features` (samples x width),
    /// accumulated in double (two passes) so that float data of many samples keeps its digits.
    /// @param what names the data in messages, e.g. "training set 'train.csv'"; empty: none.
    /// @throws shardnet::error if features has no rows, or holds a NaN or infinity.
    /// @post mean.size() == inv_std.size() == features.shape(1); every inv_std is finite > 0.
    static standardizer fit(const matrix<T>& features, std::string_view what = {}) {
        const std::size_t rows = features.shape(0);
        const std::size_t width = features.shape(1);
        if (rows == 0)
            throw error(detail::concat(message_prefix("fit", what),
                                       ": expected at least one sample, got 0 rows"));
        const T* data = features.data();

        // Compensated (Neumaier) sums: a plain double sum of double data drifts by ~n ulps,
        // enough to make a constant column look like a tiny real spread.
        std::vector<double> sum(width, 0.0), compensation(width, 0.0), max_abs(width, 0.0);
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < width; ++j) {
                const double x = static_cast<double>(data[i * width + j]);
                if (!std::isfinite(x))
                    throw error(detail::concat(message_prefix("fit", what), ": row ", i,
                                               ", feature ", j, ": expected a finite value, got ",
                                               x));
                const double total = sum[j] + x;
                compensation[j] +=
                    std::abs(sum[j]) >= std::abs(x) ? (sum[j] - total) + x : (x - total) + sum[j];
                sum[j] = total;
                max_abs[j] = std::max(max_abs[j], std::abs(x));
            }
        const double n = static_cast<double>(rows);
        for (std::size_t j = 0; j < width; ++j)
            sum[j] = (sum[j] + compensation[j]) / n;  // mean

        std::vector<double> squares(width, 0.0);
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < width; ++j) {
                const double d = static_cast<double>(data[i * width + j]) - sum[j];
                squares[j] += d * d;
            }

        standardizer result;
        result.mean.resize({width});
        result.inv_std.resize({width});
        // A spread of a few ulps of T is rounding in the mean, not signal.
        constexpr double rounding = 8.0 * std::numeric_limits<T>::epsilon();
        for (std::size_t j = 0; j < width; ++j) {
            const double std_dev = std::sqrt(squares[j] / n);
            const bool constant = !(std_dev > rounding * max_abs[j]);
            result.mean(j) = static_cast<T>(sum[j]);
            result.inv_std(j) = constant ? T(1) : static_cast<T>(1.0 / std_dev);
            // A tiny but real spread can overflow 1/std in float; treat it as constant too.
            if (!std::isfinite(result.inv_std(j))) result.inv_std(j) = T(1);
        }
        return result;
    }

    /// Standardizes `features` in place with the fitted statistics.
    /// @param what names the data in messages, e.g. "test set 'test.csv'": statistics fitted
    ///        on one file and applied to another are a mismatch between files, and the user
    ///        needs to know which one. Empty: the message names only the function.
    /// @throws shardnet::error if features' width differs from the fitted width:
    ///         "standardizer: <what>: expected <fitted> features (the width the standardizer
    ///         was fitted on), got <width>".
    void apply(matrix<T>& features, std::string_view what = {}) const {
        const std::size_t width = features.shape(1);
        if (width != this->width())
            throw error(detail::concat(message_prefix("apply", what), ": expected ", this->width(),
                                       " features (the width the standardizer was fitted on), "
                                       "got ",
                                       width));
        T* data = features.data();
        const T* m = mean.data();
        const T* s = inv_std.data();
        for (std::size_t i = 0; i < features.shape(0); ++i)
            for (std::size_t j = 0; j < width; ++j)
                data[i * width + j] = (data[i * width + j] - m[j]) * s[j];
    }

  private:
    /// "standardizer: <what>" when the caller named the data, else the function's name.
    static std::string message_prefix(std::string_view function, std::string_view what) {
        return what.empty() ? detail::concat("standardizer::", function)
                            : detail::concat("standardizer: ", what);
    }
};

}  // namespace shardnet
