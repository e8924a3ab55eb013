// Progress output of the trainer on one rank: a live bar on a terminal, one plain line per
// epoch otherwise (logs, CI), and an optional CSV of per-step metrics.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

#include "shardnet/core/error.hpp"

namespace shardnet {

/// Prints training progress. Only the rank that owns it (rank 0 of the world) writes.
class progress_reporter {
  public:
    /// A live bar is drawn when `bar` is true, or, by default, when `out` is std::cout on a
    /// terminal outside CI (mpiexec hands ranks a pseudo-terminal even when its own output is
    /// a file, so CI=... in the environment also selects plain lines).
    /// With `append`, an existing metrics file is continued (a resumed run) instead of
    /// replaced.
    progress_reporter(bool active, std::ostream& out, const std::string& metrics_path,
                      std::optional<bool> bar = std::nullopt, bool append = false)
        : active_(active),
          out_(out),
          terminal_(active && bar.value_or(&out == &std::cout && ::isatty(1) &&
                                           std::getenv("CI") == nullptr)) {
        if (active_ && !metrics_path.empty()) {
            metrics_path_ = metrics_path;
            errno = 0;
            std::error_code ec;
            const bool continued =
                append && std::filesystem::file_size(metrics_path, ec) > 0 && !ec;
            metrics_.open(metrics_path,
                          std::ios::out | (continued ? std::ios::app : std::ios::trunc));
            if (!continued) metrics_ << "step,epoch,loss,accuracy,samples_per_s\n";
            check_metrics();  // flushed now, so a full disk shows before the first step
        }
    }

    /// @throws error naming the metrics file if a write to it failed. Not collective.
    void check_metrics() {
        if (!metrics_.is_open() && metrics_path_.empty()) return;
        metrics_.flush();
        if (!metrics_)
            throw error(detail::concat("metrics file '", metrics_path_, "' cannot be written",
                                       errno ? std::string(": ") + std::strerror(errno) : ""));
    }

    bool has_metrics() const { return metrics_.is_open(); }

    void step(std::size_t step, std::size_t epoch, std::size_t epochs, std::size_t step_in_epoch,
              std::size_t steps_per_epoch, double loss, double accuracy, double samples_per_s) {
        if (!active_) return;
        if (metrics_.is_open())
            metrics_ << step << ',' << epoch << ',' << loss << ',' << accuracy << ','
                     << samples_per_s << '\n';
        if (!terminal_) return;
        const auto now = std::chrono::steady_clock::now();
        if (step_in_epoch + 1 < steps_per_epoch &&
            now - last_draw_ < std::chrono::milliseconds(100))
            return;
        last_draw_ = now;
        constexpr int width = 30;
        const double done =
            static_cast<double>(step_in_epoch + 1) / static_cast<double>(steps_per_epoch);
        const int filled = static_cast<int>(done * width);
        const double left_steps = static_cast<double>(steps_per_epoch - step_in_epoch - 1) +
                                  static_cast<double>((epochs - epoch - 1) * steps_per_epoch);
        const double eta = samples_per_s > 0 && step_in_epoch > 0
                               ? left_steps * seconds_per_step(samples_per_s)
                               : 0.0;
        std::ostringstream line;  // formatted apart, so the user's stream keeps its flags
        line << "\repoch " << epoch + 1 << "/" << epochs << " [" << std::string(filled, '#')
             << std::string(width - filled, '.') << "] step " << step_in_epoch + 1 << "/"
             << steps_per_epoch << " loss " << std::fixed << std::setprecision(4) << loss << " "
             << std::setprecision(0) << samples_per_s << " samples/s ETA " << std::setprecision(1)
             << eta << "s   ";
        out_ << line.str() << std::flush;
    }

    void epoch(std::size_t epoch, std::size_t epochs, double train_loss, double test_loss,
               double test_accuracy, double samples_per_s, bool has_test) {
        if (!active_) return;
        if (terminal_) out_ << "\n";
        out_ << "epoch " << epoch + 1 << "/" << epochs << ": train_loss=" << train_loss;
        if (has_test) out_ << " test_loss=" << test_loss << " test_accuracy=" << test_accuracy;
        out_ << " samples_per_s=" << static_cast<long long>(samples_per_s) << std::endl;
        errno = 0;
        check_metrics();
    }

    /// The per-step throughput is samples/s of the running epoch; steps are equal in size.
    void set_batch(std::size_t batch) { batch_ = batch; }

  private:
    double seconds_per_step(double samples_per_s) const {
        return static_cast<double>(batch_) / samples_per_s;
    }

    bool active_;
    std::ostream& out_;
    bool terminal_;
    std::ofstream metrics_;
    std::string metrics_path_;
    std::size_t batch_ = 1;
    std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace shardnet
