// What each rank of a model-parallel group holds of a batch x features activation. Layouts
// are compile-time values, so a wrong composition fails to compile rather than to converge.
#pragma once

#include <string_view>

namespace shardnet {

enum class layout {
    replicated,  ///< every rank holds all features
    sharded,     ///< each rank holds its balanced block of features
    partial,     ///< every rank holds a full-size partial sum that still needs a reduction
};

constexpr std::string_view to_string(layout l) {
    switch (l) {
        case layout::replicated:
            return "replicated";
        case layout::sharded:
            return "sharded";
        case layout::partial:
            return "partial";
    }
    return "?";
}

}  // namespace shardnet
