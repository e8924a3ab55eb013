// Mean squared error over every element of a global batch, on replicated or sharded outputs.
#pragma once

#include <cstddef>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/train/cross_entropy.hpp"

namespace shardnet {

/// loss = sum over the global batch and all features of (y - t)^2 / (global_batch * features),
/// as PyTorch's MSELoss with reduction "mean".
template <class T>
class mean_squared_error {
  public:
    explicit mean_squared_error(std::size_t features) : features_(features) {}

    /// `output` is this rank's rows in layout L; `target` holds the same rows with all
    /// features (a sharded output reads its block of columns). Gradient into `grad`. Collective
    /// over `group` when L is sharded: one all-reduce of one element.
    template <layout L, communicator Comm>
    loss_value forward_backward(Comm& group, const matrix<T>& output, const matrix<T>& target,
                                std::size_t global_batch, matrix<T>& grad) {
        static_assert(L != layout::partial, "mean_squared_error: output must be reduced");
        const shard_range block = L == layout::sharded
                                      ? balanced_shard(features_, group.size(), group.rank())
                                      : shard_range{0, features_};
        SHARDNET_ASSERT(output.shape(1) == block.size() && target.shape(1) == features_);
        const double scale =
            1.0 / (static_cast<double>(global_batch) * static_cast<double>(features_));
        detail::ensure_shape(grad, output.shape(0), block.size());
        double sum = 0;
        for (std::size_t i = 0; i < output.shape(0); ++i)
            for (std::size_t j = 0; j < block.size(); ++j) {
                const double d = static_cast<double>(output(i, j)) -
                                 static_cast<double>(target(i, block.to_global(j)));
                sum += d * d;
                grad(i, j) = static_cast<T>(2.0 * d * scale);
            }
        if constexpr (L == layout::sharded) group.all_reduce(&sum, 1, reduce_op::sum);
        return {sum * scale, 0};
    }

  private:
    std::size_t features_;
};

}  // namespace shardnet
