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
#include <sstream>
#include <string>
#include <vector>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/settings.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/io/checkpoint.hpp"
#include "shardnet/net/network_core.hpp"
#include "shardnet/net/visit_layers.hpp"
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
    /// Also check every gradient for NaN/Inf each step (inside the optimizer's update pass under
    /// non_finite_policy::stop, one more read of the local gradients under skip_step; and an
    /// all-reduce of one value over the model-parallel group); the loss is always checked.
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
    /// What else determines the run (the application's own settings: its command line, where
    /// the data came from). Recorded in every checkpoint with the trainer's identity of the run
    /// (these options, the optimizer's, the network's widths and activations, a checksum of
    /// the data); a resume refuses a checkpoint whose identity differs and names what differs.
    settings run_settings;
    /// A fresh run (resume off) into a checkpoint_dir that already holds checkpoints: remove
    /// them first (true) or refuse with an error naming them (false).
    bool overwrite = false;
};

namespace detail {

/// Every field of trainer_options in declaration order, and its part in the checks: the
/// identity of a run, or only agreement across ranks. A field added to trainer_options
/// without an entry here fails to compile (describe_fields counts them).
inline constexpr setting_field trainer_option_fields[] = {
    {"epochs", setting_role::same_on_ranks},  // a resume may extend a run
    {"batch", setting_role::identifies_run},
    {"seed", setting_role::identifies_run},
    {"label_smoothing", setting_role::identifies_run},
    {"report", setting_role::per_rank},
    {"out", setting_role::per_rank},
    {"metrics_path", setting_role::same_on_ranks},  // per-step accuracy costs a collective
    {"progress_bar", setting_role::per_rank},
    {"checkpoint_dir", setting_role::same_on_ranks},
    {"checkpoint_every", setting_role::same_on_ranks},
    {"checkpoint_keep", setting_role::same_on_ranks},
    {"resume", setting_role::same_on_ranks},
    {"non_finite", setting_role::identifies_run},
    {"check_gradients", setting_role::identifies_run},
    {"overlap_gradient_reduction", setting_role::same_on_ranks},
    {"after_step", setting_role::per_rank},
    {"run_settings", setting_role::identifies_run},
    {"overwrite", setting_role::same_on_ranks},
};

/// Every field of optimizer_options: all of them shape the updates.
inline constexpr setting_field optimizer_option_fields[] = {
    {"method", setting_role::identifies_run},    {"lr", setting_role::identifies_run},
    {"momentum", setting_role::identifies_run},  {"nesterov", setting_role::identifies_run},
    {"beta1", setting_role::identifies_run},     {"beta2", setting_role::identifies_run},
    {"eps", setting_role::identifies_run},       {"weight_decay", setting_role::identifies_run},
    {"clip_norm", setting_role::identifies_run}, {"schedule", setting_role::identifies_run},
};

}  // namespace detail

/// "600 x 64, crc32 1a2b3c4d": a data set's shape and a CRC-32 of its features and labels, as
/// the trainer records them (data.train, data.test) in the run identity of every checkpoint.
/// Public so that a program using a checkpoint can check that it holds the data the run saw,
/// e.g. the standardized training set whose statistics it must recompute (examples/classify).
template <class T>
std::string data_fingerprint(const dataset<T>& data) {
    crc32 crc;
    crc.update(data.features.data(), data.features.size() * sizeof(T));
    crc.update(data.labels.data(), data.labels.size() * sizeof(data.labels[0]));
    std::ostringstream out;
    out << data.size() << " x " << data.width() << ", crc32 " << std::hex << crc.value();
    return out.str();
}

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

/// Trains a classifier network (softmax cross-entropy on its output) with an optimizer.
/// @tparam Net a sequential<...>; @tparam Comm the communicator type of the grid.
template <class Net, communicator Comm>
class trainer {
  public:
    using value_type = typename Net::value_type;

