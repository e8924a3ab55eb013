// dense<T, Partition, Activation, Gemm>: one fully connected layer, Y = act(X·W + b), whose weight
// is split over a model-parallel group by the partition policy. The layer holds its own shard
// of W and b, their gradients, and the workspaces of one step (sized once per batch size).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "shardnet/comm/agree.hpp"
#include "shardnet/comm/communicator.hpp"
#include "shardnet/comm/model_group.hpp"
#include "shardnet/core/bfloat16.hpp"
#include "shardnet/core/element_type.hpp"
#include "shardnet/core/error.hpp"
#include "shardnet/core/layout.hpp"
#include "shardnet/core/precision.hpp"
#include "shardnet/core/random.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/core/tensor.hpp"
#include "shardnet/kernels/dense_products.hpp"
#include "shardnet/kernels/elementwise.hpp"
#include "shardnet/kernels/gemm_policy.hpp"
#include "shardnet/layers/activation.hpp"
#include "shardnet/layers/init.hpp"
#include "shardnet/partition/partition.hpp"

namespace shardnet {

/// Construction options of a dense layer.
struct dense_options {
    bool bias = true;                                ///< learn a bias (initialized to zero)
    init_scheme init = init_scheme::xavier_uniform;  ///< scaled by the global fan-in/fan-out
    std::uint64_t seed = 0;                          ///< with `layer`, keys the weight generator
    std::uint32_t layer = 0;                         ///< the layer's index in its network
    std::string name = "dense";                      ///< used in plans and error messages
    /// fp32, or bf16 mixed precision (float layers only, see core/precision.hpp).
    shardnet::precision precision = shardnet::precision::fp32;
    /// 0 (the default), or the largest model-parallel group this layer's results must not
    /// depend on: with N > 0 every sum over the group (row_split's forward, column_split's
    /// input gradient) is reproducible (kernels/reproducible_sum.hpp), so that the layer gives
    /// the same bits on 1 .. N ranks, in fp32 and bf16. Costs a product call per chunk of the
    /// split dimension and an 8-byte integer all-reduce instead of T's; needs a partition that
    /// is a reproducible_partition (not block2d) and a group of at most N ranks.
    std::size_t reproducible_across = 0;
};

/// One fully connected layer, Y = Activation(X·W + b), W stored in x out.
///
/// @tparam T          float or double.
/// @tparam Partition  how W is split over the model-parallel group: column_split, row_split,
///                    replicated, or a user type satisfying partition_policy.
/// @tparam Activation identity, relu, gelu, tanh, sigmoid (namespace shardnet::activation),
///                    or a user type satisfying activation_policy.
/// @tparam Gemm       the local matrix product: xsimd_gemm (shardnet's own, the default),
///                    cblas_gemm (kernels/cblas_gemm.hpp, for programs that link a BLAS), or a
///                    user type satisfying gemm_policy.
///
/// The input must be in Partition::input_layout (its local width is weight_rows().size()),
/// the output is in Partition::output_layout (local width weight_cols().size()).
///
/// With options.precision == bf16 (T = float, a partition that is a
/// mixed_precision_partition) the layer keeps a bfloat16 copy of its weight shard beside the
/// fp32 master (refresh_low_precision() after anything writes the master; the optimizer and
/// checkpoint loading do it), keeps its input for backward in bf16 only, rounds dZ to bf16 for
/// the dX and dW products, and runs its GEMMs on gemm_bf16 with fp32 results; its partition sums
/// partial products over the group in bf16 (partition/partial_sum.hpp). Bias, activation,
/// pre-activation and gradients stay fp32.
template <class T, class Partition, class Activation = activation::identity,
          class Gemm = xsimd_gemm>
class dense {
    static_assert(element_type<T>,
                  "shardnet::dense<T, ...>: T must be an element type (float or double; see "
                  "core/element_type.hpp)");
    static_assert(partition_policy<Partition>,
                  "shardnet::dense<T, Partition, ...>: Partition must satisfy "
                  "shardnet::partition_policy (name, input_layout, output_layout, weight_rows, "
                  "weight_cols, forward, backward); use column_split, row_split or replicated");
    static_assert(activation_policy<Activation, T>,
                  "shardnet::dense<T, Partition, Activation>: Activation must satisfy "
                  "shardnet::activation_policy (name, is_linear, forward(z), derivative(z))");
    static_assert(gemm_policy<Gemm>,
                  "shardnet::dense<T, Partition, Activation, Gemm>: Gemm must satisfy "
                  "shardnet::gemm_policy (name, gemm<T>(...)); use xsimd_gemm or cblas_gemm");
    static_assert(Activation::is_linear || !Partition::output_layout.has_partial(),
                  "shardnet::dense: a non-linear activation cannot be applied to a partial sum; "
                  "use activation::identity here and apply the activation after the reduction");

