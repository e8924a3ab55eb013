// Checkpoints: round trips on one grid, resharding to other rank counts, grids and partitions,
// atomic publication under an injected crash, keep-last-K, and a corpus of broken files that
// each give one clear error on every rank with the model untouched.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "shardnet/comm/local_communicator.hpp"
#include "shardnet/comm/mpi_communicator.hpp"
#include "shardnet/comm/process_grid.hpp"
#include "shardnet/io/checkpoint.hpp"
#include "shardnet/net/network.hpp"
#include "shardnet/net/sequential.hpp"
#include "shardnet/net/visit_layers.hpp"
#include "shardnet/partition/block2d.hpp"
#include "shardnet/partition/column_split.hpp"
#include "shardnet/partition/replicated.hpp"
#include "shardnet/partition/row_split.hpp"
#include "shardnet/train/optimizer.hpp"
#include "shardnet/train/synthetic.hpp"
#include "shardnet/train/trainer.hpp"

namespace sn = shardnet;
namespace act = shardnet::activation;
namespace fs = std::filesystem;

namespace {

// Saved as column, row, column (the Megatron pair and a sharded classifier)...
template <class T>
using saved_net = sn::sequential<sn::dense<T, sn::column_split, act::relu>,
                                 sn::dense<T, sn::row_split, act::relu>,
                                 sn::dense<T, sn::column_split, act::identity>>;
// ...loaded with every layer's partition changed.
template <class T>
using resharded_net = sn::sequential<sn::dense<T, sn::row_split, act::relu>,
                                     sn::dense<T, sn::column_split, act::relu>,
                                     sn::dense<T, sn::replicated, act::identity>>;
// ...and as 2D blocks, orientation alternating.
template <class T>
using grid_net = sn::sequential<sn::dense<T, sn::block2d, act::relu>,
                                sn::dense<T, sn::block2d_transposed, act::relu>,
                                sn::dense<T, sn::block2d, act::identity>>;
// Widths that divide by nothing, so shards are uneven; 7 > 4 ranks, 3 < 4 ranks (empty shards).
const std::vector<std::size_t> widths = {6, 7, 5, 3};

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

/// A fresh directory with the same name on every rank of `comm` (rank 0 creates it).
template <class Comm>
fs::path shared_temp_dir(Comm& comm, const char* tag) {
    std::string name;
    if (comm.rank() == 0) {
        std::string pattern =
            (fs::temp_directory_path() / (std::string("shardnet-") + tag + "-XXXXXX")).string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        name = pattern;
    }
    auto length = static_cast<std::int64_t>(name.size());
    comm.broadcast(&length, 1, 0);
    name.resize(static_cast<std::size_t>(length));
    comm.broadcast(name.data(), name.size(), 0);
    return name;
}

template <class T>
sn::matrix<T> as_row(const sn::vector<T>& v) {
    sn::matrix<T> m = sn::matrix<T>::from_shape({1, v.size()});
    std::copy(v.begin(), v.end(), m.begin());
    return m;
}

template <class Net, class Comm>
std::vector<sn::matrix<typename Net::value_type>> gathered(Net& net, Comm& group) {
    std::vector<sn::matrix<typename Net::value_type>> out;
    sn::visit_layers(net, [&](auto& l, auto) { out.push_back(l.gather_weight(group)); });
    sn::visit_layers(net, [&](auto& l, auto) { out.push_back(as_row(l.gather_bias(group))); });
    return out;
}

template <class T>
bool bitwise_equal(const std::vector<sn::matrix<T>>& a, const std::vector<sn::matrix<T>>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].shape() != b[i].shape()) return false;
        if (std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(T)) != 0) return false;
    }
    return true;
}

template <class T>
sn::dataset<T> small_data(std::size_t samples, std::uint64_t seed) {
    sn::synthetic_options o;
    o.samples = samples;
    o.width = widths.front();
    o.classes = widths.back();
    o.seed = seed;
    return sn::make_synthetic<T>(o);
}

template <class Net, class Comm>
std::vector<double> train_epochs(sn::process_grid<Comm>& grid, Net& net,
                                 sn::optimizer<typename Net::value_type>& opt,
                                 const sn::dataset<typename Net::value_type>& data,
                                 std::size_t epochs, std::uint64_t seed) {
    sn::trainer_options o;
    o.epochs = epochs;
    o.batch = 8;
    o.seed = seed;
    o.report = false;
    sn::trainer trainer(grid, net, opt, o);
    return trainer.fit(data).step_losses;
}

/// Every rank of `comm` got the same text.
template <class Comm>
bool same_everywhere(Comm& comm, const std::string& text) {
    return sn::same_on_all_ranks(comm, std::hash<std::string>{}(text));
}

