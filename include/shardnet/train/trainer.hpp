// The training scheduler: epochs of shuffled mini-batches over a process grid. Each
// data-parallel replica reads only its rows of every global batch; gradients are summed over
// replicas; losses are the same on every rank and for every grid of the same seed.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
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
#include "shardnet/io/checkpoint.hpp"
#include "shardnet/train/cross_entropy.hpp"
#include "shardnet/train/dataset.hpp"
#include "shardnet/train/optimizer.hpp"
#include "shardnet/train/progress.hpp"
#include "shardnet/train/shuffle.hpp"

namespace shardnet {

/// What the trainer does when a step's loss or gradient is NaN or infinite.
enum class non_finite_policy {
    stop,       ///< throw shardnet::error naming the step (on every rank)
    skip_step,  ///< leave the weights and optimizer state as they were and go on
};

struct trainer_options {
    std::size_t epochs = 10;
    std::size_t batch = 64;  ///< global batch, split over data-parallel replicas
    std::uint64_t seed = 0;  ///< keys the shuffle of every epoch
    double label_smoothing = 0.0;
    bool report = true;  ///< rank 0 prints progress
    std::ostream* out = &std::cout;
    std::string metrics_path;          ///< CSV of per-step metrics on rank 0; empty: none
    std::optional<bool> progress_bar;  ///< live bar (true), epoch lines (false), or guess