  public:
    using value_type = T;
    using partition_type = Partition;
    using activation_type = Activation;
    using gemm_type = Gemm;

    /// Builds this rank's shard of an in x out layer for the model-parallel group `group` (a
    /// model_group, or a plain communicator seen as a 1 x P grid). Not collective: each rank
    /// generates its own shard from the global indices.
    template <communicator Comm>
    dense(const Comm& group, std::size_t in, std::size_t out, dense_options options = {})
        : dense(in, out, grid_of(group), position_of(group), std::move(options)) {}

    /// Builds shard `part` of `parts` of an in x out layer (a 1 x parts grid).
    /// @throws error if part >= parts.
    dense(std::size_t in, std::size_t out, std::size_t parts, std::size_t part,
          dense_options options = {})
        : dense(in, out, grid_shape{1, parts}, grid_position{0, part}, std::move(options)) {}

    /// Builds the shard at `at` of a `grid` of ranks of an in x out layer.
    /// @throws error if `at` is outside the grid.
    dense(std::size_t in, std::size_t out, grid_shape grid, grid_position at,
          dense_options options = {})
        : in_(in),
          out_(out),
          grid_(checked_grid(grid, at, options)),
          at_(at),
          rows_(map().weight_rows(in, grid, at)),
          cols_(map().weight_cols(out, grid, at)),
          options_(std::move(options)) {
        initialize_shard(weight_, options_.init, random_key{options_.seed, options_.layer, 0}, in_,
                         out_, rows_, cols_);
        if (mixed()) {
            if constexpr (!std::is_same_v<T, float>)
                throw error(detail::concat(describe(), ": bf16 precision needs float weights"));
            // Asked of the group type partition_policy is checked with: a partition written for
            // one T fails it for any group, and is refused here rather than at its first step.
            if constexpr (!mixed_precision_partition<Partition, model_group<local_communicator>>)
                throw error(detail::concat(describe(),
                                           ": bf16 precision needs a partition that "
                                           "takes bf16 operands (see "
                                           "mixed_precision_partition)"));
            detail::ensure_shape(weight_low_, rows_.size(), cols_.size());
            refresh_low_precision();
        }
        if (options_.reproducible_across != 0) make_reproducible();
        detail::ensure_shape(weight_grad_, rows_.size(), cols_.size());
        weight_grad_.fill(T(0));
        if (options_.bias) {
            bias_ = vector<T>::from_shape({cols_.size()});
            bias_.fill(T(0));
            bias_grad_ = bias_;
        }
    }

    /// Y = Activation(X·W + b) for a batch. Collective over the model-parallel group `group`
    /// (the one the layer was built for): ranks first agree that every input has the expected
    /// width, then issue the partition's collectives.
    /// @pre x stays alive and unchanged until backward() (the layer keeps a pointer, not a copy).
    /// @throws error on every rank if any rank's x has the wrong width.
    /// @return the output, owned by the layer, valid until the next forward().
    template <communicator Comm>
    const matrix<T>& forward(Comm& group, const matrix<T>& x) {
        check_group(group);
        agree_on(group, [&] { check_input(x); });
        return forward_unchecked(group, x);
    }

    /// forward() without the collective check of the input, for callers (networks) that
    /// validate once per step. @pre x.shape(1) == weight_rows().size()
    template <communicator Comm>
    const matrix<T>& forward_unchecked(Comm& group, const matrix<T>& x) {
        if (mixed()) {
            // The input is kept for backward in bf16 only: the dW product reads nothing else.
            detail::ensure_shape(input_low_, x.shape(0), x.shape(1));
            if constexpr (std::is_same_v<T, float>)
                to_bfloat16(x.data(), input_low_.data(), x.size());
            return forward_low_unchecked(group, input_low_);
        }
        input_ = &x;
        detail::ensure_shape(pre_activation_, x.shape(0), cols_.size());
        partition_forward(group, x, weight_);
        if constexpr (std::is_same_v<Activation, activation::identity>) {
            return pre_activation_;
        } else {
            detail::ensure_shape(output_, x.shape(0), cols_.size());
            detail::activation_forward<Activation>(pre_activation_.data(), output_.data(),
                                                   output_.size());
            return output_;
        }
    }

