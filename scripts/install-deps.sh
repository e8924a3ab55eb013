#!/usr/bin/env bash
# Installs the Debian 12 packages shardnet's build, tests, examples and benchmarks need.
# Idempotent and quiet when everything is already there. Run as root (or with sudo).
set -euo pipefail

packages=(
    # the library's own dependencies
    g++ cmake make libboost-mpi-dev libboost-serialization-dev libxtensor-dev libxsimd-dev
    libopenmpi-dev openmpi-bin zlib1g-dev
    # tests, examples and benchmarks only
    doctest-dev libcli11-dev libopenblas-dev pkg-config
    # train_mlp's default data: Fashion-MNIST's four gzipped IDX files (about 30 MB)
    dataset-fashion-mnist
    # docs and packaging: the test plot_metrics draws train_mlp's curve (scripts/plot_metrics.sh);
    # consumer_deb needs dpkg-deb, which every Debian has. The diagram and API reference are
    # made by hand (graphviz, doxygen: see docs/README.md), not in CI.
    gnuplot-nox
    # fuzzing the loaders (scripts/run-tests.sh): clang with the libFuzzer runtime
    clang libclang-rt-14-dev
)

# --bench: also what scripts/run-benchmarks.sh compares against (PyTorch, for /usr/bin/python3).
[ "${1:-}" = "--bench" ] && packages+=(python3-torch)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
