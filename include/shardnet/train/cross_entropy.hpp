// Softmax cross-entropy on replicated or column-sharded logits. Sharded logits are never
// gathered: per row, the global max, the sum of exponentials, the target logit and the sum of
// logits (for label smoothing) are all-reduced. The two sums are added exactly, on a fixed-point
// grid (kernels/reproducible_sum.hpp), so the loss and its gradient are the same bits however
// the classes are split, and on one rank.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/reproducible_sum.hpp"

namespace shardnet {

/// What a loss computed for this rank's rows of a batch.
struct loss_value {
    double loss = 0;          ///< sum over this replica's rows of loss_i / global_batch
    std::size_t correct = 0;  ///< rows whose argmax equals the label (if accuracy was asked)
};

/// Mean softmax cross-entropy over a global batch, with optional label smoothing:
/// loss_i = logsumexp(z_i) - (1 - eps) z_i[y_i] - (eps / C) sum_j z_i[j].
template <class T>
class softmax_cross_entropy {
  public:
    /// @param classes the global number of classes C (the network's output width).
    /// @param label_smoothing eps in [0, 1).
    explicit softmax_cross_entropy(std::size_t classes, double label_smoothing = 0.0)
        : classes_(classes), smoothing_(label_smoothing) {
        if (classes == 0) throw error("softmax_cross_entropy: needs at least one class");
        if (!(label_smoothing >= 0.0 && label_smoothing < 1.0))
            throw error(
                detail::concat("softmax_cross_entropy: label smoothing must be in [0, 1), "
                               "got ",
                               label_smoothing));
    }

    /// Loss of `logits` (this rank's rows; in layout L over the model-parallel `group`) for
    /// `labels` (global class indices, one per row), and its gradient w.r.t. the logits in
    /// `grad` (same shape), both scaled by 1 / global_batch so that summing over data-parallel
    /// replicas gives the mean. Collective over `group` when L is sharded: two all-reduces
    /// (2 x batch maxima; 3 x batch integer sums), plus one (batch minima) when `with_accuracy`.
    /// @pre labels.size() == logits.shape(0), every label < classes (checked by the loaders).
    template <layout L, communicator Comm>
    loss_value forward_backward(Comm& group, const matrix<T>& logits,
                                std::span<const std::uint32_t> labels, std::size_t global_batch,
                                matrix<T>& grad, bool with_accuracy = false) {
        const shard_range block = class_block<L>(group);
        const std::size_t batch = logits.shape(0);
        SHARDNET_ASSERT(logits.shape(1) == block.size() && labels.size() == batch);
        row_statistics<L>(group, logits, labels, block);

        loss_value result;
        const double inv_batch = 1.0 / static_cast<double>(global_batch);
        const double off_target = smoothing_ / static_cast<double>(classes_);
        detail::ensure_shape(grad, batch, block.size());
        for (std::size_t i = 0; i < batch; ++i) {
            const double max = row_max_[i], sum = stats_[3 * i];
            const double target = stats_[3 * i + 1], total = stats_[3 * i + 2];
            const double lse = max + std::log(sum);
            result.loss += (lse - (1.0 - smoothing_) * target - off_target * total) * inv_batch;
            for (std::size_t j = 0; j < block.size(); ++j) {
                const double p = std::exp(static_cast<double>(logits(i, j)) - lse);
                const double y = block.to_global(j) == labels[i] ? 1.0 - smoothing_ : 0.0;
                grad(i, j) = static_cast<T>((p - y - off_target) * inv_batch);
            }
        }
        if (with_accuracy) result.correct = count_correct<L>(group, logits, labels, block);
        return result;
    }

    /// Loss only (evaluation), with the number of correct rows. Collective like
    /// forward_backward with accuracy.
    template <layout L, communicator Comm>
    loss_value evaluate(Comm& group, const matrix<T>& logits, std::span<const std::uint32_t> labels,
                        std::size_t global_batch) {
        const shard_range block = class_block<L>(group);
        row_statistics<L>(group, logits, labels, block);
        loss_value result;
        const double off_target = smoothing_ / static_cast<double>(classes_);
        for (std::size_t i = 0; i < logits.shape(0); ++i) {
            const double lse = row_max_[i] + std::log(stats_[3 * i]);
            result.loss +=
                (lse - (1.0 - smoothing_) * stats_[3 * i + 1] - off_target * stats_[3 * i + 2]) /
                static_cast<double>(global_batch);
        }
        result.correct = count_correct<L>(group, logits, labels, block);
        return result;
    }

    std::size_t classes() const { return classes_; }

    /// The predicted class of each row of the last evaluate() (or forward_backward() with
    /// accuracy): the argmax of its logits, ties to the lowest index, the same on every rank of
    /// the group. Valid until the next call.
    const std::vector<std::int64_t>& predictions() const { return argmax_; }

