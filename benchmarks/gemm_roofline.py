#!/usr/bin/env python3
"""GEMM rates per shape against the core's measured FMA peak, fp32 and bf16, in one run.

Runs bench_gemm (ours against OpenBLAS's best kernel for the CPU, fp32, and our bf16 GEMM),
then times PyTorch's matmul on the same shapes in fp32 and bf16 (one thread), and writes
  - a markdown table (stdout), every figure a median of repeated runs;
  - a roofline-style plot, GFLOP/s per shape with the fp32 peak and the bf16 ceiling (twice
    the fp32 peak: vdpbf16ps does 32 multiply-adds per instruction at the FMA's rate), to
    docs/images/gemm_roofline.png (gnuplot).

  python3 benchmarks/gemm_roofline.py build/bench/benchmarks/bench_gemm [--m 64,256,1024]
                                      [--kn 2048] [--png docs/images/gemm_roofline.png]

Shapes are bench_gemm's: batch M, layer in = out = K = N; X.W is (M x K)(K x N), dY.W^T is
(M x N)(K x N)^T, X^T.dY is (M x K)^T (M x N).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402  (after the thread count is fixed)

torch.set_num_threads(1)

ROW = re.compile(r"^(float|bf16)\s+(\S+)\s+(\d+)\s+(\d+)\s+\|\s+(\d+)\s+(\d+)\s+(\d+)\s+\|"
                 r"\s+([\d.]+)\s+([\d.]+)\s+\|\s+[\d.]+\s+\|\s+([\d.]+)%\s+\|\s+\S+\s+\|"
                 r"\s+([\d.]+)")


def run_bench(binary, ms, kn):
    out = subprocess.run([binary, "--type", "all", "--m", ms, "--kn", kn, "--min-time", "0.3"],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1")).stdout
    header = [line for line in out.splitlines() if line.startswith(("shardnet::gemm", "CPU:",
                                                                        "single-core"))]
    rows, peaks = {}, []
    for line in out.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        kind, product, batch = m.group(1), m.group(2), int(m.group(3))
        shape = (product, batch)
        rows.setdefault(shape, {})
        if kind == "float":
            rows[shape]["ours fp32"] = float(m.group(8))
            rows[shape]["OpenBLAS fp32"] = float(m.group(9))
            rows[shape]["ours fp32 % of peak"] = float(m.group(10))
            peaks.append(float(m.group(11)))
        else:
            rows[shape]["ours bf16"] = float(m.group(8))
    # The FMA peak bench_gemm measured between each shape's runs (the clock drifts); the plot's
    # line is their median, each row's % is against its own.
    return header, statistics.median(peaks), rows


def torch_rate(product, batch, kn, dtype, seconds=0.3):
    m, n, k = (kn, kn, batch) if product == "X^T.dY" else (batch, kn, kn)
    a = torch.rand(k, m, dtype=dtype).t() if product == "X^T.dY" else torch.rand(m, k, dtype=dtype)
    b = torch.rand(n, k, dtype=dtype).t() if product == "dY.W^T" else torch.rand(k, n, dtype=dtype)
    c = torch.empty(m, n, dtype=dtype)
    torch.matmul(a, b, out=c)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < seconds and len(times) < 50):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return 2.0 * m * n * k / statistics.median(times) * 1e-9


def plot(rows, peak, png):
    series = ["ours fp32", "OpenBLAS fp32", "PyTorch fp32", "ours bf16", "PyTorch bf16"]
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as data:
        for i, (shape, r) in enumerate(rows.items()):
            label = f"{shape[0]} M={shape[1]}"
            data.write(f'{i} "{label}" ' + " ".join(f"{r.get(s, 0):.1f}" for s in series) + "\n")
    styles = ["pt 7", "pt 5", "pt 9", "pt 7", "pt 9"]
    plots = ", ".join(
        f'"{data.name}" using 1:{3 + j}:xtic(2) with linespoints {styles[j]} title "{s}"'
        for j, s in enumerate(series))
    script = f"""
set terminal pngcairo size 1100,600
set output "{png}"
set title "GEMM rate per shape against the core's measured FMA peak (K = N = 2048, 1 core)"
set ylabel "GFLOP/s"
set yrange [0:{2.1 * peak:.0f}]
set xtics rotate by 30 right
set key outside right
set grid ytics
plot {peak:.1f} with lines dt 2 lw 2 title "fp32 FMA peak ({peak:.0f})", \\
     {2 * peak:.1f} with lines dt 3 lw 2 title "bf16 ceiling (2x)", {plots}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(data.name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bench_gemm")
    parser.add_argument("--m", default="64,256,1024")
    parser.add_argument("--kn", default="2048")
    parser.add_argument("--png", default="docs/images/gemm_roofline.png")
    args = parser.parse_args()
    header, peak, rows = run_bench(args.bench_gemm, args.m, args.kn)
    for (product, batch), r in rows.items():
        r["PyTorch fp32"] = torch_rate(product, batch, int(args.kn), torch.float32)
        r["PyTorch bf16"] = torch_rate(product, batch, int(args.kn), torch.bfloat16)
    print("\n".join(f"    {h}" for h in header))
    print(f"    FMA peak measured between the runs (median over shapes): float {peak:.1f} GFLOP/s")
    print(f"    PyTorch {torch.__version__}, 1 thread\n")
    print("| product | M | ours fp32 | OpenBLAS fp32 | PyTorch fp32 | ours / OpenBLAS | "
          "ours fp32 % of peak | ours bf16 | PyTorch bf16 | bf16 / fp32 (ours) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (product, batch), r in rows.items():
        print(f"| {product} | {batch} | {r['ours fp32']:.0f} | {r['OpenBLAS fp32']:.0f} | "
              f"{r['PyTorch fp32']:.0f} | {r['ours fp32'] / r['OpenBLAS fp32']:.2f} | "
              f"{r['ours fp32 % of peak']:.0f}% | {r['ours bf16']:.0f} | "
              f"{r['PyTorch bf16']:.0f} | {r['ours bf16'] / r['ours fp32']:.2f} |")
    plot(rows, peak, args.png)
    print(f"\n(plot: {args.png})", file=sys.stderr)


if __name__ == "__main__":
    main()
