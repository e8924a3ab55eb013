#!/usr/bin/python3
"""Fashion-MNIST accuracy side by side: shardnet's train_mlp against PyTorch (Debian's
python3-torch 1.13, CPU) on the same network, data preparation and hyper-parameters.

Network: 784-1024-1024-10, ReLU, float32, softmax cross-entropy, Adam (lr 0.001, betas 0.9 and
0.999, eps 1e-8, no weight decay), batch 128 (the last, partial batch of each epoch included),
10 epochs, shuffled every epoch. Matched to train_mlp:
  - data: Debian's dataset-fashion-mnist gzipped IDX files, pixels / 255, then standardized per
    feature with the training set's mean and population standard deviation (shardnet's
    standardizer: a feature whose spread is within 8 float epsilons of its magnitude counts as
    constant and keeps a scale of 1), the same statistics applied to the test set;
  - initialization (default, --init shardnet): shardnet's default_init, He uniform
    U(-sqrt(6/fan_in), +) for the ReLU layers, Xavier uniform U(-sqrt(6/(fan_in+fan_out)), +)
    for the last (identity) layer, biases zero. The values differ (different generators), the
    distributions are the same. --init pytorch keeps nn.Linear's default instead;
  - schedule: train_mlp always puts the learning rate on a cosine schedule (optimizer_for in
    examples/train_mlp.cpp; --lr sets its peak): linear warm-up over total/20 updates from
    lr/warmup to lr, then cosine decay to 0.05 lr at the last update. Reproduced with LambdaLR
    (update t, 0-based, uses the rate of shardnet's lr_schedule::at(lr, t)). --schedule constant
    drops it (a plain Adam at lr, which train_mlp cannot do).
The data order differs (torch.randperm against shardnet's shuffle), as do the initial values:
compare medians over seeds, not single runs.

Usage:
  /usr/bin/python3 benchmarks/fashion_mnist_pytorch.py --seeds 0,1,2 \
      --train-mlp build/release/examples/train_mlp
runs, for each seed, PyTorch and then train_mlp on 2 ranks (mpiexec), and prints a table of both.
Without --train-mlp only PyTorch runs. PyTorch's thread count (--threads, default 2: the same
cores as train_mlp's 2 ranks) is fixed through the environment before torch is imported.
"""
import argparse
import gzip
import os
import re
import statistics
import struct
import subprocess
import sys
import time

LAYERS = [784, 1024, 1024, 10]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    p.add_argument("--init", choices=["shardnet", "pytorch"], default="shardnet")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--train-mlp", help="path to train_mlp: also run it for every seed")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--only", choices=["both", "pytorch", "shardnet"], default="both")
    return p.parse_args()


def read_idx(path):
    """An IDX file (gzipped) as a numpy array: uint8 images (n, rows*cols) or labels (n,)."""
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if array.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: expected {shape}, got {array.size} bytes")
    return array.reshape(shape[0], -1) if dims > 1 else array