    /// forward_unchecked() of an input already in bf16 (bf16 precision only): what a network
    /// passes from one bf16 layer to the next, so that activations travel and are gathered in
    /// bf16. Also fills output_low(). @pre x stays alive and unchanged until backward().
    /// @throws error if the layer does not compute in bf16.
    template <communicator Comm>
    const matrix<T>& forward_low_unchecked(Comm& group, const matrix<bfloat16>& x) {
        if constexpr (std::is_same_v<T, float> && mixed_precision_partition<Partition, Comm>) {
            if (!mixed())
                throw error(detail::concat(describe(), ": a bf16 input given to an fp32 layer"));
            input_ = nullptr;
            input_low_ptr_ = &x;
            detail::ensure_shape(pre_activation_, x.shape(0), cols_.size());
            detail::ensure_shape(output_low_, x.shape(0), cols_.size());
            partition_forward(group, x, weight_low_);
            if constexpr (std::is_same_v<Activation, activation::identity>) {
                to_bfloat16(pre_activation_.data(), output_low_.data(), pre_activation_.size());
                return pre_activation_;
            } else {
                detail::ensure_shape(output_, x.shape(0), cols_.size());
                detail::activation_forward_bf16<Activation>(pre_activation_.data(), output_.data(),
                                                            output_low_.data(), output_.size());
                return output_;
            }
        } else {
            (void)group;
            (void)x;
            throw error(detail::concat(describe(), ": bf16 precision needs float weights and a ",
                                       "partition that is a mixed_precision_partition"));
        }
    }

    /// The output of the last forward rounded to bf16 (bf16 precision only; empty otherwise).
    const matrix<bfloat16>& output_low() const { return output_low_; }

    /// The precision the layer computes in (dense_options::precision).
    shardnet::precision compute_precision() const { return options_.precision; }

    /// dense_options::reproducible_across (0: off).
    std::size_t reproducible_across() const { return options_.reproducible_across; }

    /// Rounds the fp32 master weight shard into its bf16 copy (bf16 precision; nothing
    /// otherwise). Call it after writing weight() directly.
    void refresh_low_precision() {
        if constexpr (std::is_same_v<T, float>)
            if (mixed()) to_bfloat16(weight_.data(), weight_low_.data(), weight_.size());
    }

    /// The bf16 copy of the weight shard (weight().size() values), or null in fp32 precision.
    bfloat16* weight_low_data() { return mixed() ? weight_low_.data() : nullptr; }

    /// From dY (the loss gradient w.r.t. this layer's output, in the output layout) computes
    /// dW and db (read them with weight_grad(), bias_grad()) and returns dX in the input
    /// layout. Gradients are overwritten, not accumulated. Collective over `group`.
    /// @pre forward() was called on this rank with a batch of the same size.
    /// @throws error on every rank if any rank's dy has the wrong shape.
    template <communicator Comm>
    const matrix<T>& backward(Comm& group, const matrix<T>& dy) {
        check_group(group);
        agree_on(group, [&] { check_output_gradient(dy); });
        return backward_unchecked(group, dy);
    }

    /// backward() without the collective check of dy. With `input_gradient` false only dW and
    /// db are computed (the first layer of a network: nobody needs the gradient of the data),
    /// which saves a product and, for column_split, an all-reduce; the returned dx is then
    /// empty.
    template <communicator Comm>
    const matrix<T>& backward_unchecked(Comm& group, const matrix<T>& dy,
                                        bool input_gradient = true) {
        if (mixed()) return backward_mixed(group, dy, input_gradient);
        const matrix<T>* dz = &dy;
        if constexpr (!std::is_same_v<Activation, activation::identity>) {
            detail::ensure_shape(pre_activation_grad_, dy.shape(0), dy.shape(1));
            detail::activation_backward<Activation>(pre_activation_.data(), dy.data(),
                                                    pre_activation_grad_.data(), dy.size());
            dz = &pre_activation_grad_;
        }
        matrix<T>* dx = nullptr;
        if (input_gradient) {
            detail::ensure_shape(input_grad_, dy.shape(0), rows_.size());
            dx = &input_grad_;
        }
        partition_backward(group, *input_, weight_, *dz, dx,
                           options_.bias ? bias_grad_.data() : nullptr);
        return input_grad_;
    }

