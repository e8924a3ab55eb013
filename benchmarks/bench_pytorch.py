#!/usr/bin/python3
"""Side-by-side training throughput: shardnet's bench_mlp against PyTorch (Debian's
python3-torch, CPU) on the same model, batch, loss and optimizer.

Model: MLP 1024-4096-4096-1024, ReLU between layers, float32, batch 256, MSE, plain SGD.
  PyTorch 1 thread                           vs  shardnet on 1 rank
  PyTorch best of {2 threads, 2-process Megatron-style tensor parallelism over gloo}
                                             vs  shardnet on 2 ranks (column, row, column)

Usage: /usr/bin/python3 benchmarks/bench_pytorch.py --bench-mlp build/bench/benchmarks/bench_mlp
The thread counts are fixed through the environment before torch is imported (torch's
set_num_threads does not limit OpenBLAS's own threads); OMP_WAIT_POLICY=PASSIVE keeps OpenMP
threads from spinning beside OpenBLAS's.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

WIDTHS = [1024, 4096, 4096, 1024]
BATCH = 256


def env_for(threads):
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    return env


def run_self(mode, threads, steps, extra=()):
    out = subprocess.run([sys.executable, __file__, "--mode", mode, "--steps", str(steps), *extra],
                         env=env_for(threads), check=True, capture_output=True, text=True).stdout
    return float(re.search(r"steps_per_s=([0-9.]+)", out).group(1))


def torch_single(steps):
    import time
    import torch
    torch.manual_seed(0)
    layers = []
    for i in range(len(WIDTHS) - 1):
        layers.append(torch.nn.Linear(WIDTHS[i], WIDTHS[i + 1]))
        if i + 2 < len(WIDTHS):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.rand(BATCH, WIDTHS[0]) - 0.5
    t = torch.rand(BATCH, WIDTHS[-1]) - 0.5
    loss_fn = torch.nn.MSELoss()
    times = []
    for s in range(steps + 3):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()
        if s >= 3:
            times.append(time.perf_counter() - start)
    print(f"steps_per_s={1.0 / statistics.median(times):.4f}")


def torch_tensor_parallel_worker(rank, world, steps, port, queue):
    import time
    import torch
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(rank)

    class reduce_forward(torch.autograd.Function):  # Megatron's reduce_from_model_parallel
        @staticmethod
        def forward(ctx, x):
            dist.all_reduce(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g

    class reduce_backward(torch.autograd.Function):  # Megatron's copy_to_model_parallel
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            g = g.clone()
            dist.all_reduce(g)
            return g

    part = lambda n: n // world
    w1 = torch.nn.Parameter(torch.randn(WIDTHS[0], part(WIDTHS[1])) * 0.02)   # column
    b1 = torch.nn.Parameter(torch.zeros(part(WIDTHS[1])))
    w2 = torch.nn.Parameter(torch.randn(part(WIDTHS[1]), WIDTHS[2]) * 0.02)   # row
    b2 = torch.nn.Parameter(torch.zeros(WIDTHS[2]))
    w3 = torch.nn.Parameter(torch.randn(WIDTHS[2], part(WIDTHS[3])) * 0.02)   # column
    b3 = torch.nn.Parameter(torch.zeros(part(WIDTHS[3])))
    params = [w1, b1, w2, b2, w3, b3]
    opt = torch.optim.SGD(params, lr=1e-3)
    torch.manual_seed(0)
    x = torch.rand(BATCH, WIDTHS[0]) - 0.5
    t = (torch.rand(BATCH, WIDTHS[-1]) - 0.5)[:, rank * part(WIDTHS[3]):(rank + 1) * part(WIDTHS[3])]
    times = []
    for s in range(steps + 3):
        dist.barrier()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        h1 = torch.relu(x @ w1 + b1)
        h2 = torch.relu(reduce_forward.apply(h1 @ w2) + b2)
        y = reduce_backward.apply(h2) @ w3 + b3
        loss = ((y - t) ** 2).sum() / (BATCH * WIDTHS[-1])  # this rank's share of the mean
        loss.backward()
        opt.step()
        if s >= 3:
            times.append(time.perf_counter() - start)
    if rank == 0:
        queue.put(statistics.median(times))
    dist.destroy_process_group()


def torch_tensor_parallel(steps):
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=torch_tensor_parallel_worker, args=(r, 2, steps, port, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    step = queue.get()
    for p in procs:
        p.join()
    print(f"steps_per_s={1.0 / step:.4f}")


def shardnet(bench_mlp, ranks, steps):
    cmd = ["mpiexec", "--allow-run-as-root", "--oversubscribe", "--bind-to", "core", "-n",
           str(ranks), bench_mlp, "--steps", str(steps)]
    out = subprocess.run(cmd, env=env_for(1), check=True, capture_output=True, text=True).stdout
    return float(re.search(r"steps_per_s=([0-9.]+)", out).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["compare", "torch1", "torch2", "torch-tp"],
                        default="compare")
    parser.add_argument("--bench-mlp", default="build/bench/benchmarks/bench_mlp")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.mode in ("torch1", "torch2"):
        return torch_single(args.steps)
    if args.mode == "torch-tp":
        return torch_tensor_parallel(args.steps)

    runs = {k: [] for k in ("ours1", "torch1", "ours2", "torch2", "torch-tp")}
    for _ in range(args.repeats):  # interleaved, so drifts of a shared machine hit both sides
        runs["ours1"].append(shardnet(args.bench_mlp, 1, args.steps))
        runs["torch1"].append(run_self("torch1", 1, args.steps))
        runs["ours2"].append(shardnet(args.bench_mlp, 2, args.steps))
        runs["torch2"].append(run_self("torch2", 2, args.steps))
        runs["torch-tp"].append(run_self("torch-tp", 1, args.steps))
    med = {k: statistics.median(v) for k, v in runs.items()}
    best2 = max(med["torch2"], med["torch-tp"])
    print(f"MLP {'-'.join(map(str, WIDTHS))}, batch {BATCH}, float32, MSE, SGD; "
          f"training steps/s, median of {args.repeats} runs x {args.steps} steps")
    print(f"  1 core : shardnet 1 rank  {med['ours1']:7.3f}   PyTorch 1 thread {med['torch1']:7.3f}"
          f"   ratio {med['ours1'] / med['torch1']:.3f}")
    print(f"  2 cores: shardnet 2 ranks {med['ours2']:7.3f}   PyTorch 2 threads {med['torch2']:7.3f},"
          f" 2-process TP {med['torch-tp']:7.3f}   ratio to best {med['ours2'] / best2:.3f}")
    print(f"  shardnet scaling 1 -> 2 ranks: {med['ours2'] / med['ours1']:.3f}")
    # One line for benchmarks/report.py: medians, then every run.
    print("pytorch: " + " ".join(f"{k.replace('-', '_')}={v:.4f}" for k, v in med.items()) +
          f" repeats={args.repeats} steps={args.steps} batch={BATCH}")
    for k, v in runs.items():
        print(f"pytorch_runs: {k.replace('-', '_')}=" + ",".join(f"{x:.4f}" for x in v))


if __name__ == "__main__":
    main()