  private:
    template <layout L, communicator Comm>
    shard_range class_block(Comm& group) const {
        static_assert(L != layout::partial,
                      "softmax_cross_entropy: logits must be reduced (replicated or sharded)");
        if constexpr (L == layout::sharded)
            return balanced_shard(classes_, group.size(), group.rank());
        else
            return {0, classes_};
    }

    // Per row: the largest logit (row_max_[i]) and the largest negated one (row_max_[batch + i]),
    // then the sum of exponentials, the target logit and the sum of logits (stats_). Each sum is
    // taken on a fixed-point grid every rank derives from the agreed maxima (terms at most 1, and
    // at most the largest |z|, C of each), in int64, which any split adds up alike; the target
    // logit, held by one rank, travels as its bit pattern (the others add 0). A row with an inf
    // or NaN logit gets NaN statistics on every rank.
    template <layout L, communicator Comm>
    void row_statistics(Comm& group, const matrix<T>& logits, std::span<const std::uint32_t> labels,
                        shard_range block) {
        const std::size_t batch = logits.shape(0);
        row_max_.assign(2 * batch, -std::numeric_limits<double>::infinity());
        for (std::size_t i = 0; i < batch; ++i)
            for (std::size_t j = 0; j < block.size(); ++j) {
                const double z = static_cast<double>(logits(i, j));
                row_max_[i] = std::max(row_max_[i], z);
                // A NaN marks its row as +inf would (MPI's max may drop a NaN).
                row_max_[batch + i] = std::isnan(z) ? std::numeric_limits<double>::infinity()
                                                    : std::max(row_max_[batch + i], -z);
            }
        if constexpr (L == layout::sharded)
            group.all_reduce(row_max_.data(), 2 * batch, reduce_op::max);

        const fixed_point_grid exponentials(1.0, classes_);
        sums_.assign(3 * batch, 0);
        for (std::size_t i = 0; i < batch; ++i) {
            const double largest = std::max(row_max_[i], row_max_[batch + i]);  // max |z|
            if (!std::isfinite(largest)) continue;
            const fixed_point_grid logits_grid(largest, classes_);
            std::int64_t sum = 0, total = 0;
            for (std::size_t j = 0; j < block.size(); ++j) {
                const double z = static_cast<double>(logits(i, j));
                sum += exponentials.to_grid(std::exp(z - row_max_[i]));
                total += logits_grid.to_grid(z);
            }
            sums_[3 * i] = sum;
            sums_[3 * i + 1] = block.contains(labels[i])
                                   ? std::bit_cast<std::int64_t>(
                                         static_cast<double>(logits(i, block.to_local(labels[i]))))
                                   : 0;
            sums_[3 * i + 2] = total;
        }
        if constexpr (L == layout::sharded)
            group.all_reduce(sums_.data(), 3 * batch, reduce_op::sum);

        stats_.assign(3 * batch, std::numeric_limits<double>::quiet_NaN());
        for (std::size_t i = 0; i < batch; ++i) {
            const double largest = std::max(row_max_[i], row_max_[batch + i]);
            if (!std::isfinite(largest)) continue;
            stats_[3 * i] = exponentials.from_grid(sums_[3 * i]);
            stats_[3 * i + 1] = std::bit_cast<double>(sums_[3 * i + 1]);
            stats_[3 * i + 2] = fixed_point_grid(largest, classes_).from_grid(sums_[3 * i + 2]);
        }
    }

    /// Argmax with ties to the lowest class index, as on one rank: each rank proposes the
    /// lowest global index in its block that attains the global row maximum.
    template <layout L, communicator Comm>
    std::size_t count_correct(Comm& group, const matrix<T>& logits,
                              std::span<const std::uint32_t> labels, shard_range block) {
        const std::size_t batch = logits.shape(0);
        argmax_.assign(batch, static_cast<std::int64_t>(classes_));
        for (std::size_t i = 0; i < batch; ++i)
            for (std::size_t j = 0; j < block.size(); ++j)
                if (static_cast<double>(logits(i, j)) == row_max_[i]) {
                    argmax_[i] = static_cast<std::int64_t>(block.to_global(j));
                    break;
                }
        if constexpr (L == layout::sharded) group.all_reduce(argmax_.data(), batch, reduce_op::min);
        std::size_t correct = 0;
        for (std::size_t i = 0; i < batch; ++i)
            correct += argmax_[i] == static_cast<std::int64_t>(labels[i]);
        return correct;
    }

    std::size_t classes_;
    double smoothing_;
    // Per-row workspaces, reused from step to step.
    std::vector<double> row_max_, stats_;
    std::vector<std::int64_t> sums_, argmax_;
};

}  // namespace shardnet