/// The message of the shardnet::error `f` throws, or "" if it throws none.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const sn::error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_SUITE("mpi") {
    TEST_CASE("a checkpoint round-trips weights, optimizer state and position bitwise") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "roundtrip");
        const auto data = small_data<float>(40, 3);
        sn::network_options options;
        options.seed = 11;
        saved_net<float> net(grid.model(), widths, options);
        sn::optimizer<float> opt(sn::adam(1e-2));
        train_epochs(grid, net, opt, data, 1, 4);

        sn::training_position position;
        position.step = opt.updates();
        position.epoch = 1;
        position.seed = 4;
        position.step_losses = {1.5, 0.25};
        sn::checkpoint_options small_records;
        small_records.record_bytes = 8;  // one row per record: exercises the record table
        const fs::path saved =
            sn::save_checkpoint(grid, dir, opt.updates(), net, opt, &position, small_records);
        CHECK(saved == dir / sn::checkpoint_name(opt.updates()));
        CHECK(fs::exists(saved / "manifest.bin"));
        CHECK(sn::latest_checkpoint(dir) == saved);

        options.seed = 12;  // different weights until loaded
        saved_net<float> copy(grid.model(), widths, options);
        sn::optimizer<float> copy_opt(sn::adam(1e-2));
        CHECK_FALSE(bitwise_equal(gathered(net, grid.model()), gathered(copy, grid.model())));
        const auto m = sn::load_checkpoint(grid, saved, copy, copy_opt);
        CHECK(bitwise_equal(gathered(net, grid.model()), gathered(copy, grid.model())));
        CHECK(copy_opt.updates() == opt.updates());
        CHECK(m.has_position == 1);
        CHECK(m.position.epoch == 1);
        CHECK(m.position.step_losses == std::vector<double>{1.5, 0.25});
        CHECK(m.model_parallel == world.size());

        // Same state, same next steps: the optimizer moments came back too.
        const auto a = train_epochs(grid, net, opt, data, 1, 5);
        const auto b = train_epochs(grid, copy, copy_opt, data, 1, 5);
        CHECK(a == b);
        CHECK(bitwise_equal(gathered(net, grid.model()), gathered(copy, grid.model())));
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE(
        "saved on 1 x P, loads on every smaller world, on 2 x P/2 and with other partitions") {
        sn::mpi_communicator world;
        const std::size_t P = world.size();
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "reshard");
        const auto data = small_data<double>(48, 6);
        sn::network_options options;
        options.seed = 21;
        saved_net<double> net(grid.model(), widths, options);
        sn::optimizer<double> opt(sn::adam(1e-2));
        train_epochs(grid, net, opt, data, 1, 2);
        const fs::path saved = sn::save_checkpoint(grid, dir, 6, net, opt);
        const auto reference = gathered(net, grid.model());
        // Continuing on the original grid: the reference for continuing anywhere else.
        const auto continued = train_epochs(grid, net, opt, data, 1, 3);

        struct target {
            std::size_t ranks, data_parallel;
        };
        std::vector<target> targets;
        for (std::size_t p = 1; p <= P; ++p)
            targets.push_back({p, 1});
        if (P % 2 == 0) targets.push_back({P, 2});
        for (const auto& t : targets) {
            CAPTURE(t.ranks);
            CAPTURE(t.data_parallel);
            const bool member = world.rank() < t.ranks;
            sn::mpi_communicator sub = world.split(member ? 0 : 1, static_cast<int>(world.rank()));
            if (!member) continue;
            sn::process_grid<sn::mpi_communicator> g(sub, t.data_parallel);
            options.seed = 99;
            resharded_net<double> other(g.model(), widths, options);
            sn::optimizer<double> other_opt(sn::adam(1e-2));
            sn::load_checkpoint(g, saved, other, other_opt);
            CHECK(bitwise_equal(reference, gathered(other, g.model())));
            // Same math on another grid: equal up to the order of float reductions.
            const auto losses = train_epochs(g, other, other_opt, data, 1, 3);
            REQUIRE(losses.size() == continued.size());
            for (std::size_t i = 0; i < losses.size(); ++i)
                CHECK(losses[i] == doctest::Approx(continued[i]).epsilon(1e-12));
        }
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE("2D checkpoints reshard to 1D layouts, other grids and smaller worlds, and back") {
        sn::mpi_communicator world;
        const std::size_t P = world.size();
        // A grid with more than one row wherever the world allows: 2 x 2, else P x 1.
        const sn::grid_shape saved_grid = P == 4 ? sn::grid_shape{2, 2} : sn::grid_shape{P, 1};
        sn::process_grid<sn::mpi_communicator> grid(world, 1, saved_grid);
        const fs::path dir = shared_temp_dir(world, "reshard2d");
        const auto data = small_data<double>(48, 6);
        sn::network_options options;
        options.seed = 23;
        grid_net<double> net(grid.model(), widths, options);
        sn::optimizer<double> opt(sn::adam(1e-2));
        train_epochs(grid, net, opt, data, 1, 2);
        const fs::path saved = sn::save_checkpoint(grid, dir, 6, net, opt);
        const auto reference = gathered(net, grid.model());
        const auto continued = train_epochs(grid, net, opt, data, 1, 3);

        auto check_loaded = [&](auto& g, auto& other) {
            sn::optimizer<double> other_opt(sn::adam(1e-2));
            sn::load_checkpoint(g, saved, other, other_opt);
            CHECK(bitwise_equal(reference, gathered(other, g.model())));
            const auto losses = train_epochs(g, other, other_opt, data, 1, 3);
            REQUIRE(losses.size() == continued.size());
            for (std::size_t i = 0; i < losses.size(); ++i)
                CHECK(losses[i] == doctest::Approx(continued[i]).epsilon(1e-12));
        };
        for (std::size_t p = 1; p <= P; ++p) {
            const bool member = world.rank() < p;
            sn::mpi_communicator sub = world.split(member ? 0 : 1, static_cast<int>(world.rank()));
            if (!member) continue;
            CAPTURE(p);
            options.seed = 98;
            {  // into 1D layouts on a 1 x p grid
                sn::process_grid<sn::mpi_communicator> g(sub);
                saved_net<double> other(g.model(), widths, options);
                check_loaded(g, other);
            }
            for (std::size_t rows = 1; rows <= p; ++rows) {  // into 2D blocks on every grid
                if (p % rows != 0) continue;
                CAPTURE(rows);
                sn::process_grid<sn::mpi_communicator> g(sub, 1, {rows, p / rows});
                grid_net<double> other(g.model(), widths, options);
                check_loaded(g, other);
            }
        }
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE("checkpoints move between sequential<> and network<> with the same layers, bitwise") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "runtime");
        const auto data = small_data<double>(48, 6);
        sn::network_options options;
        options.seed = 31;
        using runtime_net = sn::network<double, sn::model_group<sn::mpi_communicator>>;
        const std::vector<sn::layer_spec> specs = {
            {"column", "relu"}, {"row", "relu"}, {"column", "identity"}};
        saved_net<double> fixed(grid.model(), widths, options);
        sn::optimizer<double> opt(sn::adam(1e-2));
        train_epochs(grid, fixed, opt, data, 1, 2);
        const fs::path from_fixed = sn::save_checkpoint(grid, dir / "fixed", 6, fixed, opt);

        options.seed = 77;  // different initial weights: the load must replace them all
        runtime_net chosen(grid.model(), widths, specs, options);
        sn::optimizer<double> chosen_opt(sn::adam(1e-2));
        sn::load_checkpoint(grid, from_fixed, chosen, chosen_opt);
        CHECK(bitwise_equal(gathered(fixed, grid.model()), gathered(chosen, grid.model())));
        // The same math from the same state: the same losses, bit for bit.
        CHECK(train_epochs(grid, fixed, opt, data, 1, 3) ==
              train_epochs(grid, chosen, chosen_opt, data, 1, 3));

        const fs::path from_chosen =
            sn::save_checkpoint(grid, dir / "chosen", 12, chosen, chosen_opt);
        saved_net<double> back(grid.model(), widths, options);
        sn::optimizer<double> back_opt(sn::adam(1e-2));
        sn::load_checkpoint(grid, from_chosen, back, back_opt);
        CHECK(bitwise_equal(gathered(chosen, grid.model()), gathered(back, grid.model())));
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE("a crash before publication leaves the previous checkpoint and hides the new one") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "crash");
        sn::network_options options;
        options.seed = 31;
        saved_net<float> net(grid.model(), widths, options);
        sn::optimizer<float> opt(sn::sgd(0.1, 0.9));
        const fs::path first = sn::save_checkpoint(grid, dir, 1, net, opt);
        const auto before = gathered(net, grid.model());

        // Change the weights, then "crash" after every file of step 2 is written and synced.
        net.template layer<0>().weight().fill(7.0f);
        sn::checkpoint_options crash;
        crash.before_publish = [] { throw sn::error("injected crash before publish"); };
        const std::string message =
            error_of([&] { sn::save_checkpoint(grid, dir, 2, net, opt, nullptr, crash); });
        CHECK(message == "injected crash before publish");
        CHECK(same_everywhere(world, message));
        CHECK(sn::list_checkpoints(dir) == std::vector<std::uint64_t>{1});
        CHECK(sn::latest_checkpoint(dir) == first);
        // A failed save removes what it staged (after a full disk, the space comes back now);
        // a real crash leaves it behind, for the next save to clear.
        world.barrier();  // rank 0 removes it
        CHECK_FALSE(fs::exists(dir / (".tmp-" + sn::checkpoint_name(2))));
        world.barrier();  // every rank looked before rank 0 makes a leftover of its own
        if (world.rank() == 0) {
            fs::create_directories(dir / (".tmp-" + sn::checkpoint_name(2)));
            write_bytes(dir / (".tmp-" + sn::checkpoint_name(2)) / "manifest.bin", "left over");
        }

        sn::load_checkpoint(grid, first, net, opt);
        CHECK(bitwise_equal(before, gathered(net, grid.model())));

        // Saves of other steps leave the leftover alone (it could be another saver's staging);
        // keep-last-K prunes. The lock a run takes on the directory clears it.
        sn::checkpoint_options keep_two;
        keep_two.keep = 2;
        for (std::uint64_t step = 3; step <= 5; ++step)
            sn::save_checkpoint(grid, dir, step, net, opt, nullptr, keep_two);
        CHECK(sn::list_checkpoints(dir) == std::vector<std::uint64_t>{4, 5});
        CHECK(fs::exists(dir / (".tmp-" + sn::checkpoint_name(2))));
        world.barrier();
        if (world.rank() == 0) {
            // A save killed between its two renames: its complete copy is published.
            fs::rename(dir / sn::checkpoint_name(5), dir / (".tmp-" + sn::checkpoint_name(5)));
            sn::checkpoint_directory_lock lock(dir);
            CHECK_FALSE(fs::exists(dir / (".tmp-" + sn::checkpoint_name(2))));
            CHECK(sn::list_checkpoints(dir) == std::vector<std::uint64_t>{4, 5});
        }
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE("a broken shard of one rank stops every rank with one message, weights untouched") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "broken");
        sn::network_options options;
        options.seed = 41;
        saved_net<float> net(grid.model(), widths, options);
        sn::optimizer<float> opt(sn::adam());
        const fs::path saved = sn::save_checkpoint(grid, dir, 1, net, opt);
        world.barrier();
        const fs::path victim = saved / sn::detail::shard_file_name(world.size() - 1);
        if (world.rank() == 0) {
            std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
            f.seekp(30);
            f.put('\x5a');
        }
        world.barrier();
        options.seed = 42;
        saved_net<float> other(grid.model(), widths, options);
        sn::optimizer<float> other_opt(sn::adam());
        const auto before = gathered(other, grid.model());
        const std::string message =
            error_of([&] { sn::load_checkpoint(grid, saved, other, other_opt); });
        CHECK(message.find(victim.string()) != std::string::npos);
        CHECK(message.find("checksum mismatch") != std::string::npos);
        CHECK(same_everywhere(world, message));
        CHECK(bitwise_equal(before, gathered(other, grid.model())));
        CHECK(other_opt.updates() == 0);
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }
}

