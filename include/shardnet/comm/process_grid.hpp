// The world split into data_parallel x model rows x model cols. Weights are sharded inside a
// model-parallel group (itself a rows x cols grid, see model_group.hpp) and identical across
// data-parallel groups; the batch is split across data-parallel groups. Every
// sub-communicator is made here, once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/grid_shape.hpp"

namespace shardnet {

/// World rank w belongs to model-parallel group w / model_parallel (its ranks are
/// neighbours, as one node's cores usually are) at model rank m = w % model_parallel, which is
/// grid position (m / cols, m % cols); and to data-parallel group m at position
/// w / model_parallel.
template <communicator Comm>
class process_grid {
  public:
    /// Collective over world. `data_parallel` must divide the world size; 0 or 1 means pure
    /// model parallelism. The model-parallel group is a 1 x (world size / data_parallel) grid.
    /// @throws error on every rank if data_parallel does not divide the world size or ranks
    ///         disagree on it.
    explicit process_grid(Comm world, std::size_t data_parallel = 1)
        : process_grid(std::move(world), data_parallel, grid_shape{0, 0}) {}

    /// Collective over world: data_parallel x model.rows x model.cols ranks. A model grid of
    /// {0, 0} means 1 x (world size / data_parallel).
    /// @throws error on every rank if the product is not the world size or ranks disagree.
    process_grid(Comm world, std::size_t data_parallel, grid_shape model)
        : world_(std::move(world)),
          data_parallel_(validated(world_, data_parallel == 0 ? 1 : data_parallel, model)),
          model_parallel_(world_.size() / data_parallel_),
          model_(world_.split(static_cast<int>(world_.rank() / model_parallel_),
                              static_cast<int>(world_.rank() % model_parallel_)),
                 model == grid_shape{0, 0} ? grid_shape{1, model_parallel_} : model),
          data_(world_.split(static_cast<int>(world_.rank() % model_parallel_),
                             static_cast<int>(world_.rank() / model_parallel_))) {}

    std::size_t data_parallel() const { return data_parallel_; }
    std::size_t model_parallel() const { return model_parallel_; }
    /// The model-parallel group's grid (rows x cols = model_parallel()).
    grid_shape model_grid() const { return model_.grid(); }
    /// This rank's position inside its model-parallel group (which shard it holds).
    std::size_t model_rank() const { return model_.rank(); }
    /// Which data-parallel replica this rank belongs to (which part of the batch it reads).
    std::size_t data_rank() const { return data_.rank(); }

    Comm& world() { return world_; }
    /// The ranks that share one copy of the model, each holding a shard, as a grid.
    model_group<Comm>& model() { return model_; }
    /// The ranks that hold the same shard in different replicas.
    Comm& data() { return data_; }

  private:
    static std::size_t validated(Comm& world, std::size_t data_parallel, grid_shape model) {
        const value_range got = range_on_all_ranks(world, static_cast<std::int64_t>(data_parallel));
        const value_range model_size =
            range_on_all_ranks(world, static_cast<std::int64_t>(model.size()));
        agree_on(world, [&] {
            if (!got.same())
                throw error(detail::concat(
                    "process_grid: ranks disagree on data_parallel (got values from ", got.min,
                    " to ", got.max, ")"));
            if (!model_size.same())
                throw error(detail::concat("process_grid: ranks disagree on the model grid (from ",
                                           model_size.min, " to ", model_size.max, " ranks)"));
            if (model != grid_shape{0, 0} &&
                (model.size() == 0 || data_parallel * model.size() != world.size()))
                throw error(detail::concat("process_grid: ", data_parallel, " x ", model.rows,
                                           " x ", model.cols, " needs ",
                                           data_parallel * model.size(), " ranks, the world has ",
                                           world.size()));
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
    model_group<Comm> model_;
    Comm data_;
};

}  // namespace shardnet