    /// Collective over the grid's world: an invalid label smoothing fails on every rank.
    trainer(process_grid<Comm>& grid, Net& net, optimizer<value_type>& opt,
            trainer_options options = {})
        : grid_(grid),
          net_(net),
          opt_(opt),
          options_(std::move(options)),
          loss_(agree_on(grid.world(), [&] {
              return softmax_cross_entropy<value_type>(net.widths().back(),
                                                       options_.label_smoothing);
          })) {}

    /// Runs options.epochs epochs over `train`, evaluating on `test` (if given) after each.
    /// With a checkpoint_dir, holds that directory's lock for the run; with options.resume,
    /// first restores the newest intact checkpoint of this run (falling back past damaged
    /// ones, naming them); with options.checkpoint_every, saves one every that many steps and
    /// after the last. Collective over the whole grid.
    /// @throws agreed_error (on every rank) for labels outside the network's output, a data
    ///         width that is not the network's input, ranks started with different settings or
    ///         data (naming the setting), a checkpoint directory in use by another run or
    ///         holding another run's checkpoints, a checkpoint that does not fit the run,
    ///         an output that cannot be written, or (with non_finite_policy::stop) a loss or
    ///         gradient that is not finite (naming the step).
    training_result fit(const dataset<value_type>& train,
                        const dataset<value_type>* test = nullptr) {
        check_run(train, test);
        steps_per_epoch_ = (train.size() + options_.batch - 1) / options_.batch;
        training_result result;
        result.step_losses.reserve(options_.epochs * steps_per_epoch_);  // no growth per step
        training_position at;  // where training stands; what a checkpoint records
        at.seed = options_.seed;
        at.batch = options_.batch;
        at.samples = train.size();
        at.run_settings = identity_.text();
        open_checkpoints(at, result);
        const bool reporter = grid_.world().rank() == 0 && options_.report;
        // Rank 0 opens the metrics file (which fails or not there alone): agreed.
        std::optional<progress_reporter> progress;
        agree_on(grid_.world(), [&] {
            // A resumed run appends to the metrics of the steps before it.
            progress.emplace(reporter, *options_.out, options_.metrics_path, options_.progress_bar,
                             result.resumed_at > 0);
        });
        progress->set_batch(options_.batch);
        for (auto epoch = static_cast<std::size_t>(at.epoch); epoch < options_.epochs; ++epoch)
            run_epoch(epoch, train, test, at, result, *progress);
        lock_.reset();
        return result;
    }

    /// Mean loss and accuracy over `data`, in batches of options.batch. Collective over the
    /// whole grid.
    evaluation evaluate(const dataset<value_type>& data) {
        double totals[2] = {0, 0};
        for_each_evaluated_batch(data, [&](const loss_value& v) {
            totals[0] += v.loss;
            totals[1] += static_cast<double>(v.correct);
        });
        grid_.data().all_reduce(totals, 2, reduce_op::sum);
        const std::size_t n = data.size();
        return {totals[0], n ? totals[1] / static_cast<double>(n) : 0.0};
    }

    /// The confusion matrix of the network on `data`: entry [t * classes + p] counts the
    /// samples of true class t that the network predicts as p (argmax, ties to the lowest
    /// class). The same on every rank. Holds classes² counts: meant for classifiers of up to
    /// a few thousand classes. Collective over the whole grid.
    std::vector<std::int64_t> confusion_matrix(const dataset<value_type>& data) {
        const std::size_t classes = net_.widths().back();
        std::vector<std::int64_t> counts(classes * classes, 0);
        for_each_evaluated_batch(data, [&](const loss_value&) {
            const auto& predicted = loss_.predictions();
            for (std::size_t i = 0; i < labels_.size(); ++i)
                ++counts[labels_[i] * classes + static_cast<std::size_t>(predicted[i])];
        });
        grid_.data().all_reduce(counts.data(), counts.size(), reduce_op::sum);  // replicas' rows
        return counts;
    }

