// Collective error agreement: a check whose outcome may differ between ranks is settled by
// the whole group before anyone acts, so every rank throws the same shardnet::error and no
// rank is left waiting in a collective that another skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/settings.hpp"

namespace shardnet {

/// The smallest and the largest of the values the ranks of a group passed.
struct value_range {
    std::int64_t min = 0, max = 0;
    /// Whether every rank passed the same value.
    bool same() const { return min == max; }
};

/// Collective over comm's group: the smallest and the largest `value` any rank passed (to name
/// both in a message when ranks disagree). One all-reduce of the maximum and the negated
/// minimum; every rank gets the same answer, so acting on it needs no further agreement.
/// @pre value > INT64_MIN (its negation must exist).
template <communicator Comm>
value_range range_on_all_ranks(Comm& comm, std::int64_t value) {
    std::int64_t range[2] = {value, -value};
    comm.all_reduce(range, 2, reduce_op::max);
    return {-range[1], range[0]};
}

/// Collective over comm's group: whether every rank passed the same value (typically a
/// hash, as agree_same_settings passes). range_on_all_ranks of value / 2, so values that differ
/// only in their lowest bit count as the same: meant for hashes, not for sizes or counts.
template <communicator Comm>
bool same_on_all_ranks(Comm& comm, std::size_t value) {
    return range_on_all_ranks(comm, static_cast<std::int64_t>(value >> 1)).same();
}

/// Collective over comm's group. If any rank passes a failure, every rank throws
/// shardnet::agreed_error with the message of the lowest failing rank; otherwise returns.
template <communicator Comm>
void agree(Comm& comm, const std::optional<std::string>& local_failure) {
    const auto size = static_cast<std::int64_t>(comm.size());
    std::int64_t first_failing = local_failure ? static_cast<std::int64_t>(comm.rank()) : size;
    comm.all_reduce(&first_failing, 1, reduce_op::min);
    if (first_failing == size) return;

    const auto root = static_cast<std::size_t>(first_failing);
    std::string message = comm.rank() == root ? *local_failure : std::string();
    auto length = static_cast<std::int64_t>(message.size());
    comm.broadcast(&length, 1, root);
    message.resize(static_cast<std::size_t>(length));
    comm.broadcast(message.data(), message.size(), root);
    throw agreed_error(message, comm.size());
}

/// Collective over comm's group: runs `check` (which throws shardnet::error on bad input) on
/// every rank, then agrees, so that all ranks throw shardnet::agreed_error or none does.
/// Returns check's result.
template <communicator Comm, class Check>
auto agree_on(Comm& comm, Check&& check) {
    std::optional<std::string> failure;
    using result_type = decltype(std::forward<Check>(check)());
    if constexpr (std::is_void_v<result_type>) {
        try {
            std::forward<Check>(check)();
        } catch (const error& e) {
            failure = e.what();
        }
        agree(comm, failure);
    } else {
        std::optional<result_type> result;
        try {
            result.emplace(std::forward<Check>(check)());
        } catch (const error& e) {
            failure = e.what();
        }
        agree(comm, failure);
        return std::move(*result);
    }
}

/// Collective over comm's group: checks that every rank holds the same settings. Rank 0's
/// settings go to every rank, which compares them with its own; if any differ, every rank
/// throws agreed_error "<what> differ between ranks: <key> is A on rank 0, B on rank r" (the
/// lowest differing rank, up to four keys). `what` names the settings ("train_mlp options").
template <communicator Comm>
void agree_same_settings(Comm& comm, const settings& mine, std::string_view what) {
    const std::string text = mine.text();
    std::size_t h = std::hash<std::string>{}(text);
    if (same_on_all_ranks(comm, h)) return;
    std::string first = comm.rank() == 0 ? text : std::string();
    auto length = static_cast<std::int64_t>(first.size());
    comm.broadcast(&length, 1, 0);
    first.resize(static_cast<std::size_t>(length));
    comm.broadcast(first.data(), first.size(), 0);
    std::optional<std::string> failure;
    if (first != text)
        failure = detail::concat(what, " differ between ranks: ",
                                 setting_differences(settings::parse(first), "on rank 0", mine,
                                                     detail::concat("on rank ", comm.rank())));
    agree(comm, failure);  // unequal hashes mean some rank's text differs: this throws
}

}  // namespace shardnet
