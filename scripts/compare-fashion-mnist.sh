#!/usr/bin/env bash
# Fashion-MNIST accuracy of train_mlp against PyTorch 1.13 on the same network and
# hyper-parameters (issue 10, item 2): 784-1024-1024-10, Adam lr 0.001 on train_mlp's cosine
# schedule, batch 128, 10 epochs, seeds 0, 1 and 2 on both sides (benchmarks/
# fashion_mnist_pytorch.py says what is matched and how). Prints per-epoch lines, then a table of
# final test accuracy, wall time and samples/s per seed with the medians; docs/benchmarks.md
# ("Fashion-MNIST against PyTorch 1.13") records a run. Takes about 12 minutes on 2 quiet cores.
#   bash scripts/compare-fashion-mnist.sh [--seeds 0,1,2] [--threads 2] [other options of the .py]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --bench  # python3-torch and dataset-fashion-mnist among them
cmake --preset release >/dev/null
cmake --build --preset release --target train_mlp

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
/usr/bin/python3 benchmarks/fashion_mnist_pytorch.py --train-mlp build/release/examples/train_mlp "$@"