  private:
    /// Runs the network over `data` in order, in batches of options.batch (this replica's rows
    /// of each), and calls `f` with each batch's loss; labels_ and loss_.predictions() then
    /// hold that batch's rows. Collective over the model-parallel group.
    template <class F>
    void for_each_evaluated_batch(const dataset<value_type>& data, F&& f) {
        check_data(data, "evaluation set");
        const std::size_t n = data.size();
        order_.resize(n);
        for (std::size_t i = 0; i < n; ++i)
            order_[i] = i;
        for (std::size_t begin = 0; begin < n; begin += options_.batch) {
            const std::size_t global_batch = std::min(options_.batch, n - begin);
            load_rows(data, std::span(order_).subspan(begin, global_batch));
            const auto& out = net_.forward(grid_.model(), batch_);
            f(with_loss_group(grid_.model(), net_.output(), [&]<layout L>(auto& group) {
                return loss_.template evaluate<L>(group, out, labels_, n);
            }));
        }
    }

    /// Checks everything that must hold before the first step, on every rank together: the
    /// data fit the network, the options make sense, and every rank has the same settings and
    /// the same data (ranks that differ would run different collective schedules, or silently
    /// train on different data). Also builds the run's identity.
    void check_run(const dataset<value_type>& train, const dataset<value_type>* test) {
        check_data(train, "training set");
        if (test) check_data(*test, "test set");
        agree_on(grid_.world(), [&] {
            if (options_.batch == 0) throw error("trainer: batch size must be positive");
            if (train.size() == 0) throw error("trainer: the training set is empty");
            if ((options_.checkpoint_every > 0 || options_.resume) &&
                options_.checkpoint_dir.empty())
                throw error("trainer: checkpoint_every and resume need a checkpoint_dir");
            if (options_.resume && options_.overwrite)
                throw error("trainer: resume and overwrite exclude each other");
        });
        identity_ = settings();
        settings shared;  // identity plus what only has to agree
        for (const auto role : {setting_role::identifies_run, setting_role::same_on_ranks}) {
            settings& s = role == setting_role::identifies_run ? identity_ : shared;
            s.merge(describe_fields(options_, detail::trainer_option_fields, role));
            s.merge(describe_fields(opt_.options(), detail::optimizer_option_fields, role),
                    "optimizer.");
        }
        std::string widths = std::to_string(net_.widths().front()), activations;
        visit_layers(net_, [&](auto& layer, auto) {
            // Appended piece by piece: g++ 12 warns falsely (-Wrestrict) on "," + string.
            widths += ',';
            widths += std::to_string(layer.output_features());
            if (!activations.empty()) activations += ',';
            activations += layer.activation_name();
            if (!layer.has_bias()) activations += " (no bias)";
        });
        identity_.set("network.widths", widths);
        identity_.set("network.activations", activations);
        identity_.set("data.train", data_fingerprint(train));
        identity_.set("data.test", test ? data_fingerprint(*test) : "none");
        shared.merge(identity_);
        agree_same_settings(grid_.world(), shared, "trainer: the training settings");
    }

