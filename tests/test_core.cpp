// Core pieces on one process: balanced shards, the counter-based generator, initialization
// scales, activations (derivatives, SIMD against scalar) and learning-rate schedules.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "shardnet/core/element_type.hpp"
#include "shardnet/core/grid_shape.hpp"
#include "shardnet/core/random.hpp"
#include "shardnet/core/settings.hpp"
#include "shardnet/core/shard.hpp"
#include "shardnet/io/manifest.hpp"
#include "shardnet/io/output_file.hpp"
#include "shardnet/kernels/elementwise.hpp"
#include "shardnet/layers/activation.hpp"
#include "shardnet/layers/init.hpp"
#include "shardnet/net/sequential.hpp"
#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/row_split.hpp"
#include "shardnet/train/memory_preflight.hpp"
#include "shardnet/train/schedule.hpp"
#include "shardnet/train/shuffle.hpp"

namespace sn = shardnet;
namespace act = shardnet::activation;

TEST_SUITE("serial") {
    TEST_CASE("a model grid is read from RxC, and anything else is refused with the form") {
        CHECK(shardnet::parse_grid_shape("2x3", "--model-grid") == shardnet::grid_shape{2, 3});
        CHECK(shardnet::parse_grid_shape("1x1", "--g") == shardnet::grid_shape{1, 1});
        for (const char* bad :
             {"", "2", "2x", "x2", "0x4", "4x0", "2x3x4", "-1x2", "2 x 2", "1234567x1", "axb"})
            CHECK_THROWS_WITH_AS(shardnet::parse_grid_shape(bad, "--model-grid"),
                                 doctest::Contains("--model-grid: expected RxC"), shardnet::error);
    }

    TEST_CASE("element types are float and double, named by their trait, never by their size") {
        static_assert(shardnet::element_type<float> && shardnet::element_type<double>);
        // A 2-byte or a 4-byte integer type is not an element type, whatever its size.
        static_assert(!shardnet::element_type<std::uint16_t> && !shardnet::element_type<int>);
        CHECK(shardnet::element_traits<float>::name == "float32");
        CHECK(shardnet::element_traits<double>::name == "float64");
        CHECK(shardnet::detail::element_type_name<float>() == "float32");
    }

    TEST_CASE("balanced shards cover every index once, in order, for any n and P") {
        for (std::size_t n = 0; n <= 23; ++n)
            for (std::size_t p = 1; p <= 9; ++p) {
                CAPTURE(n);
                CAPTURE(p);
                std::size_t next = 0;
                for (std::size_t r = 0; r < p; ++r) {
                    const sn::shard_range s = sn::balanced_shard(n, p, r);
                    CHECK(s.begin == next);
                    // The first n % p parts are one larger.
                    CHECK(s.size() == n / p + (r < n % p ? 1 : 0));
                    for (std::size_t g = s.begin; g < s.end; ++g) {
                        CHECK(sn::shard_owner(n, p, g) == r);
                        CHECK(s.to_global(s.to_local(g)) == g);
                    }
                    next = s.end;
                }
                CHECK(next == n);
                const sn::shard_table table(n, p);
                for (std::size_t r = 0; r < p; ++r)
                    CHECK(table.range(r) == sn::balanced_shard(n, p, r));
            }
        // More parts than features: the last parts are empty, and that is fine.
        CHECK(sn::balanced_shard(2, 4, 3).empty());
        CHECK(sn::balanced_shard(2, 4, 1) == sn::shard_range{1, 2});
    }

    TEST_CASE("the generator is a pure function of key and coordinates") {
        const sn::random_key k{42, 3, 0};
        CHECK(sn::uniform_at(k, 5, 7) == sn::uniform_at(k, 5, 7));
        CHECK(sn::uniform_at(k, 5, 7) != sn::uniform_at(k, 7, 5));
        CHECK(sn::uniform_at(k, 5, 7) != sn::uniform_at({43, 3, 0}, 5, 7));
        CHECK(sn::uniform_at(k, 5, 7) != sn::uniform_at({42, 4, 0}, 5, 7));
        CHECK(sn::uniform_at(k, 5, 7) != sn::uniform_at({42, 3, 1}, 5, 7));
        // Indices past 2^32 stay distinct.
        CHECK(sn::uniform_at(k, 1, 0) != sn::uniform_at(k, 1 + (std::uint64_t{1} << 32), 0));
        // Moments of 40000 draws: mean 1/2 and variance 1/12 for the uniform, 0 and 1 for the
        // normal, within about 5 standard errors.
        double su = 0, su2 = 0, sz = 0, sz2 = 0;
        const int n = 40000;
        for (int i = 0; i < n; ++i) {
            const double u = sn::uniform_at(k, std::uint64_t(i), 1);
            const double z = sn::normal_at(k, std::uint64_t(i), 2);
            CHECK((u >= 0.0 && u < 1.0));
            su += u, su2 += u * u, sz += z, sz2 += z * z;
        }
        CHECK(std::abs(su / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
        CHECK(std::abs(su2 / n - su * su / n / n - 1.0 / 12) < 0.005);
        CHECK(std::abs(sz / n) < 5 / std::sqrt(double(n)));
        CHECK(std::abs(sz2 / n - 1.0) < 0.04);
    }

    TEST_CASE("initialization scales follow the global fan-in and fan-out") {
        const std::size_t in = 300, out = 200;
        const sn::random_key k{1, 0, 0};
        auto variance = [&](sn::init_scheme s) {
            double sum = 0, sum2 = 0;
            for (std::size_t i = 0; i < in; ++i)
                for (std::size_t j = 0; j < out; ++j) {
                    const double w = sn::initial_value(s, k, in, out, i, j);
                    sum += w, sum2 += w * w;
                }
            const double n = double(in * out);
            return sum2 / n - (sum / n) * (sum / n);
        };
        CHECK(variance(sn::init_scheme::xavier_uniform) ==
              doctest::Approx(2.0 / (in + out)).epsilon(0.03));
        CHECK(variance(sn::init_scheme::xavier_normal) ==
              doctest::Approx(2.0 / (in + out)).epsilon(0.03));
        CHECK(variance(sn::init_scheme::he_uniform) == doctest::Approx(2.0 / in).epsilon(0.03));
        CHECK(variance(sn::init_scheme::he_normal) == doctest::Approx(2.0 / in).epsilon(0.03));
        CHECK(variance(sn::init_scheme::zeros) == 0.0);
    }

    TEST_CASE_TEMPLATE("activations: derivatives match central differences", A, act::identity,
                       act::relu, act::gelu, act::tanh, act::sigmoid) {
        for (double z = -4.05; z < 4.0; z += 0.1) {  // steps past 0 without landing on it
            const double h = 1e-6;
            const double numeric = (A::forward(z + h) - A::forward(z - h)) / (2 * h);
            CAPTURE(z);
            CHECK(std::abs(A::derivative(z) - numeric) < 1e-8);
        }
        // Saturation never produces NaN.
        for (double z : {-1e4, -700.0, 700.0, 1e4}) {
            CHECK(std::isfinite(A::forward(z)));
            CHECK(std::isfinite(A::derivative(z)));
        }
    }

    TEST_CASE_TEMPLATE("activations: SIMD kernels agree with the scalar definitions", T, float,
                       double) {
        auto check_policy = [](auto policy) {
            using A = decltype(policy);
            std::vector<T> z(203), y(203), dy(203), dz(203);
            for (std::size_t i = 0; i < z.size(); ++i) {
                z[i] = T(-9.0 + 0.09 * double(i));
                dy[i] = T(0.5 + 0.01 * double(i));
            }
            sn::detail::activation_forward<A>(z.data(), y.data(), z.size());
            sn::detail::activation_backward<A>(z.data(), dy.data(), dz.data(), z.size());
            // xsimd's tanh and exp are accurate to a few ulps; allow 16 ulps of the scale.
            const double tol = 16 * std::numeric_limits<T>::epsilon();
            double worst = 0;
            for (std::size_t i = 0; i < z.size(); ++i) {
                worst = std::max(worst, std::abs(double(y[i]) - double(A::forward(z[i]))) /
                                            (1 + std::abs(double(A::forward(z[i])))));
                worst =
                    std::max(worst, std::abs(double(dz[i]) - double(dy[i] * A::derivative(z[i]))) /
                                        (1 + std::abs(double(dz[i]))));
            }
            CAPTURE(A::name);
            CHECK(worst <= tol);
        };
        check_policy(act::relu{});
        check_policy(act::gelu{});
        check_policy(act::tanh{});
        check_policy(act::sigmoid{});
        check_policy(act::identity{});
    }

    TEST_CASE("learning-rate schedules") {
        CHECK(sn::lr_schedule::constant().at(0.1, 1000) == 0.1);
        const auto step = sn::lr_schedule::step_decay(10, 0.5);
        CHECK(step.at(1.0, 9) == 1.0);
        CHECK(step.at(1.0, 10) == 0.5);
        CHECK(step.at(1.0, 25) == 0.25);
        const auto cosine = sn::lr_schedule::cosine(4, 104, 0.1);
        CHECK(cosine.at(1.0, 0) == doctest::Approx(0.25));
        CHECK(cosine.at(1.0, 3) == doctest::Approx(1.0));
        CHECK(cosine.at(1.0, 4) == doctest::Approx(1.0));
        CHECK(cosine.at(1.0, 54) == doctest::Approx(0.55));
        CHECK(cosine.at(1.0, 104) == doctest::Approx(0.1));
        CHECK(cosine.at(1.0, 500) == doctest::Approx(0.1));
    }

    TEST_CASE("epoch orders are permutations that depend only on seed and epoch") {
        std::vector<std::size_t> a, b, c;
        sn::epoch_order(1000, 7, 2, a);
        sn::epoch_order(1000, 7, 2, b);
        sn::epoch_order(1000, 7, 3, c);
        CHECK(a == b);
        CHECK(a != c);
        std::vector<bool> seen(1000, false);
        for (std::size_t i : a)
            seen[i] = true;
        CHECK(std::count(seen.begin(), seen.end(), true) == 1000);
    }
}

// Settings, run identities and output files: what the reliability rules are built on.
namespace {

enum class colour { red, green };
struct inner {
    int a = 1;
    double b = 0.5;
};
struct sample_options {
    std::size_t count = 3;
    double rate = 0.1;
    bool flag = false;
    colour c = colour::green;
    std::string name = "x";
    std::optional<bool> maybe;
    std::vector<std::int64_t> widths = {4, 5};
    inner nested;
    std::ostream* out = nullptr;
};
constexpr shardnet::setting_field sample_fields[] = {
    {"count", shardnet::setting_role::identifies_run},
    {"rate", shardnet::setting_role::identifies_run},
    {"flag", shardnet::setting_role::same_on_ranks},
    {"c", shardnet::setting_role::identifies_run},
    {"name", shardnet::setting_role::same_on_ranks},
    {"maybe", shardnet::setting_role::identifies_run},
    {"widths", shardnet::setting_role::identifies_run},
    {"nested", shardnet::setting_role::identifies_run},
    {"out", shardnet::setting_role::per_rank},
};

}  // namespace

TEST_SUITE("serial") {
    TEST_CASE("options structs are described field by field, none left out") {
        static_assert(shardnet::detail::field_count<sample_options>() == 9);
        sample_options o;
        const auto run =
            shardnet::describe_fields(o, sample_fields, shardnet::setting_role::identifies_run);
        CHECK(run.text() == "count=3\nrate=0.1\nc=1\nmaybe=none\nwidths=4,5\nnested={1,0.5}\n");
        const auto agree =
            shardnet::describe_fields(o, sample_fields, shardnet::setting_role::same_on_ranks);
        CHECK(agree.entries().size() == 8);  // everything but the per-rank stream
        CHECK(agree.get("name") == std::optional<std::string>("x"));
        CHECK(shardnet::settings::parse(run.text()) == run);

        sample_options other = o;
        other.rate = 0.01;
        other.nested.a = 2;
        const auto theirs =
            shardnet::describe_fields(other, sample_fields, shardnet::setting_role::identifies_run);
        CHECK(shardnet::setting_differences(run, "here", theirs, "there") ==
              "rate is 0.1 here, 0.01 there; nested is {1,0.5} here, {2,0.5} there");
        CHECK(shardnet::setting_differences(run, "a", run, "b").empty());
        shardnet::settings missing;
        missing.set("count", "3");
        CHECK(shardnet::setting_differences(missing, "a", run, "b", 1) ==
              "rate is unset a, 0.1 b (and 4 more)");
    }

    TEST_CASE("settings keep one line per entry whatever the text") {
        shardnet::settings s;
        s.set("a=b", "line one\nline two");
        s.set("k", "v");
        s.set("k", "w");  // replaces
        CHECK(s.text() == "a\\=b=line one\\nline two\nk=w\n");
        s.set("path", "C:\\new\\n");  // a backslash before an n is not a newline
        CHECK(shardnet::settings::parse(s.text()) == s);
        CHECK(shardnet::settings::parse(s.text()).get("a=b") ==
              std::optional<std::string>("line one\nline two"));
        CHECK(shardnet::detail::setting_value(std::vector<std::string>{"a,b"}) !=
              shardnet::detail::setting_value(std::vector<std::string>{"a", "b"}));
        CHECK(shardnet::shortest_decimal(0.984) == "0.984");
        CHECK(shardnet::shortest_decimal(2.52215887266605) == "2.52215887266605");
        CHECK(std::stod(shardnet::shortest_decimal(1.0 / 3)) == 1.0 / 3);
    }

    TEST_CASE("outputs are checked before a run and written whole or not at all") {
        namespace fs = std::filesystem;
        const fs::path dir =
            fs::temp_directory_path() / ("shardnet-out-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        const fs::path input = dir / "train.csv";
        shardnet::write_file_atomically(input, "0,1\n", "test");
        auto error_of = [](auto&& f) -> std::string {
            try {
                f();
            } catch (const shardnet::error& e) {
                return e.what();
            }
            return "";
        };
        CHECK(error_of([&] {
                  shardnet::check_output_path(input, "--metrics", {input});
              }).find("is also an input of this run") != std::string::npos);
        // The same file by another name is still the input.
        CHECK_FALSE(error_of([&] {
                        shardnet::check_output_path(dir / "." / "train.csv", "--metrics", {input});
                    }).empty());
        CHECK(error_of([&] {
                  shardnet::check_output_path(dir / "no" / "m.csv", "--metrics", {});
              }).find("does not exist") != std::string::npos);
        CHECK(error_of([&] {
                  shardnet::check_output_path(dir, "--metrics", {});
              }).find("is a directory") != std::string::npos);
        CHECK(error_of([&] {
                  shardnet::check_output_path(dir / "m.csv", "--metrics", {input});
              }).empty());
        CHECK_FALSE(fs::exists(dir / "m.csv"));  // checking creates nothing

        CHECK(error_of([&] { shardnet::write_file_atomically("/dev/full", "x", "--losses"); }) ==
              "--losses '/dev/full' cannot be written: No space left on device");
        shardnet::write_file_atomically(input, "new\n", "test");
        std::ifstream in(input);
        std::string line;
        std::getline(in, line);
        CHECK(line == "new");
        CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
        fs::remove_all(dir);
    }

    TEST_CASE("the memory preflight counts each rank's shards") {
        using net = shardnet::sequential<
            shardnet::dense<float, shardnet::column_split, shardnet::activation::relu>,
            shardnet::dense<float, shardnet::row_split, shardnet::activation::identity>>;
        const std::vector<std::size_t> widths = {100, 1000, 10};
        const auto one = shardnet::estimate_training_memory<net>(widths, 1, 0, 32, 2);
        CHECK(one.weights == doctest::Approx(4.0 * (100 * 1000 + 1000 + 1000 * 10 + 10)));
        CHECK(one.optimizer_state == doctest::Approx(2 * one.weights));
        const auto quarter = shardnet::estimate_training_memory<net>(widths, 4, 3, 32, 2);
        CHECK(quarter.weights == doctest::Approx(4.0 * (100 * 250 + 250 + 250 * 10 + 10)));
        CHECK(quarter.total() < one.total());
        // Widths whose product overflows 64 bits still give a (huge) finite estimate.
        const auto huge = shardnet::estimate_training_memory<net>(
            {std::size_t{1} << 40, std::size_t{1} << 40, 10}, 1, 0, 1, 0);
        CHECK(huge.weights > 1e24);
    }
}
