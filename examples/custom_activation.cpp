// custom_activation: a user-defined activation policy (leaky ReLU) plugged into dense<>. A policy
// is a plain struct with the members shardnet::activation_policy names; nothing to register.
//
//   mpiexec -n 2 ./custom_activation
//
// It checks itself: the input gradient the layers compute through the policy's derivative must
// match finite differences of the loss through its forward.
#include <cmath>
#include <iostream>
#include <string_view>

#include "shardnet/comm/collective_main.hpp"
#include "shardnet/shardnet.hpp"

namespace sn = shardnet;

/// max(z, 0.01 z). The scalar functions are all a policy needs; the batch ones are optional and
/// let the layer's element-wise pass run in SIMD registers.
struct leaky_relu {
    static constexpr std::string_view name = "leaky_relu";  // shown in plans and messages
    // Not linear, so shardnet refuses (at compile time) to apply it to a partial sum.
    static constexpr bool is_linear = false;
    static constexpr double slope = 0.01;

    template <class T>
    static T forward(T z) {
        return z > T(0) ? z : T(slope) * z;
    }
    template <class T>
    static T derivative(T z) {
        return z > T(0) ? T(1) : T(slope);
    }
    template <class B>
    static B forward_batch(B z) {
        using T = typename B::value_type;
        return xsimd::select(z > B(T(0)), z, B(T(slope)) * z);
    }
    template <class B>
    static B derivative_batch(B z) {
        using T = typename B::value_type;
        return xsimd::select(z > B(T(0)), B(T(1)), B(T(slope)));
    }
};

// The concept is the documentation of the extension point: a struct that misses a member is
// rejected with a message naming shardnet::activation_policy, not pages of template errors.
static_assert(sn::activation_policy<leaky_relu, float>);
static_assert(sn::activation_policy<leaky_relu, double>);
struct no_derivative {
    static constexpr std::string_view name = "broken";
    static constexpr bool is_linear = false;
    static double forward(double z) { return z; }
};
static_assert(!sn::activation_policy<no_derivative, double>);

int main(int argc, char** argv) {
    // Errors are agreed on by every rank or abort the job: see collective_main.
    return sn::collective_main(argc, argv, "custom_activation", [&](sn::mpi_communicator& world) {
        const std::size_t batch = 3, in = 4, hidden = 7, out = 2;

        sn::dense_options first, second;
        first.layer = 0, first.name = "fc1";
        second.layer = 1, second.name = "fc2";
        sn::dense<double, sn::column_split, leaky_relu> fc1(world, in, hidden, first);
        sn::dense<double, sn::row_split> fc2(world, hidden, out, second);
        // Biases start at zero; a negative one puts some pre-activations below zero, where the
        // slope is the one that matters.
        for (std::size_t j = 0; j < fc1.bias().size(); ++j)
            fc1.bias()(j) = -0.3 * double(fc1.weight_cols().to_global(j) % 3);

        sn::matrix<double> x = sn::matrix<double>::from_shape({batch, in});
        for (std::size_t k = 0; k < x.size(); ++k)
            x.data()[k] = std::sin(1.0 + double(k));

        // loss = 0.5 |y|^2, the same on every rank because fc2's output is replicated.
        auto loss = [&](const sn::matrix<double>& input) {
            const auto& y = fc2.forward(world, fc1.forward(world, input));
            double sum = 0;
            for (std::size_t k = 0; k < y.size(); ++k)
                sum += 0.5 * y.data()[k] * y.data()[k];
            return sum;
        };
        sn::matrix<double> dy = fc2.forward(world, fc1.forward(world, x));  // d loss / d y = y
        const sn::matrix<double> dx = fc1.backward(world, fc2.backward(world, dy));

        double worst = 0;
        const double h = 1e-6;
        for (std::size_t k = 0; k < x.size(); ++k) {
            sn::matrix<double> moved = x;
            moved.data()[k] = x.data()[k] + h;
            const double up = loss(moved);
            moved.data()[k] = x.data()[k] - h;
            const double down = loss(moved);
            worst = std::max(worst, std::abs((up - down) / (2 * h) - dx.data()[k]));
        }
        const bool ok = worst < 1e-6;
        if (world.rank() == 0)
            std::cout << "custom_activation: " << fc1.describe() << " on " << world.size()
                      << " ranks\nlargest difference between backward and finite differences: "
                      << worst << (ok ? " (ok)" : " (MISMATCH)") << "\n";
        return ok ? 0 : 1;
    });
}