    /// Takes the checkpoint directory for this run and decides where training starts. A
    /// fresh run refuses a directory that holds checkpoints (unless overwrite); a resume
    /// restores the newest intact checkpoint of this run, skipping damaged ones with a note,
    /// and refuses another run's, naming what differs. Rank 0 reads the directory; every rank
    /// loads. Collective over the world.
    void open_checkpoints(training_position& at, training_result& result) {
        if (options_.checkpoint_dir.empty()) return;
        Comm& world = grid_.world();
        const std::filesystem::path dir = options_.checkpoint_dir;
        const bool root = world.rank() == 0;
        std::vector<std::int64_t> candidates;  // this run's checkpoints, newest first
        agree_on(world, [&] {
            if (!root) return;
            lock_.emplace(dir);
            const auto entries = scan_checkpoints(dir);
            if (!options_.resume) {
                if (entries.empty()) return;
                if (!options_.overwrite) throw error(occupied_message(dir, entries));
                for (const auto& e : entries)
                    detail::remove_quietly(e.path);
                sync_directory(dir);
                return;
            }
            for (const auto& e : entries) {
                if (!e.manifest || !e.manifest->has_position) {
                    note(detail::concat(
                        "resume: skipping '", e.path.string(), "': ",
                        e.manifest ? "it holds weights only, no training position" : e.problem));
                    continue;
                }
                const settings theirs = settings::parse(e.manifest->position.run_settings);
                if (theirs == identity_) {
                    candidates.push_back(static_cast<std::int64_t>(e.step));
                    continue;
                }
                if (!candidates.empty()) break;  // an older run's leftovers behind ours
                if (theirs.empty())
                    throw error(detail::concat(
                        "trainer: checkpoint '", e.path.string(),
                        "' records no run identity (format ", e.manifest->format_version,
                        ", or saved without one), so a resume cannot tell whether it belongs to "
                        "this "
                        "run. Load its "
                        "weights with load_checkpoint and train on from them, or move it away"));
                throw error(detail::concat(
                    "trainer: checkpoint '", e.path.string(), "' was written by another run: ",
                    setting_differences(theirs, "there", identity_, "in this run"),
                    ". A resume continues only the run that wrote it: start this run in "
                    "another directory, or without resume and with overwrite to replace it"));
            }
        });
        auto count = static_cast<std::int64_t>(candidates.size());
        world.broadcast(&count, 1, 0);
        candidates.resize(static_cast<std::size_t>(count));
        world.broadcast(candidates.data(), candidates.size(), 0);
        if (options_.resume && candidates.empty())
            note(detail::concat("resume: no checkpoint of this run in '", dir.string(),
                                "'; starting from step 0"));
        std::string damaged;
        for (const std::int64_t step : candidates) {
            const auto path = dir / checkpoint_name(static_cast<std::uint64_t>(step));
            std::optional<checkpoint_manifest> loaded;
            try {
                loaded = load_checkpoint(grid_, path, net_, opt_);
            } catch (const agreed_error& e) {  // a damaged shard: the older one may be intact
                damaged = e.what();
                note(detail::concat("resume: ", damaged, "; falling back to an older checkpoint"));
                continue;
            }
            restore(*loaded, path, at, result);  // its refusals are final, not a fallback
            return;
        }
        if (!candidates.empty())
            throw agreed_error(detail::concat("trainer: no intact checkpoint of this run in '",
                                              dir.string(), "' (the oldest: ", damaged, ")"),
                               world.size());
    }

    /// Continues from a loaded checkpoint's position. Every rank read the same manifest, so
    /// these checks agree by construction.
    void restore(const checkpoint_manifest& m, const std::filesystem::path& path,
                 training_position& at, training_result& result) {
        const training_position& p = m.position;
        if (p.epochs.size() % 4 != 0 || p.step_losses.size() != p.step)
            throw agreed_error(detail::concat("trainer: checkpoint '", path.string(),
                                              "' holds an inconsistent training position"),
                               grid_.world().size());
        if (p.epoch > options_.epochs)
            throw agreed_error(
                detail::concat("trainer: checkpoint '", path.string(), "' is in epoch ",
                               p.epoch + 1, " (step ", p.step, "), past this run's ",
                               options_.epochs, " epochs: raise epochs to continue it"),
                grid_.world().size());
        at = p;
        result.step_losses = p.step_losses;
        for (std::size_t i = 0; i + 3 < p.epochs.size(); i += 4)
            result.epochs.push_back(
                {p.epochs[i], p.epochs[i + 1], p.epochs[i + 2], p.epochs[i + 3]});
        result.resumed_at = static_cast<std::size_t>(p.step);
        note(detail::concat("resumed at step ", p.step, " (epoch ", p.epoch + 1, ", step ",
                            p.step_in_epoch, ") from '", path.string(), "'"));
    }

