// Learning-rate schedules: constant, step decay, and cosine decay after a linear warm-up.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>

namespace shardnet {

/// The learning rate as a function of the update count t (0 for the first update).
struct lr_schedule {
    enum class kind { constant, step, cosine };
    kind shape = kind::constant;
    std::size_t step_size = 1000;  ///< step: multiply by gamma every step_size updates
    double gamma = 0.1;
    std::size_t warmup = 0;  ///< cosine: linear warm-up from 0 over this many updates
    std::size_t total = 0;   ///< cosine: updates until the rate reaches base * min_ratio
    double min_ratio = 0.0;

    static lr_schedule constant() { return {}; }
    static lr_schedule step_decay(std::size_t step_size, double gamma) {
        lr_schedule s;
        s.shape = kind::step;
        s.step_size = step_size;
        s.gamma = gamma;
        return s;
    }
    static lr_schedule cosine(std::size_t warmup, std::size_t total, double min_ratio = 0.0) {
        lr_schedule s;
        s.shape = kind::cosine;
        s.warmup = warmup;
        s.total = total;
        s.min_ratio = min_ratio;
        return s;
    }

    double at(double base, std::size_t t) const {
        switch (shape) {
            case kind::constant:
                return base;
            case kind::step:
                return base * std::pow(gamma, static_cast<double>(t / (step_size ? step_size : 1)));
            case kind::cosine: {
                if (t < warmup)
                    return base * static_cast<double>(t + 1) / static_cast<double>(warmup);
                if (total <= warmup || t >= total) return base * min_ratio;
                const double progress =
                    static_cast<double>(t - warmup) / static_cast<double>(total - warmup);
                const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
                return base * (min_ratio + (1.0 - min_ratio) * cosine);
            }
        }
        return base;
    }
};

}  // namespace shardnet