    /// Replaces this rank's shard by its block of a full global W (in x out) and b (out), given
    /// on every rank. Collective over `group`: the shapes are agreed on first.
    template <communicator Comm>
    void import_weights(Comm& group, const matrix<T>& global_weight,
                        const vector<T>* global_bias = nullptr) {
        check_group(group);
        agree_on(group, [&] {
            if (global_weight.shape(0) != in_ || global_weight.shape(1) != out_)
                throw error(detail::concat(describe(), ": imported weight is ",
                                           global_weight.shape(0), " x ", global_weight.shape(1),
                                           ", expected ", in_, " x ", out_));
            if (global_bias && !options_.bias)
                throw error(detail::concat(describe(),
                                           ": a bias was imported into a layer "
                                           "built without one"));
            if (global_bias && global_bias->shape(0) != out_)
                throw error(detail::concat(describe(), ": imported bias has ",
                                           global_bias->shape(0), " elements, expected ", out_));
        });
        for (std::size_t i = 0; i < rows_.size(); ++i)
            for (std::size_t j = 0; j < cols_.size(); ++j)
                weight_(i, j) = global_weight(rows_.to_global(i), cols_.to_global(j));
        if (global_bias)
            for (std::size_t j = 0; j < cols_.size(); ++j)
                bias_(j) = (*global_bias)(cols_.to_global(j));
        refresh_low_precision();
    }

