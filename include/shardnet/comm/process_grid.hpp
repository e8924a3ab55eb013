// The world split into data_parallel x model_parallel groups. Weights are sharded inside a
// model-parallel group and identical across data-parallel groups; the batch is split across
// data-parallel groups.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/core/error.hpp"

namespace shardnet {

/// World rank w belongs to model-parallel group w / model_parallel (its ranks are
/// neighbours, as one node's cores usually are) at position w % model_parallel, and to
/// data-parallel group w % model_parallel at position w / model_parallel.
template <communicator Comm>
class process_grid {
  public:
    /// Collective over world. `data_parallel` must divide the world size; 0 or 1 means pure
    /// model parallelism (model_parallel = world size).
    /// @throws error on every rank if data_parallel does not divide the world size or ranks
    ///         disagree on it.
    explicit process_grid(Comm world, std::size_t data_parallel = 1)
        : world_(std::move(world)),
          data_parallel_(validated(world_, data_parallel == 0 ? 1 : data_parallel)),
          model_parallel_(world_.size() / data_parallel_),
          model_(world_.split(static_cast<int>(world_.rank() / model_parallel_),
                              static_cast<int>(world_.rank() % model_parallel_))),
          data_(world_.split(static_cast<int>(world_.rank() % model_parallel_),
                             static_cast<int>(world_.rank() / model_parallel_))) {}

    std::size_t data_parallel() const { return data_parallel_; }
    std::size_t model_parallel() const { return model_parallel_; }
    /// This rank's position inside its model-parallel group (which shard it holds).
    std::size_t model_rank() const { return model_.rank(); }
    /// Which data-parallel replica this rank belongs to (which part of the batch it reads).
    std::size_t data_rank() const { return data_.rank(); }

    Comm& world() { return world_; }
    /// The ranks that share one copy of the model, each holding a shard.
    Comm& model() { return model_; }
    /// The ranks that hold the same shard in different replicas.
    Comm& data() { return data_; }

  private:
    static std::size_t validated(Comm& world, std::size_t data_parallel) {
        const value_range got = range_on_all_ranks(world, static_cast<std::int64_t>(data_parallel));
        agree_on(world, [&] {
            if (!got.same())
                throw error(detail::concat(
                    "process_grid: ranks disagree on data_parallel (got values from ", got.min,
                    " to ", got.max, ")"));
            if (world.size() % data_parallel != 0)
                throw error(
                    detail::concat("process_grid: data_parallel must divide the world size ",
                                   world.size(), ", got ", data_parallel));
        });
        return data_parallel;
    }

    Comm world_;
    std::size_t data_parallel_;
    std::size_t model_parallel_;
    Comm model_;
    Comm data_;
};

}  // namespace shardnet