def load(data_dir):
    """Training and test features (float32, standardized as shardnet does) and labels."""
    import numpy as np
    f = lambda name: os.path.join(data_dir, name)
    x_train = read_idx(f("train-images-idx3-ubyte.gz")).astype(np.float32) / np.float32(255)
    y_train = read_idx(f("train-labels-idx1-ubyte.gz")).astype(np.int64)
    x_test = read_idx(f("t10k-images-idx3-ubyte.gz")).astype(np.float32) / np.float32(255)
    y_test = read_idx(f("t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    # shardnet::standardizer<float>::fit: statistics in double, population std; a spread of at
    # most 8 float epsilons of the feature's largest magnitude is a constant feature (scale 1).
    x64 = x_train.astype(np.float64)
    mean = x64.mean(axis=0)
    std = np.sqrt(((x64 - mean) ** 2).mean(axis=0))
    constant = ~(std > 8.0 * np.finfo(np.float32).eps * np.abs(x64).max(axis=0))
    inv_std = np.where(constant, 1.0, 1.0 / np.where(constant, 1.0, std))
    mean32, inv32 = mean.astype(np.float32), inv_std.astype(np.float32)
    x_train = (x_train - mean32) * inv32
    x_test = (x_test - mean32) * inv32
    return x_train, y_train, x_test, y_test, int(constant.sum())


def lr_factor(t, total, warmup, min_ratio=0.05):
    """shardnet::lr_schedule::cosine(warmup, total, min_ratio).at(1, t)."""
    import math
    if t < warmup:
        return (t + 1) / warmup
    if total <= warmup or t >= total:
        return min_ratio
    progress = (t - warmup) / (total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def run_pytorch(args, seed, data):
    import torch
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data[:4])
    torch.manual_seed(seed)
    layers = []
    for i in range(len(LAYERS) - 1):
        linear = torch.nn.Linear(LAYERS[i], LAYERS[i + 1])
        relu = i + 2 < len(LAYERS)
        if args.init == "shardnet":
            fan_in, fan_out = LAYERS[i], LAYERS[i + 1]
            bound = (6.0 / fan_in) ** 0.5 if relu else (6.0 / (fan_in + fan_out)) ** 0.5
            torch.nn.init.uniform_(linear.weight, -bound, bound)
            torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if relu:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    n = x_train.shape[0]
    steps_per_epoch = (n + args.batch - 1) // args.batch
    total = args.epochs * steps_per_epoch
    warmup = total // 20
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda t: lr_factor(t, total, warmup)) if args.schedule == "cosine" else (lambda t: 1))
    loss_fn = torch.nn.CrossEntropyLoss()
    order_gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    accuracy, samples_per_s = 0.0, 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        order = torch.randperm(n, generator=order_gen)
        loss_sum = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
        samples_per_s = n / (time.perf_counter() - epoch_start)
        model.eval()
        with torch.no_grad():
            logits = model(x_test)
            test_loss = loss_fn(logits, y_test).item()
            accuracy = (logits.argmax(dim=1) == y_test).double().mean().item()
        print(f"pytorch seed={seed} epoch={epoch} train_loss={loss_sum / steps_per_epoch:.6f} "
              f"test_loss={test_loss:.6f} test_accuracy={accuracy:.4f} "
              f"samples_per_s={samples_per_s:.0f}", flush=True)
    wall = time.perf_counter() - start
    print(f"pytorch seed={seed} final: test_accuracy={accuracy:.4f} wall_s={wall:.1f} "
          f"samples_per_s={samples_per_s:.0f}", flush=True)
    return accuracy, wall, samples_per_s


def run_shardnet(args, seed):
    cmd = ["mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", str(args.ranks),
           args.train_mlp, "--layers", ",".join(map(str, LAYERS)),
           "--partition", "column,row,column", "--optimizer", "adam", "--lr", str(args.lr),
           "--batch", str(args.batch), "--epochs", str(args.epochs), "--seed", str(seed)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    print("shardnet: " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    for line in re.findall(r"epoch \d+/\d+: [^\r\n]*", out):
        print(f"shardnet seed={seed} {line.strip()}", flush=True)
    final = re.search(r"final: .*test_accuracy=([0-9.]+) samples_per_s=([0-9.]+)", out)
    if not final:
        raise SystemExit("train_mlp printed no final line:\n" + out)
    print(f"shardnet seed={seed} final: test_accuracy={final.group(1)} wall_s={wall:.1f} "
          f"samples_per_s={final.group(2)}", flush=True)
    return float(final.group(1)), wall, float(final.group(2))


def main():
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    seeds = [int(s) for s in args.seeds.split(",")]
    run_torch = args.only in ("both", "pytorch")
    run_sn = args.only in ("both", "shardnet") and args.train_mlp
    data = None
    if run_torch:
        import torch
        torch.set_num_threads(args.threads)
        load_start = time.perf_counter()
        data = load(args.data_dir)
        print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads; data loaded and "
              f"standardized in {time.perf_counter() - load_start:.1f} s ({data[4]} constant "
              f"features); init={args.init} schedule={args.schedule}", flush=True)
    rows = []
    for seed in seeds:
        row = {"seed": seed}
        if run_torch:
            row["pytorch"] = run_pytorch(args, seed, data)
        if run_sn:
            row["shardnet"] = run_shardnet(args, seed)
        rows.append(row)

    sides = [s for s in ("pytorch", "shardnet") if s in rows[0]]
    print()
    print("| seed | " + " | ".join(
        f"{s} test accuracy | {s} wall s | {s} samples/s" for s in sides) + " |")
    print("|---:|" + "---:|---:|---:|" * len(sides))
    for row in rows:
        print(f"| {row['seed']} | " + " | ".join(
            f"{row[s][0]:.4f} | {row[s][1]:.0f} | {row[s][2]:.0f}" for s in sides) + " |")
    print("| median | " + " | ".join(
        " | ".join(f"{statistics.median(r[s][k] for r in rows):{fmt}}"
                   for k, fmt in ((0, ".4f"), (1, ".0f"), (2, ".0f"))) for s in sides) + " |")


if __name__ == "__main__":
    sys.exit(main())
