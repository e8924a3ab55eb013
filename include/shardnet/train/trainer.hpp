// The training scheduler: epochs of shuffled mini-batches over a process grid. Each
// data-parallel replica reads only its rows of every global batch; gradients are summed over
// replicas; losses are the same on every rank and for every grid of the same seed.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/train/cross_entropy.hpp"
#include "shardnet/train/dataset.hpp"
#include "shardnet/train/optimizer.hpp"
#include "shardnet/train/progress.hpp"
#include "shardnet/train/shuffle.hpp"

namespace shardnet {

struct trainer_options {
    std::size_t epochs = 10;
    std::size_t batch = 64;  ///< global batch, split over data-parallel replicas
    std::uint64_t seed = 0;  ///< keys the shuffle of every epoch
    double label_smoothing = 0.0;
    bool report = true;  ///< rank 0 prints progress
    std::ostream* out = &std::cout;
    std::string metrics_path;          ///< CSV of per-step metrics on rank 0; empty: none
    std::optional<bool> progress_bar;  ///< live bar (true), epoch lines (false), or guess
};

/// Loss and accuracy of a network on a data set, the same on every rank.
struct evaluation {
    double loss = 0;
    double accuracy = 0;
};

struct epoch_result {
    double train_loss = 0;  ///< mean over the epoch's steps
    double test_loss = 0, test_accuracy = 0;
    double samples_per_s = 0;
};

struct training_result {
    std::vector<double> step_losses;  ///< global mean loss of every step, in order
    std::vector<epoch_result> epochs;
};

/// Trains a classifier network (softmax cross-entropy on its output) with an optimizer.
/// @tparam Net a sequential<...>; @tparam Comm the communicator type of the grid.
template <class Net, communicator Comm>
class trainer {
  public:
    using value_type = typename Net::value_type;

    trainer(process_grid<Comm>& grid, Net& net, optimizer<value_type>& opt,
            trainer_options options = {})
        : grid_(grid),
          net_(net),
          opt_(opt),
          options_(std::move(options)),
          loss_(net.widths().back(), options_.label_smoothing) {}

    /// Runs options.epochs epochs over `train`, evaluating on `test` (if given) after each.
    /// Collective over the whole grid.
    /// @throws error (on every rank) for labels outside the network's output, a data width that
    ///         is not the network's input, or a loss that is not finite (naming the step).
    training_result fit(const dataset<value_type>& train,
                        const dataset<value_type>* test = nullptr) {
        check_data(train, "training set");
        if (test) check_data(*test, "test set");
        agree_on(grid_.world(), [&] {
            if (options_.batch == 0) throw error("trainer: batch size must be positive");
            if (train.size() == 0) throw error("trainer: the training set is empty");
        });
        const bool reporter = grid_.world().rank() == 0 && options_.report;
        // Per-step accuracy costs one more all-reduce; only the metrics file wants it. The
        // decision must be the same on every rank of a model-parallel group.
        const bool step_accuracy = !options_.metrics_path.empty();
        progress_reporter progress(reporter, *options_.out, options_.metrics_path,
                                   options_.progress_bar);
        progress.set_batch(options_.batch);

        training_result result;
        const std::size_t n = train.size();
        const std::size_t steps = (n + options_.batch - 1) / options_.batch;
        std::size_t step = 0;
        for (std::size_t epoch = 0; epoch < options_.epochs; ++epoch) {
            epoch_order(n, options_.seed, epoch, order_);
            const auto start = std::chrono::steady_clock::now();
            double epoch_loss = 0;
            for (std::size_t s = 0; s < steps; ++s, ++step) {
                const std::size_t begin = s * options_.batch;
                const std::size_t global_batch = std::min(options_.batch, n - begin);
                load_rows(train, std::span(order_).subspan(begin, global_batch));

                const auto& out = net_.forward(grid_.model(), batch_);
                const loss_value local = loss_.template forward_backward<Net::output_layout>(
                    grid_.model(), out, labels_, global_batch, grad_, step_accuracy);
                net_.backward(grid_.model(), grad_);
                net_.reduce_gradients(grid_.data());
                double totals[2] = {local.loss, static_cast<double>(local.correct)};
                grid_.data().all_reduce(totals, 2, reduce_op::sum);
                if (!std::isfinite(totals[0]))
                    throw error(detail::concat("trainer: the loss became ", totals[0], " at step ",
                                               step, " (epoch ", epoch + 1,
                                               "); lower the learning rate or check the data"));
                opt_.step(net_, grid_.model());
                result.step_losses.push_back(totals[0]);
                epoch_loss += totals[0];
                const double seconds = elapsed(start);
                progress.step(step, epoch, options_.epochs, s, steps, totals[0],
                              totals[1] / static_cast<double>(global_batch),
                              static_cast<double>(begin + global_batch) / seconds);
            }
            epoch_result e;
            e.samples_per_s = static_cast<double>(n) / elapsed(start);
            e.train_loss = epoch_loss / static_cast<double>(steps);
            if (test) {
                const evaluation ev = evaluate(*test);
                e.test_loss = ev.loss;
                e.test_accuracy = ev.accuracy;
            }
            progress.epoch(epoch, options_.epochs, e.train_loss, e.test_loss, e.test_accuracy,
                           e.samples_per_s, test != nullptr);
            result.epochs.push_back(e);
        }
        return result;
    }