namespace {

using tiny_net = sn::sequential<sn::dense<float, sn::column_split, act::relu>,
                                sn::dense<float, sn::row_split, act::identity>>;
const std::vector<std::size_t> tiny_widths = {4, 5, 3};

/// A valid checkpoint of a trained tiny network, made once per process.
struct corpus {
    sn::local_communicator alone;
    sn::process_grid<sn::local_communicator> grid{alone};
    fs::path dir, good;
    corpus() {
        std::string pattern = (fs::temp_directory_path() / "shardnet-corpus-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        dir = pattern;
        sn::network_options o;
        o.seed = 3;
        tiny_net net(grid.model(), tiny_widths, o);
        sn::optimizer<float> opt(sn::adam());
        sn::checkpoint_options c;
        c.record_bytes = 16;  // several records per parameter
        good = sn::save_checkpoint(grid, dir, 7, net, opt, nullptr, c);
    }
    ~corpus() { fs::remove_all(dir); }

    /// A copy of the good checkpoint, changed by `mutate(manifest_path, shard_path)`.
    fs::path variant(const std::string& name,
                     const std::function<void(const fs::path&, const fs::path&)>& mutate) const {
        const fs::path copy = dir / name;
        fs::remove_all(copy);
        fs::copy(good, copy);
        mutate(copy / "manifest.bin", copy / sn::detail::shard_file_name(0));
        return copy;
    }

    /// Loads `path` into a fresh network and returns the error message; checks that a failed
    /// load left weights and optimizer untouched.
    std::string load_error(const fs::path& path) {
        sn::network_options o;
        o.seed = 4;
        tiny_net net(grid.model(), tiny_widths, o);
        sn::optimizer<float> opt(sn::adam());
        const std::uint32_t before = sn::local_weights_checksum(net);
        const std::string message = error_of([&] { sn::load_checkpoint(grid, path, net, opt); });
        if (!message.empty()) {
            CHECK(sn::local_weights_checksum(net) == before);
            CHECK(opt.updates() == 0);
        }
        return message;
    }
};

/// The payload of a manifest re-framed with a correct CRC: reaches the deserializer.
std::string reframed(std::string bytes) {
    const std::uint32_t crc = sn::crc32::of(bytes.data() + 32, bytes.size() - 32);
    std::memcpy(bytes.data() + 12, &crc, 4);
    return bytes;
}

}  // namespace

TEST_SUITE("serial") {
    TEST_CASE("checkpoint corpus: every broken file gives one clear error, never a crash") {
        corpus c;
        CHECK(c.load_error(c.good).empty());
        const std::size_t manifest_size = fs::file_size(c.good / "manifest.bin");
        const std::size_t shard_size = fs::file_size(c.good / sn::detail::shard_file_name(0));

        for (std::size_t cut : {std::size_t{0}, std::size_t{10}, std::size_t{31}, std::size_t{32},
                                std::size_t{40}, manifest_size / 2, manifest_size - 1}) {
            CAPTURE(cut);
            const auto p = c.variant("manifest-cut", [&](const fs::path& m, const fs::path&) {
                fs::resize_file(m, cut);
            });
            const std::string e = c.load_error(p);
            CHECK(e.find((p / "manifest.bin").string()) != std::string::npos);
            CHECK(e.find("truncated") != std::string::npos);
        }
        for (std::size_t cut :
             {std::size_t{0}, std::size_t{10}, std::size_t{24}, shard_size / 2, shard_size - 1}) {
            CAPTURE(cut);
            const auto p = c.variant(
                "shard-cut", [&](const fs::path&, const fs::path& s) { fs::resize_file(s, cut); });
            const std::string e = c.load_error(p);
            CHECK(e.find((p / sn::detail::shard_file_name(0)).string()) != std::string::npos);
            CHECK(e.find("truncated") != std::string::npos);
        }
        // Bit flips anywhere: the CRCs catch every one (the header's own fields fail earlier).
        sn::random_key key{17, 0, 0};
        for (std::uint64_t i = 0; i < 40; ++i) {
            const bool in_manifest = i % 2 == 0;
            const std::size_t size = in_manifest ? manifest_size : shard_size;
            const auto at = static_cast<std::size_t>(sn::uniform_at(key, i, 0) * double(size));
            const int bit = static_cast<int>(sn::uniform_at(key, i, 1) * 8);
            CAPTURE(in_manifest);
            CAPTURE(at);
            const auto p = c.variant("flip", [&](const fs::path& m, const fs::path& s) {
                const fs::path& f = in_manifest ? m : s;
                std::string bytes = read_bytes(f);
                bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit));
                write_bytes(f, bytes);
            });
            const std::string e = c.load_error(p);
            CAPTURE(e);
            // The message names the file that was damaged (every path holds "shard", so the
            // word alone would prove nothing).
            const fs::path damaged =
                p / (in_manifest ? std::string("manifest.bin") : sn::detail::shard_file_name(0));
            CHECK(e.find(damaged.string() + "'") != std::string::npos);
            CHECK(e.find("checkpoint") == 0);
        }
        auto expect = [&](const char* name, const char* problem,
                          const std::function<void(const fs::path&, const fs::path&)>& mutate) {
            const std::string e = c.load_error(c.variant(name, mutate));
            CAPTURE(e);
            CHECK(e.find(name) != std::string::npos);  // the message names the file
            CHECK(e.find(problem) != std::string::npos);
        };
        expect("wrong-magic", "wrong magic", [](const fs::path& m, const fs::path&) {
            std::string bytes = read_bytes(m);
            bytes[0] = 'X';
            write_bytes(m, bytes);
        });
        expect("shard-magic", "not a shardnet shard file (wrong magic)",
               [](const fs::path&, const fs::path& s) {
                   std::string bytes = read_bytes(s);
                   bytes[0] = 'X';
                   write_bytes(s, bytes);
               });
        expect("huge-payload", "truncated: the header announces 1099511627776",
               [](const fs::path& m, const fs::path&) {
                   std::string bytes = read_bytes(m);
                   const std::uint64_t huge = std::uint64_t{1} << 40;
                   std::memcpy(bytes.data() + 16, &huge, 8);
                   write_bytes(m, bytes);
               });
        // A length field claiming a terabyte behind a valid checksum: refused before allocating.
        expect("huge-count", "claims 1099511627776 entries",
               [](const fs::path& m, const fs::path&) {
                   std::string bytes = read_bytes(m);
                   const std::uint64_t huge = std::uint64_t{1} << 40;
                   std::memcpy(bytes.data() + 32 + 4, &huge, 8);  // the library version's length
                   write_bytes(m, reframed(bytes));
               });
        expect("missing-shard", "missing or unreadable",
               [](const fs::path&, const fs::path& s) { fs::remove(s); });
        // Random bytes behind a valid checksum: the deserializer itself must hold.
        for (std::uint64_t i = 0; i < 200; ++i) {
            const auto p = c.variant("garbled", [&](const fs::path& m, const fs::path&) {
                std::string bytes = read_bytes(m);
                const auto at = 32 + static_cast<std::size_t>(sn::uniform_at(key, 100 + i, 0) *
                                                              double(bytes.size() - 32));
                bytes[at] = static_cast<char>(sn::uniform_at(key, 100 + i, 1) * 256);
                write_bytes(m, reframed(bytes));
            });
            const std::string e = c.load_error(p);
            if (!e.empty()) CHECK(e.find("checkpoint") == 0);
        }
    }

    TEST_CASE("a checkpoint of another model, element type or optimizer is refused by name") {
        corpus c;
        sn::network_options o;
        {
            tiny_net wider(c.grid.model(), {4, 6, 3}, o);
            const std::string e = error_of([&] { sn::load_checkpoint(c.grid, c.good, wider); });
            CHECK(e.find(c.good.string()) != std::string::npos);
            CHECK(e.find("layer 1 is 4 -> 5 with bias, this network's is 4 -> 6") !=
                  std::string::npos);
        }
        {
            sn::sequential<sn::dense<double, sn::column_split, act::relu>,
                           sn::dense<double, sn::row_split, act::identity>>
                in_double(c.grid.model(), tiny_widths, o);
            const std::string e = error_of([&] { sn::load_checkpoint(c.grid, c.good, in_double); });
            CHECK(e.find("holds float32 values, the network uses float64") != std::string::npos);
        }
        {
            sn::sequential<sn::dense<float, sn::column_split, act::tanh>,
                           sn::dense<float, sn::row_split, act::identity>>
                other_activation(c.grid.model(), tiny_widths, o);
            const std::string e =
                error_of([&] { sn::load_checkpoint(c.grid, c.good, other_activation); });
            CHECK(e.find("layer 1 uses activation relu") != std::string::npos);
        }
        {
            tiny_net net(c.grid.model(), tiny_widths, o);
            sn::optimizer<float> momentum(sn::sgd(0.1, 0.9));
            const std::string e =
                error_of([&] { sn::load_checkpoint(c.grid, c.good, net, momentum); });
            CHECK(e.find("optimizer 'adam'") != std::string::npos);
            // Weights only (inference) needs no optimizer state.
            CHECK(error_of([&] { sn::load_checkpoint(c.grid, c.good, net); }).empty());
        }
    }
}