    // Checkpoints (io/checkpoint.hpp) and fault tolerance.
    std::string checkpoint_dir;        ///< where checkpoints go; empty: none
    std::size_t checkpoint_every = 0;  ///< save after every N steps and after the last; 0: never
    std::size_t checkpoint_keep = 3;   ///< keep the newest K checkpoints; 0: all
    /// Continue from the newest complete checkpoint in checkpoint_dir (start fresh if there is
    /// none): the run then ends bitwise as if it had never been interrupted.
    bool resume = false;
    non_finite_policy non_finite = non_finite_policy::stop;
    /// Also check every gradient for NaN/Inf each step (one pass over the local gradients and
    /// an all-reduce of one value over the model-parallel group); the loss is always checked.
    bool check_gradients = true;
    /// With data-parallel replicas: start each layer's gradient all-reduce as soon as backward
    /// has produced it, overlapping the backward of the layers below
    /// (sequential::backward(model, dy, data)), instead of reducing after backward. Off by
    /// default because it was measured slower on shared memory with OpenMPI's defaults, whose
    /// non-blocking all-reduce is binomial (twice the data movement) for in-place buffers and
    /// below 4 ranks;
    /// see docs/benchmarks.md and docs/multi-node.md before turning it on.
    bool overlap_gradient_reduction = false;
    /// Called on every rank after each step (after its checkpoint) with the steps done so far.
    std::function<void(std::size_t)> after_step;
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
    std::size_t skipped_steps = 0;  ///< steps skipped for a non-finite loss or gradient
    std::size_t resumed_at = 0;     ///< steps restored from a checkpoint (0: fresh start)
};

namespace detail {

template <class T>
bool gradients_finite(const std::vector<parameter_ref<T>>& params) {
    for (const auto& p : params)
        for (std::size_t i = 0; i < p.size; ++i)
            if (!std::isfinite(p.grad[i])) return false;
    return true;
}

}  // namespace detail

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
    /// With options.resume, first restores the newest checkpoint in options.checkpoint_dir;
    /// with options.checkpoint_every, saves one every that many steps and after the last.
    /// Collective over the whole grid.
    /// @throws error (on every rank) for labels outside the network's output, a data width that
    ///         is not the network's input, ranks started with different training options, a
    ///         checkpoint that does not fit the run, or (with non_finite_policy::stop) a loss or
    ///         gradient that is not finite (naming the step).
    training_result fit(const dataset<value_type>& train,
                        const dataset<value_type>* test = nullptr) {
        check_data(train, "training set");
        if (test) check_data(*test, "test set");
        check_same_options();
        agree_on(grid_.world(), [&] {
            if (options_.batch == 0) throw error("trainer: batch size must be positive");
            if (train.size() == 0) throw error("trainer: the training set is empty");
            if ((options_.checkpoint_every > 0 || options_.resume) &&
                options_.checkpoint_dir.empty())
                throw error("trainer: checkpoint_every and resume need a checkpoint_dir");
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
        training_position at;  // where training stands; what a checkpoint records
        at.seed = options_.seed;
        at.batch = options_.batch;
        at.samples = n;
        if (options_.resume) {
            if (resume(at, result) && reporter)
                *options_.out << "resumed at step " << at.step << " (epoch " << at.epoch + 1
                              << ", step " << at.step_in_epoch << " of " << steps << ")\n";
            step = static_cast<std::size_t>(at.step);
        }
        const std::size_t total_steps = options_.epochs * steps;
        // The first epoch may be one a checkpoint left half done.
        const auto start_epoch = static_cast<std::size_t>(at.epoch);
        const auto start_step = static_cast<std::size_t>(at.step_in_epoch);
        const double start_loss = at.epoch_loss_sum;
        const auto start_skipped = static_cast<std::size_t>(at.epoch_skipped);
        for (std::size_t epoch = start_epoch; epoch < options_.epochs; ++epoch) {
            epoch_order(n, options_.seed, epoch, order_);
            const auto start = std::chrono::steady_clock::now();
            const bool resumed_epoch = epoch == start_epoch;
            double epoch_loss = resumed_epoch ? start_loss : 0.0;
            std::size_t epoch_skipped = resumed_epoch ? start_skipped : 0;
            const std::size_t first = resumed_epoch ? start_step : 0;
            const std::size_t skipped_rows = std::min(n, first * options_.batch);
            for (std::size_t s = first; s < steps; ++s, ++step) {
                const std::size_t begin = s * options_.batch;
                const std::size_t global_batch = std::min(options_.batch, n - begin);
                load_rows(train, std::span(order_).subspan(begin, global_batch));

                const auto& out = net_.forward(grid_.model(), batch_);
                const loss_value local = loss_.template forward_backward<Net::output_layout>(
                    grid_.model(), out, labels_, global_batch, grad_, step_accuracy);
                if (options_.overlap_gradient_reduction) {
                    net_.backward(grid_.model(), grad_, grid_.data());  // reduces as it goes
                } else {
                    net_.backward(grid_.model(), grad_);
                    net_.reduce_gradients(grid_.model(), grid_.data());
                }
                double totals[2] = {local.loss, static_cast<double>(local.correct)};
                grid_.data().all_reduce(totals, 2, reduce_op::sum);
                result.step_losses.push_back(totals[0]);
                if (finite_step(totals[0], step, epoch)) {
                    opt_.step(net_, grid_.model());
                    epoch_loss += totals[0];
                } else {
                    net_.mark_updated();  // the gradients are dropped with the step
                    ++result.skipped_steps;
                    ++epoch_skipped;
                    if (reporter)
                        *options_.out << "skipped step " << step << " (epoch " << epoch + 1
                                      << "): non-finite loss or gradient\n";
                }
                const double seconds = elapsed(start);
                progress.step(step, epoch, options_.epochs, s, steps, totals[0],
                              totals[1] / static_cast<double>(global_batch),
                              static_cast<double>(begin + global_batch - skipped_rows) / seconds);
                if (options_.checkpoint_every > 0 &&
                    ((step + 1) % options_.checkpoint_every == 0 || step + 1 == total_steps)) {
                    at.step = step + 1;
                    at.epoch = epoch;
                    at.step_in_epoch = s + 1;
                    at.epoch_loss_sum = epoch_loss;
                    at.epoch_skipped = epoch_skipped;
                    at.step_losses = result.step_losses;
                    checkpoint_options c;
                    c.keep = options_.checkpoint_keep;
                    save_checkpoint(grid_, options_.checkpoint_dir, at.step, net_, opt_, &at, c);
                }
                if (options_.after_step) options_.after_step(step + 1);
            }
            epoch_result e;
            e.samples_per_s = static_cast<double>(n - skipped_rows) / elapsed(start);
            e.train_loss =
                epoch_loss / static_cast<double>(steps > epoch_skipped ? steps - epoch_skipped : 1);
            if (test) {
                const evaluation ev = evaluate(*test);
                e.test_loss = ev.loss;
                e.test_accuracy = ev.accuracy;
            }
            progress.epoch(epoch, options_.epochs, e.train_loss, e.test_loss, e.test_accuracy,
                           e.samples_per_s, test != nullptr);
            result.epochs.push_back(e);
            for (double v : {e.train_loss, e.test_loss, e.test_accuracy, e.samples_per_s})
                at.epochs.push_back(v);
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
    /// Ranks that disagree on the training options would run different collective schedules
    /// (or checkpoint at different steps) and deadlock far from the cause: compare first.
    void check_same_options() {
        std::uint64_t smoothing_bits = 0;
        std::memcpy(&smoothing_bits, &options_.label_smoothing, sizeof(smoothing_bits));
        std::size_t h = 0;
        for (std::uint64_t v :
             {std::uint64_t{options_.epochs}, std::uint64_t{options_.batch}, options_.seed,
              smoothing_bits, std::uint64_t{options_.checkpoint_every},
              std::uint64_t{options_.resume}, std::uint64_t{options_.check_gradients},
              std::uint64_t{options_.overlap_gradient_reduction},
              static_cast<std::uint64_t>(options_.non_finite),
              std::uint64_t{options_.metrics_path.empty()}})
            detail::hash_mix(h, static_cast<std::size_t>(v));
        detail::hash_mix(h, std::hash<std::string>{}(options_.checkpoint_dir));
        if (!same_on_all_ranks(grid_.world(), h))
            throw error(
                "trainer: ranks were started with different training options (epochs, batch, "
                "seed, label smoothing, checkpoint, non-finite or overlap settings)");
    }

    /// Restores the newest checkpoint of options.checkpoint_dir, if there is one; rank 0 picks
    /// it so that every rank loads the same one. Collective over the world.
    bool resume(training_position& at, training_result& result) {
        std::int64_t newest = -1;
        if (grid_.world().rank() == 0) {
            const auto steps = list_checkpoints(options_.checkpoint_dir);
            if (!steps.empty()) newest = static_cast<std::int64_t>(steps.back());
        }
        grid_.world().broadcast(&newest, 1, 0);
        if (newest < 0) return false;
        const std::filesystem::path path = std::filesystem::path(options_.checkpoint_dir) /
                                           checkpoint_name(static_cast<std::uint64_t>(newest));
        const checkpoint_manifest m = load_checkpoint(grid_, path, net_, opt_);
        // The manifest is the same file on every rank, so this check agrees by construction.
        const training_position& p = m.position;
        if (!m.has_position || p.seed != at.seed || p.batch != at.batch ||
            p.samples != at.samples || p.epochs.size() % 4 != 0 || p.step_losses.size() != p.step ||
            p.epoch > options_.epochs)
            throw error(detail::concat(
                "trainer: checkpoint '", path.string(), "' was written by another run (seed ",
                p.seed, ", batch ", p.batch, ", ", p.samples, " samples; this run has seed ",
                at.seed, ", batch ", at.batch, ", ", at.samples, " samples)"));
        at = p;
        result.step_losses = p.step_losses;
        for (std::size_t i = 0; i + 3 < p.epochs.size(); i += 4)
            result.epochs.push_back(
                {p.epochs[i], p.epochs[i + 1], p.epochs[i + 2], p.epochs[i + 3]});
        result.resumed_at = static_cast<std::size_t>(p.step);
        return true;
    }

    /// True if the step may be applied. Every rank reaches the same answer: the loss is the
    /// same everywhere and the gradient flag is agreed over the model-parallel group (replicas
    /// hold identical reduced gradients).
    bool finite_step(double loss, std::size_t step, std::size_t epoch) {
        std::int64_t bad_gradient = 0;
        if (options_.check_gradients) {
            bad_gradient = detail::gradients_finite(net_.parameters()) ? 0 : 1;
            grid_.model().all_reduce(&bad_gradient, 1, reduce_op::max);
        }
        if (std::isfinite(loss) && bad_gradient == 0) return true;
        if (options_.non_finite == non_finite_policy::skip_step) return false;
        if (!std::isfinite(loss))
            throw error(detail::concat("trainer: the loss became ", loss, " at step ", step,
                                       " (epoch ", epoch + 1,
                                       "); lower the learning rate or check the data"));
        throw error(detail::concat("trainer: a gradient became non-finite (NaN or Inf) at step ",
                                   step, " (epoch ", epoch + 1, ", loss ", loss,
                                   "); lower the learning rate, clip gradients or check the data"));
    }

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