    /// Mean loss and accuracy over `data`, in batches of options.batch. Collective over the
    /// whole grid.
    evaluation evaluate(const dataset<value_type>& data) {
        check_data(data, "evaluation set");
        double totals[2] = {0, 0};
        const std::size_t n = data.size();
        order_.resize(n);
        for (std::size_t i = 0; i < n; ++i)
            order_[i] = i;
        for (std::size_t begin = 0; begin < n; begin += options_.batch) {
            const std::size_t global_batch = std::min(options_.batch, n - begin);
            load_rows(data, std::span(order_).subspan(begin, global_batch));
            const auto& out = net_.forward(grid_.model(), batch_);
            const loss_value v =
                loss_.template evaluate<Net::output_layout>(grid_.model(), out, labels_, n);
            totals[0] += v.loss;
            totals[1] += static_cast<double>(v.correct);
        }
        grid_.data().all_reduce(totals, 2, reduce_op::sum);
        return {totals[0], n ? totals[1] / static_cast<double>(n) : 0.0};
    }

  private:
    void check_data(const dataset<value_type>& data, const char* what) {
        agree_on(grid_.world(), [&] {
            if (data.width() != net_.widths().front())
                throw error(detail::concat("trainer: the ", what, " has ", data.width(),
                                           " features, the network's input expects ",
                                           net_.widths().front()));
            validate_labels(data, net_.widths().back(), what);
        });
    }

    /// This replica's rows of a global batch: its balanced block of the batch.
    void load_rows(const dataset<value_type>& data, std::span<const std::size_t> global_rows) {
        const shard_range mine =
            balanced_shard(global_rows.size(), grid_.data_parallel(), grid_.data_rank());
        const std::size_t width = data.width();
        detail::ensure_shape(batch_, mine.size(), width);
        labels_.resize(mine.size());
        for (std::size_t i = 0; i < mine.size(); ++i) {
            const std::size_t row = global_rows[mine.to_global(i)];
            std::copy_n(data.features.data() + row * width, width, batch_.data() + i * width);
            labels_[i] = data.labels[row];
        }
    }

    static double elapsed(std::chrono::steady_clock::time_point start) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }

    process_grid<Comm>& grid_;
    Net& net_;
    optimizer<value_type>& opt_;
    trainer_options options_;
    softmax_cross_entropy<value_type> loss_;
    std::vector<std::size_t> order_;
    matrix<value_type> batch_, grad_;
    std::vector<std::uint32_t> labels_;
};

}  // namespace shardnet