    /// The full global W (in x out) on every rank, assembled from all shards. For interop and
    /// tests only: it is the one place a full matrix exists. Collective over `group`.
    template <communicator Comm>
    matrix<T> gather_weight(Comm& group) const {
        check_group(group);
        const std::size_t parts = grid_.size();
        std::vector<std::size_t> counts(parts);
        for (std::size_t p = 0; p < parts; ++p)
            counts[p] = map().weight_rows(in_, grid_, position_of_rank(grid_, p)).size() *
                        map().weight_cols(out_, grid_, position_of_rank(grid_, p)).size();
        std::vector<T> blocks(std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
        group.all_gather(weight_.data(), blocks.data(), counts);
        matrix<T> global = matrix<T>::from_shape({in_, out_});
        const T* block = blocks.data();
        // Copies of a block (ranks along a dimension the block is not split over) write the
        // same values to the same place.
        for (std::size_t p = 0; p < parts; ++p) {
            const shard_range rows = map().weight_rows(in_, grid_, position_of_rank(grid_, p));
            const shard_range cols = map().weight_cols(out_, grid_, position_of_rank(grid_, p));
            for (std::size_t i = 0; i < rows.size(); ++i)
                std::copy_n(block + i * cols.size(), cols.size(),
                            &global(rows.to_global(i), cols.begin));
            block += counts[p];
        }
        return global;
    }

    /// The full bias (out) on every rank; empty if the layer has none. Collective over `group`.
    template <communicator Comm>
    vector<T> gather_bias(Comm& group) const {
        check_group(group);
        if (!options_.bias) return vector<T>::from_shape({0});
        const std::size_t parts = grid_.size();
        std::vector<std::size_t> counts(parts);
        for (std::size_t p = 0; p < parts; ++p)
            counts[p] = map().weight_cols(out_, grid_, position_of_rank(grid_, p)).size();
        std::vector<T> blocks(std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
        group.all_gather(bias_.data(), blocks.data(), counts);
        vector<T> global = vector<T>::from_shape({out_});
        const T* block = blocks.data();
        for (std::size_t p = 0; p < parts; ++p) {
            const shard_range cols = map().weight_cols(out_, grid_, position_of_rank(grid_, p));
            std::copy_n(block, cols.size(), &global(cols.begin));
            block += counts[p];
        }
        return global;
    }

    std::size_t input_features() const { return in_; }
    std::size_t output_features() const { return out_; }
    /// Global rows of W this rank holds; also the block of input features it reads.
    shard_range weight_rows() const { return rows_; }
    /// Global columns of W this rank holds; also its block of output features and of b.
    shard_range weight_cols() const { return cols_; }
    /// The model-parallel group's size and this rank's place in it (its model rank).
    std::size_t parts() const { return grid_.size(); }
    std::size_t part() const { return rank_of_position(grid_, at_); }
    grid_shape grid() const { return grid_; }
    grid_position position() const { return at_; }
    /// Where this layer's parameters live (see partition/partition.hpp).
    static constexpr partition_map map() { return map_of<Partition>(); }
    static constexpr std::string_view partition_name() { return Partition::name; }
    static constexpr std::string_view activation_name() { return Activation::name; }
    static constexpr layout input_layout() { return Partition::input_layout; }
    static constexpr layout output_layout() { return Partition::output_layout; }
    /// What this rank's collectives move in one pass of `batch` rows (the partition's traffic).
    step_traffic traffic(std::size_t batch) const {
        return Partition::traffic(batch, in_, out_, grid_, at_);
    }
    /// Whether the local weight (bias) gradient is a partial sum over the model-parallel group
    /// (see reduced_over in partition/partition.hpp).
    static constexpr bool weight_gradient_over_model_group() {
        return weight_gradient_groups_t<Partition>::model;
    }
    static constexpr bool bias_gradient_over_model_group() {
        return bias_gradient_groups_t<Partition>::model;
    }
    bool has_bias() const { return options_.bias; }
    const dense_options& options() const { return options_; }
    const std::string& name() const { return options_.name; }

    /// This rank's shard of W: weight_rows().size() x weight_cols().size().
    matrix<T>& weight() { return weight_; }
    const matrix<T>& weight() const { return weight_; }
    /// This rank's block of b (empty without bias).
    vector<T>& bias() { return bias_; }
    const vector<T>& bias() const { return bias_; }
    /// Gradients of the shards after backward().
    const matrix<T>& weight_grad() const { return weight_grad_; }
    matrix<T>& weight_grad() { return weight_grad_; }
    const vector<T>& bias_grad() const { return bias_grad_; }
    vector<T>& bias_grad() { return bias_grad_; }

    /// "name (partition in -> out, activation)", the prefix of every message about the layer.
    std::string describe() const {
        return detail::concat("dense '", options_.name, "' (", Partition::name, " ", in_, " -> ",
                              out_, ", ", Activation::name, ")");
    }

    /// Throws (locally) if x has the wrong width for this rank.
    void check_input(const matrix<T>& x) const {
        if (x.shape(1) != rows_.size())
            throw error(detail::concat(describe(), ": input has ", x.shape(1),
                                       " features per row on rank ", part(), ", expected ",
                                       rows_.size(), width_note(rows_, in_)));
    }

    /// Throws (locally) if dy does not match the output of the last forward().
    void check_output_gradient(const matrix<T>& dy) const {
        if (input_ == nullptr && input_low_ptr_ == nullptr)
            throw error(detail::concat(describe(), ": backward() called before forward()"));
        if (dy.shape(0) != pre_activation_.shape(0) || dy.shape(1) != cols_.size())
            throw error(detail::concat(describe(), ": output gradient is ", dy.shape(0), " x ",
                                       dy.shape(1), " on rank ", part(), ", expected ",
                                       pre_activation_.shape(0), " x ", cols_.size(),
                                       width_note(cols_, out_)));
    }

  private:
    bool mixed() const { return options_.precision == shardnet::precision::bf16; }

    // The partition's forward and backward, through the reproducible sums when the layer has
    // them (make_reproducible; the partition was checked to take them there).
    template <communicator Comm, class In>
    void partition_forward(Comm& group, const matrix<In>& x, const matrix<In>& w) {
        if constexpr (reproducible_partition<Partition, Comm, In, T>)
            if (reproducible_.over_inputs.enabled())
                return Partition::template forward<Gemm>(group, x, w, bias_ptr(), pre_activation_,
                                                         reproducible_);
        Partition::template forward<Gemm>(group, x, w, bias_ptr(), pre_activation_);
    }
    template <communicator Comm, class In>
    void partition_backward(Comm& group, const matrix<In>& x, const matrix<In>& w,
                            const matrix<In>& dz, matrix<T>* dx, T* dbias) {
        if constexpr (reproducible_partition<Partition, Comm, In, T>)
            if (reproducible_.over_inputs.enabled())
                return Partition::template backward<Gemm>(group, x, w, dz, dx, weight_grad_, dbias,
                                                          reproducible_);
        Partition::template backward<Gemm>(group, x, w, dz, dx, weight_grad_, dbias);
    }

    // Sets up the reproducible sums of options_.reproducible_across, or refuses it.
    void make_reproducible() {
        const std::size_t across = options_.reproducible_across;
        if constexpr (!reproducible_partition<Partition, model_group<local_communicator>, T, T>)
            throw error(detail::concat(describe(),
                                       ": reproducible_across needs a partition "
                                       "that sums through reproducible sums (column_split, "
                                       "row_split or replicated; see reproducible_partition)"));
        if (grid_.size() > across)
            throw error(detail::concat(describe(), ": reproducible across at most ", across,
                                       " model-parallel ranks, but the group has ", grid_.size()));
        reproducible_ = {reproducible_sum<T>(in_, rows_, across),
                         reproducible_sum<T>(out_, cols_, across)};
    }

    /// backward_unchecked() in bf16 precision: dZ in fp32 (for the bias gradient, summed
    /// before any rounding) and in bf16 (for the products), from one fused pass.
    template <communicator Comm>
    const matrix<T>& backward_mixed(Comm& group, const matrix<T>& dy, bool input_gradient) {
        if constexpr (std::is_same_v<T, float> && mixed_precision_partition<Partition, Comm>) {
            detail::ensure_shape(pre_activation_grad_low_, dy.shape(0), dy.shape(1));
            const matrix<T>* dz = &dy;
            if constexpr (std::is_same_v<Activation, activation::identity>) {
                to_bfloat16(dy.data(), pre_activation_grad_low_.data(), dy.size());
            } else {
                detail::ensure_shape(pre_activation_grad_, dy.shape(0), dy.shape(1));
                detail::activation_backward_bf16<Activation>(
                    pre_activation_.data(), dy.data(), pre_activation_grad_.data(),
                    pre_activation_grad_low_.data(), dy.size());
                dz = &pre_activation_grad_;
            }
            if (options_.bias)
                detail::column_sums(dz->data(), dz->shape(0), dz->shape(1), dz->shape(1),
                                    bias_grad_.data());
            matrix<T>* dx = nullptr;
            if (input_gradient) {
                detail::ensure_shape(input_grad_, dy.shape(0), rows_.size());
                dx = &input_grad_;
            }
            partition_backward(group, *input_low_ptr_, weight_low_, pre_activation_grad_low_, dx,
                               static_cast<T*>(nullptr));
            return input_grad_;
        } else {
            (void)group;
            (void)dy;
            (void)input_gradient;
            throw error(detail::concat(describe(), ": bf16 precision needs float weights and a ",
                                       "partition that is a mixed_precision_partition"));
        }
    }

    static std::string width_note(shard_range r, std::size_t total) {
        if (r.size() == total) return "";
        return detail::concat(" (its block [", r.begin, ", ", r.end, ") of ", total, ")");
    }

    template <communicator Comm>
    void check_group(const Comm& group) const {
        const grid_shape grid = grid_of(group);
        const grid_position at = position_of(group);
        if (grid != grid_ || at != at_)
            throw error(detail::concat(describe(), ": built for position (", at_.row, ", ", at_.col,
                                       ") of a ", grid_.rows, " x ", grid_.cols,
                                       " grid but called from position (", at.row, ", ", at.col,
                                       ") of a ", grid.rows, " x ", grid.cols, " grid"));
    }

    static grid_shape checked_grid(grid_shape grid, grid_position at,
                                   const dense_options& options) {
        if (grid.size() == 0 || at.row >= grid.rows || at.col >= grid.cols)
            throw error(detail::concat("dense '", options.name, "': position (", at.row, ", ",
                                       at.col, ") is outside a ", grid.rows, " x ", grid.cols,
                                       " grid"));
        return grid;
    }

    const T* bias_ptr() const { return options_.bias ? bias_.data() : nullptr; }

    std::size_t in_, out_;
    grid_shape grid_;
    grid_position at_;
    shard_range rows_, cols_;
    dense_options options_;
    matrix<T> weight_, weight_grad_;
    vector<T> bias_, bias_grad_;
    // One step's state: the caller's input (not copied), pre-activation, output, and the
    // gradient workspaces. Sized on the first step; reused while the batch size holds.
    const matrix<T>* input_ = nullptr;
    matrix<T> pre_activation_, output_, pre_activation_grad_, input_grad_;
    // bf16 precision only: the weight copy, and the step's bf16 input (converted here when the
    // caller gives fp32, or the caller's), output and dZ.
    matrix<bfloat16> weight_low_, input_low_, output_low_, pre_activation_grad_low_;
    const matrix<bfloat16>* input_low_ptr_ = nullptr;
    // With reproducible_across: the sums over the input and the output features, and their
    // workspaces (otherwise both off).
    reproducible_sums<T> reproducible_;
};

}  // namespace shardnet
