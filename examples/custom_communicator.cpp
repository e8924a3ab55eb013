// custom_communicator: a user-defined communicator policy that logs every collective, plugged
// into a sequential network. Any type with the members shardnet::communicator names can carry a
// network's traffic: a wrapper like this one, a different transport, or a test double.
//
//   mpiexec -n 2 ./custom_communicator
//
// It checks itself: the elements it logged must be the ones the network's plan announced.
#include <cstdint>
#include <iostream>
#include <numeric>
#include <span>
#include <string_view>
#include <type_traits>

#include "shardnet/comm/collective_main.hpp"
#include "shardnet/shardnet.hpp"

namespace sn = shardnet;

namespace {

template <class T>
constexpr std::string_view type_name() {
    if constexpr (std::is_same_v<T, float>) return "float";
    if constexpr (std::is_same_v<T, double>) return "double";
    if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
    if constexpr (std::is_same_v<T, sn::bfloat16>) return "bfloat16";  // bf16 activations
    return "char";
}

/// Forwards to MPI and writes one line per collective to `log` (null: silent). Arithmetic
/// elements (float, double) are summed apart from control ones (int64 flags and shapes that
/// ranks agree on), as the plan counts only the former.
class logging_communicator {
  public:
    explicit logging_communicator(std::ostream* log, sn::mpi_communicator inner = {})
        : inner_(std::move(inner)), log_(log) {}

    std::size_t rank() const { return inner_.rank(); }
    std::size_t size() const { return inner_.size(); }
    void barrier() {
        note<char>("barrier", 0);
        inner_.barrier();
    }
    // A sub-group logs to the same place: collectives of a process_grid's groups show up too.
    logging_communicator split(int color, int key) const {
        return logging_communicator(log_, inner_.split(color, key));
    }

    template <class T>
    void all_reduce(T* data, std::size_t n, sn::reduce_op op) {
        note<T>("all_reduce", n, sn::to_string(op));
        inner_.all_reduce(data, n, op);
    }
    template <class T>
    void broadcast(T* data, std::size_t n, std::size_t root) {
        note<T>("broadcast", n);
        inner_.broadcast(data, n, root);
    }
    template <class T>
    void all_gather(const T* in, std::size_t n, T* out) {
        note<T>("all_gather", n * size());
        inner_.all_gather(in, n, out);
    }
    template <class T>
    void all_gather(const T* in, T* out, std::span<const std::size_t> counts) {
        note<T>("all_gather", std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
        inner_.all_gather(in, out, counts);
    }
    template <class T>
    void reduce_scatter(const T* in, T* out, std::span<const std::size_t> counts) {
        note<T>("reduce_scatter", std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
        inner_.reduce_scatter(in, out, counts);
    }
    // No all_reduce_async: shardnet then uses the blocking all_reduce (no overlap), which is
    // all a logger needs. Offer it to overlap column_split's backward reduction.

    std::size_t arithmetic_elements = 0;

  private:
    template <class T>
    void note(std::string_view what, std::size_t n, std::string_view op = {}) {
        if (std::is_floating_point_v<T> || std::is_same_v<T, sn::bfloat16>)
            arithmetic_elements += n;
        if (log_ == nullptr) return;
        *log_ << "    " << what << " " << type_name<T>() << " x " << n;
        if (!op.empty()) *log_ << " (" << op << ")";
        *log_ << "\n";
    }

    sn::mpi_communicator inner_;
    std::ostream* log_;
};

// Checked where it is defined, so a missing member is reported here and not deep inside a
// layer: the concept names what a communicator must offer.
static_assert(sn::communicator<logging_communicator>);

}  // namespace

int main(int argc, char** argv) {
    // Errors are agreed on by every rank or abort the job: see collective_main.
    return sn::collective_main(argc, argv, "custom_communicator", [&](sn::mpi_communicator& world) {
        const bool root = world.rank() == 0;
        logging_communicator group(root ? &std::cout : nullptr);  // only rank 0 prints its log

        // replicated -> column -> row -> column: the network every partition's collectives show in.
        using net_type = sn::sequential<sn::dense<float, sn::replicated, sn::activation::relu>,
                                        sn::dense<float, sn::column_split, sn::activation::relu>,
                                        sn::dense<float, sn::row_split, sn::activation::relu>,
                                        sn::dense<float, sn::column_split>>;
        if (root) std::cout << "building the network:\n";
        net_type net(group, {8, 16, 32, 16, 10});
        const std::size_t batch = 4;
        if (root) std::cout << net.plan(batch);

        sn::matrix<float> x = sn::matrix<float>::from_shape({batch, 8});
        x.fill(0.5f);
        if (root) std::cout << "forward:\n";
        group.arithmetic_elements = 0;
        const auto& logits = net.forward(group, x);
        if (root) std::cout << "backward:\n";
        sn::matrix<float> dy = logits;  // any gradient of the (sharded) logits will do here
        net.backward(group, dy);

        const std::size_t planned =
            group.size() > 1 ? net.plan(batch).model_parallel_elements() : 0;
        // Over one rank the collectives still run (as copies) but move nothing: the plan says 0.
        const bool ok = group.size() == 1 || group.arithmetic_elements == planned;
        if (root)
            std::cout << "logged " << group.arithmetic_elements
                      << " arithmetic elements, the plan says " << planned
                      << (ok ? " (ok)" : " (MISMATCH)") << "\n";
        return ok ? 0 : 1;
    });
}