TEST_SUITE("mpi") {
    TEST_CASE("a non-finite gradient stops every rank naming the step, or the step is skipped") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        auto data = small_data<float>(40, 8);
        data.features(13, 2) = std::numeric_limits<float>::quiet_NaN();  // poisons one batch
        sn::network_options options;
        options.seed = 51;
        {
            saved_net<float> net(grid.model(), widths, options);
            sn::optimizer<float> opt(sn::adam(1e-2));
            const std::string e = error_of([&] { train_epochs(grid, net, opt, data, 1, 9); });
            CAPTURE(e);
            // relu turns the NaN input into a finite loss; only the gradient check sees it.
            CHECK(e.find("trainer: a gradient became non-finite (NaN or Inf) at step ") == 0);
            CHECK(same_everywhere(world, e));
        }
        {
            saved_net<float> net(grid.model(), widths, options);
            sn::optimizer<float> opt(sn::adam(1e-2));
            sn::trainer_options o;
            o.epochs = 2;
            o.batch = 8;
            o.seed = 9;
            o.report = false;
            o.non_finite = sn::non_finite_policy::skip_step;
            sn::trainer trainer(grid, net, opt, o);
            const auto result = trainer.fit(data);
            CHECK(result.skipped_steps == 2);  // the poisoned batch, once per epoch
            CHECK(opt.updates() == result.step_losses.size() - 2);
            for (const auto& p : net.parameters())
                for (std::size_t i = 0; i < p.size; ++i)
                    CHECK(std::isfinite(p.value[i]));
            CHECK(std::isfinite(result.epochs.back().train_loss));
        }
    }

    TEST_CASE("ranks started with different training options stop together") {
        sn::mpi_communicator world;
        if (world.size() > 1) {
            sn::process_grid<sn::mpi_communicator> grid(world);
            const auto data = small_data<float>(16, 8);
            saved_net<float> net(grid.model(), widths);
            sn::optimizer<float> opt(sn::adam(1e-2));
            const std::uint64_t seed = world.rank() == 1 ? 2 : 1;
            const std::string e = error_of([&] { train_epochs(grid, net, opt, data, 1, seed); });
            CHECK(e.find(
                      "training settings differ between ranks: seed is 1 on rank 0, 2 on rank 1") !=
                  std::string::npos);
            CHECK(same_everywhere(world, e));
        }
    }

    TEST_CASE("resuming or checkpointing without a directory is refused on every rank") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const auto data = small_data<float>(16, 8);
        for (const bool resume : {true, false}) {
            CAPTURE(resume);
            saved_net<float> net(grid.model(), widths);
            sn::optimizer<float> opt(sn::adam(1e-2));
            sn::trainer_options o;
            o.report = false;
            o.resume = resume;
            o.checkpoint_every = resume ? 0 : 2;
            sn::trainer trainer(grid, net, opt, o);
            const std::string e = error_of([&] { trainer.fit(data); });
            CHECK(e == "trainer: checkpoint_every and resume need a checkpoint_dir");
            CHECK(same_everywhere(world, e));
        }
    }

    TEST_CASE("run identity: another run's checkpoints are refused, named, and never pruned") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "identity");
        const auto data = small_data<float>(40, 3);
        auto fit = [&](double lr, bool resume, bool overwrite, std::ostream* out = nullptr) {
            saved_net<float> net(grid.model(), widths);
            sn::optimizer<float> opt(sn::adam(lr));
            sn::trainer_options o;
            o.epochs = 2;
            o.batch = 8;
            o.report = out != nullptr;
            if (out) o.out = out;
            o.checkpoint_dir = dir.string();
            o.checkpoint_every = 2;
            o.checkpoint_keep = 2;
            o.resume = resume;
            o.overwrite = overwrite;
            sn::trainer trainer(grid, net, opt, o);
            return trainer.fit(data);
        };
        fit(1e-2, false, false);  // run A: 10 steps, keeps steps 8 and 10

        // A fresh run B (another learning rate) refuses the directory and says how they differ.
        std::string e = error_of([&] { fit(1e-3, false, false); });
        CHECK(e.find("holds another run's checkpoints") != std::string::npos);
        CHECK(e.find("optimizer.lr is 0.01 there, 0.001 in this run") != std::string::npos);
        CHECK(same_everywhere(world, e));
        // Resuming B from A's checkpoint is refused the same way.
        e = error_of([&] { fit(1e-3, true, false); });
        CHECK(e.find("was written by another run: optimizer.lr is 0.01 there, 0.001 in this run") !=
              std::string::npos);
        CHECK(same_everywhere(world, e));
        // A fresh start of A itself is refused too: its newer checkpoints would outlive it.
        e = error_of([&] { fit(1e-2, false, false); });
        CHECK(e.find("checkpoints of this same run") != std::string::npos);
        if (world.rank() == 0) CHECK(sn::list_checkpoints(dir).size() == 2);  // nothing pruned

        // Pruning by one run never removes another run's checkpoint.
        {
            saved_net<float> net(grid.model(), widths);
            sn::training_position other;
            other.run_settings = "run=other\n";
            sn::checkpoint_options c;
            c.keep = 1;
            sn::no_optimizer<float> none;
            sn::save_checkpoint(grid, dir, 100, net, none, &other, c);
            sn::training_position mine;
            mine.run_settings = "run=mine\n";
            sn::save_checkpoint(grid, dir, 101, net, none, &mine, c);
            sn::save_checkpoint(grid, dir, 102, net, none, &mine, c);
            if (world.rank() == 0)
                CHECK(sn::list_checkpoints(dir) == std::vector<std::uint64_t>{8, 10, 100, 102});
        }

        // overwrite replaces everything and the run proceeds.
        std::ostringstream out;
        const auto result = fit(1e-3, false, true, &out);
        CHECK(result.step_losses.size() == 10);
        if (world.rank() == 0)
            CHECK(sn::list_checkpoints(dir) == std::vector<std::uint64_t>{8, 10});
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE("resume falls back past a damaged or stray newest checkpoint, naming it") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "fallback");
        const auto data = small_data<float>(40, 3);
        auto fit = [&](std::size_t epochs, bool resume, std::ostream& out) {
            saved_net<float> net(grid.model(), widths);
            sn::optimizer<float> opt(sn::adam(1e-2));
            sn::trainer_options o;
            o.epochs = epochs;
            o.batch = 8;
            o.out = &out;
            o.checkpoint_dir = dir.string();
            o.checkpoint_every = 3;
            o.checkpoint_keep = 0;
            o.resume = resume;
            sn::trainer trainer(grid, net, opt, o);
            return trainer.fit(data);
        };
        std::ostringstream first;
        const auto reference = fit(2, false, first);  // saves steps 3, 6, 9 and 10
        world.barrier();
        if (world.rank() == 0) {
            // The newest is damaged (a flipped byte in a shard file), and a stray file is named
            // like an even newer checkpoint.
            const fs::path shard = dir / sn::checkpoint_name(10) / sn::detail::shard_file_name(0);
            std::string bytes = read_bytes(shard);
            bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
            write_bytes(shard, bytes);
            write_bytes(dir / sn::checkpoint_name(99), "not a checkpoint");
        }
        world.barrier();
        std::ostringstream out;
        const auto resumed = fit(2, true, out);
        CHECK(resumed.resumed_at == 9);
        CHECK(resumed.step_losses == reference.step_losses);
        if (world.rank() == 0) {
            const std::string said = out.str();
            CHECK(said.find("skipping '" + (dir / sn::checkpoint_name(99)).string() + "'") !=
                  std::string::npos);
            CHECK(said.find(sn::checkpoint_name(10) + "/" + sn::detail::shard_file_name(0)) !=
                  std::string::npos);
            CHECK(said.find("falling back") != std::string::npos);
            CHECK(said.find("resumed at step 9 ") != std::string::npos);
        }
        // A checkpoint past the run's last epoch is refused, not skipped for an older one.
        std::ostringstream shorter;
        const std::string e = error_of([&] { fit(1, true, shorter); });
        CHECK(e.find("past this run's 1 epochs") != std::string::npos);
        CHECK(same_everywhere(world, e));
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE("a checkpoint directory in use by another run is refused, naming the holder") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world);
        const fs::path dir = shared_temp_dir(world, "locked");
        std::optional<sn::checkpoint_directory_lock> other;
        if (world.rank() == 0) {
            fs::create_directories(dir / ".tmp-step-000000000007");  // left by a crashed save
            other.emplace(dir);
            CHECK_FALSE(fs::exists(dir / ".tmp-step-000000000007"));
        }
        const auto data = small_data<float>(16, 3);
        saved_net<float> net(grid.model(), widths);
        sn::optimizer<float> opt(sn::adam(1e-2));
        sn::trainer_options o;
        o.report = false;
        o.epochs = 1;
        o.batch = 8;
        o.checkpoint_dir = dir.string();
        o.checkpoint_every = 1;
        {
            sn::trainer trainer(grid, net, opt, o);
            const std::string e = error_of([&] { trainer.fit(data); });
            CHECK(e.find("is in use by another run (host ") != std::string::npos);
            if (world.rank() == 0)
                CHECK(e.find("pid " + std::to_string(::getpid())) != std::string::npos);
            CHECK(same_everywhere(world, e));
        }
        other.reset();  // the holder ends: the directory is free again
        sn::trainer trainer(grid, net, opt, o);
        CHECK(trainer.fit(data).step_losses.size() == 2);
        world.barrier();
        if (world.rank() == 0) fs::remove_all(dir);
    }

    TEST_CASE("the confusion matrix agrees with the accuracy, on every rank and grid") {
        sn::mpi_communicator world;
        sn::process_grid<sn::mpi_communicator> grid(world, world.size() % 2 == 0 ? 2 : 1);
        const auto data = small_data<float>(37, 5);  // 37 rows: batches and replicas uneven
        saved_net<float> net(grid.model(), widths);  // sharded logits
        sn::optimizer<float> opt(sn::adam(1e-2));
        sn::trainer_options o;
        o.report = false;
        o.epochs = 2;
        o.batch = 8;
        sn::trainer trainer(grid, net, opt, o);
        trainer.fit(data);
        const auto counts = trainer.confusion_matrix(data);
        const std::size_t classes = widths.back();
        REQUIRE(counts.size() == classes * classes);
        std::int64_t total = 0, correct = 0;
        for (std::size_t t = 0; t < classes; ++t)
            for (std::size_t p = 0; p < classes; ++p) {
                total += counts[t * classes + p];
                if (t == p) correct += counts[t * classes + p];
                // Row t holds exactly the samples labelled t.
            }
        CHECK(total == 37);
        for (std::size_t t = 0; t < classes; ++t) {
            std::int64_t row = 0;
            for (std::size_t p = 0; p < classes; ++p)
                row += counts[t * classes + p];
            CHECK(row == std::count(data.labels.begin(), data.labels.end(), t));
        }
        const auto accuracy = trainer.evaluate(data).accuracy;
        CHECK(static_cast<double>(correct) / 37.0 == doctest::Approx(accuracy));
        std::string text;
        for (auto v : counts)
            text += std::to_string(v) + ",";
        CHECK(same_everywhere(world, text));
    }
}