    /// Why a fresh run may not use a directory that holds checkpoints (rank 0's view).
    std::string occupied_message(const std::filesystem::path& dir,
                                 const std::vector<checkpoint_entry>& entries) const {
        const checkpoint_entry& newest = entries.front();
        std::string whose;
        if (!newest.manifest)
            whose = detail::concat("entries named like checkpoints (newest '",
                                   newest.path.filename().string(), "': ", newest.problem, ")");
        else if (settings::parse(newest.manifest->position.run_settings) == identity_)
            whose =
                detail::concat("checkpoints of this same run (newest '",
                               newest.path.filename().string(), "'): resume to continue it, or ");
        else
            whose = detail::concat(
                "another run's checkpoints (newest '", newest.path.filename().string(), "': ",
                setting_differences(settings::parse(newest.manifest->position.run_settings),
                                    "there", identity_, "in this run"),
                "): use another directory, or ");
        return detail::concat("trainer: checkpoint directory '", dir.string(), "' holds ", whose,
                              "set overwrite to remove them and start over");
    }

    /// One epoch from wherever `at` stands, then its evaluation and report.
    void run_epoch(std::size_t epoch, const dataset<value_type>& train,
                   const dataset<value_type>* test, training_position& at, training_result& result,
                   progress_reporter& progress) {
        const std::size_t n = train.size();
        const std::size_t steps = (n + options_.batch - 1) / options_.batch;
        epoch_order(n, options_.seed, epoch, order_);
        const auto start = std::chrono::steady_clock::now();
        // `at` stands at this epoch's start, or inside it where a checkpoint left it.
        SHARDNET_ASSERT(at.epoch == epoch && at.step == result.step_losses.size());
        double epoch_loss = at.epoch_loss_sum;
        auto epoch_skipped = static_cast<std::size_t>(at.epoch_skipped);
        const auto first = static_cast<std::size_t>(at.step_in_epoch);
        const std::size_t skipped_rows = std::min(n, first * options_.batch);
        auto step = static_cast<std::size_t>(at.step);
        for (std::size_t s = first; s < steps; ++s, ++step) {
            const std::size_t begin = s * options_.batch;
            const std::size_t global_batch = std::min(options_.batch, n - begin);
            const auto [loss, correct] = train_step(train, begin, global_batch, step_accuracy());
            result.step_losses.push_back(loss);
            if (apply_step(loss, step, epoch)) {
                epoch_loss += loss;
            } else {
                net_.mark_updated();  // the gradients are dropped with the step
                ++result.skipped_steps;
                ++epoch_skipped;
                note(detail::concat("skipped step ", step, " (epoch ", epoch + 1,
                                    "): non-finite loss or gradient"));
            }
            progress.step(
                step, epoch, options_.epochs, s, steps, loss,
                correct / static_cast<double>(global_batch),
                static_cast<double>(begin + global_batch - skipped_rows) / elapsed(start));
            const bool last = s + 1 == steps;
            at.step = step + 1;
            at.epoch = epoch;
            at.step_in_epoch = s + 1;
            at.epoch_loss_sum = epoch_loss;
            at.epoch_skipped = epoch_skipped;
            // The epoch's last step is saved after its evaluation (below), so that a resume
            // starts the next epoch instead of reporting this one again.
            if (!last && checkpoint_due(step)) save(at, result);
            if (!last && options_.after_step) options_.after_step(step + 1);
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
        // A metrics file that stopped taking writes (a full disk) is seen on rank 0 only.
        agree_on(grid_.world(), [&] {
            progress.epoch(epoch, options_.epochs, e.train_loss, e.test_loss, e.test_accuracy,
                           e.samples_per_s, test != nullptr);
        });
        result.epochs.push_back(e);
        for (double v : {e.train_loss, e.test_loss, e.test_accuracy, e.samples_per_s})
            at.epochs.push_back(v);
        at.epoch = epoch + 1;
        at.step_in_epoch = 0;
        at.epoch_loss_sum = 0;
        at.epoch_skipped = 0;
        const std::size_t last_step = static_cast<std::size_t>(at.step) - 1;
        if (steps > first && checkpoint_due(last_step)) save(at, result);
        if (steps > first && options_.after_step) options_.after_step(last_step + 1);
    }

    /// Forward, loss, backward and gradient reduction of one global batch; returns the global
    /// mean loss and the number of correct predictions, the same on every rank.
    std::pair<double, double> train_step(const dataset<value_type>& train, std::size_t begin,
                                         std::size_t global_batch, bool accuracy) {
        load_rows(train, std::span(order_).subspan(begin, global_batch));
        const auto& out = net_.forward(grid_.model(), batch_);
        const loss_value local =
            with_loss_group(grid_.model(), net_.output(), [&]<layout L>(auto& group) {
                return loss_.template forward_backward<L>(group, out, labels_, global_batch, grad_,
                                                          accuracy);
            });
        if (options_.overlap_gradient_reduction) {
            net_.backward(grid_.model(), grad_, grid_.data());  // reduces as it goes
        } else {
            net_.backward(grid_.model(), grad_);
            net_.reduce_gradients(grid_.model(), grid_.data());
        }
        double totals[2] = {local.loss, static_cast<double>(local.correct)};
        grid_.data().all_reduce(totals, 2, reduce_op::sum);
        return {totals[0], totals[1]};
    }

    /// Per-step accuracy costs one more all-reduce; only the metrics file wants it. The
    /// decision is the same on every rank (metrics_path's emptiness is agreed).
    bool step_accuracy() const { return !options_.metrics_path.empty(); }

    bool checkpoint_due(std::size_t step) const {
        const std::size_t total = options_.epochs * steps_per_epoch_;
        return options_.checkpoint_every > 0 &&
               ((step + 1) % options_.checkpoint_every == 0 || step + 1 == total);
    }

    void save(training_position& at, const training_result& result) {
        at.step_losses = result.step_losses;
        checkpoint_options c;
        c.keep = options_.checkpoint_keep;
        save_checkpoint(grid_, options_.checkpoint_dir, at.step, net_, opt_, &at, c);
    }

    /// A line for the user, on the reporting rank.
    void note(const std::string& line) {
        if (grid_.world().rank() == 0 && options_.report) *options_.out << line << std::endl;
    }

    /// Applies the optimizer's update unless the loss or a gradient is not finite; returns
    /// whether it did. Every rank reaches the same answer: the loss is the same everywhere and
    /// the gradient flag is agreed over the model-parallel group (replicas hold identical
    /// reduced gradients). Under non_finite_policy::stop the gradients are checked inside the
    /// update's own pass (a failing step then leaves the weights in memory updated: the run
    /// stops, and checkpoints already saved hold the last good state); skip_step must know
    /// before updating, and reads the gradients once more (unless clipping already does).
    bool apply_step(double loss, std::size_t step, std::size_t epoch) {
        const std::size_t everyone = grid_.world().size();
        const bool skip = options_.non_finite == non_finite_policy::skip_step;
        if (!std::isfinite(loss)) {
            if (skip) return false;
            throw agreed_error(
                detail::concat("trainer: the loss became ", loss, " at step ", step, " (epoch ",
                               epoch + 1, "); lower the learning rate or check the data"),
                everyone);
        }
        const gradient_check check = !options_.check_gradients ? gradient_check::none
                                     : skip                    ? gradient_check::before_update
                                                               : gradient_check::during_update;
        if (opt_.step(net_, grid_.model(), check).finite) return true;
        if (skip) return false;
        throw agreed_error(
            detail::concat("trainer: a gradient became non-finite (NaN or Inf) at step ", step,
                           " (epoch ", epoch + 1, ", loss ", loss,
                           "); lower the learning rate, clip gradients or check the data"),
            everyone);
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
    settings identity_;                              ///< what identifies this run
    std::optional<checkpoint_directory_lock> lock_;  ///< held by world rank 0 during fit
    std::size_t steps_per_epoch_ = 0;
    std::vector<std::uint32_t> labels_;
};

}  // namespace shardnet
