#!/usr/bin/python3
"""Writes one machine's benchmark report (docs/benchmarks/<cpu>.md, and its PNG plots) from the
outputs scripts/run-benchmarks.sh collected in one directory:

  gemm_default.txt, gemm_zen.txt   bench_gemm against OpenBLAS's best kernel for the CPU and its Zen kernels
  layer.txt                        bench_mlp --layer-bench (one or more runs)
  mlp_1.txt, mlp_2.txt             mpiexec -n 1|2 bench_mlp (SGD), mlp_2_adam.txt (Adam)
  mlp_1_bf16.txt                   mpiexec -n 1 bench_mlp --precision bf16 (between the fp32 runs)
  data_parallel.txt                mpiexec -n 2 bench_mlp --data-parallel
  comm.txt                         mpiexec -n 2 bench_comm
  pytorch.txt                      bench_pytorch.py
  machine.txt                      key: value lines about the machine and the tool versions

Usage: report.py RESULTS_DIR OUTPUT_MD IMAGE_DIR [INDEX_MD]
Every figure in the page comes from those files; a missing file leaves its section out. The
summary table also goes into README.md, between its benchmark markers, and INDEX_MD (the
docs/benchmarks.md that lists every machine's report) gets its list of reports rewritten from
the reports beside OUTPUT_MD. One report per CPU: a run on another kind of core adds a report
instead of replacing the last machine's figures.
"""
import os
import re
import statistics
import subprocess
import sys


def read(directory, name):
    path = os.path.join(directory, name)
    return open(path).read() if os.path.exists(path) else ""


def fields(line):
    """key=value pairs of one benchmark line, numbers converted."""
    out = {}
    for key, value in re.findall(r"(\w+)=(\S+)", line):
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def tagged(text, tag):
    return [fields(line) for line in text.splitlines() if line.startswith(tag + ":")]


GEMM_ROW = re.compile(r"^(float|double)\s+(\S+)\s+(\d+)\s+(\d+)\s+\|\s+\d+\s+\d+\s+\d+\s+\|"
                      r"\s+([\d.]+)\s+([\d.]+)\s+\|\s+([\d.]+)\s+\|\s+([\d.]+)%\s+\|\s+\S+"
                      r"\s+\|\s+([\d.]+)")


def gemm_rows(text):
    rows = {}
    for line in text.splitlines():
        m = GEMM_ROW.match(line)
        if m:
            t, prod, batch, kn, ours, blas, ratio, peak, fma = m.groups()
            rows[(t, prod, int(batch), int(kn))] = dict(ours=float(ours), blas=float(blas),
                                                        ratio=float(ratio), peak=float(peak),
                                                        fma=float(fma))
    return rows


def gemm_peaks(text):
    m = re.search(r"FMA peak: float ([\d.]+) GFLOP/s, double ([\d.]+)", text)
    return (float(m.group(1)), float(m.group(2))) if m else (float("nan"), float("nan"))


def gemm_header(text):
    m = re.search(r"vs OpenBLAS \((.*)\)", text)
    return m.group(1) if m else "?"


def verdict(ok):
    return "met" if ok else "**not met**"


def shown(value, digits, target):
    """value with `digits` decimals, or more where rounding would put it on the other side of
    target than it is (1.846 shown as 1.85 beside "not met" for a target of 1.85)."""
    text = f"{value:.{digits}f}"
    while digits < 4 and (float(text) >= target) != (value >= target):
        digits += 1
        text = f"{value:.{digits}f}"
    return text


def gemm_runs(results, prefix):
    """Every run of bench_gemm whose output file starts with prefix, in order."""
    names = sorted(n for n in os.listdir(results) if n.startswith(prefix) and n.endswith(".txt"))
    return [read(results, n) for n in names]


def combine(runs):
    """Per shape, the median over runs of ours, OpenBLAS, the ratio and % of peak."""
    rows = [gemm_rows(r) for r in runs]
    keys = set.intersection(*(set(r) for r in rows)) if rows else set()
    return {k: {f: statistics.median(r[k][f] for r in rows)
                for f in ("ours", "blas", "ratio", "peak", "fma")} for k in keys}


def gemm_section(results, images, out, targets):
    default_runs, zen_runs = gemm_runs(results, "gemm_default"), gemm_runs(results, "gemm_zen")
    if not default_runs or not zen_runs:
        out.append("GEMM results missing.\n")
        return {}
    default, zen = default_runs[0], zen_runs[0]
    a, b = combine(default_runs), combine(zen_runs)
    start_f, start_d = gemm_peaks(default)
    # bench_gemm times the FMA units between each shape's runs (the host's boost clock drifts):
    # every % of peak is against that shape's own; the plot's line is their median.
    window = {t: sorted(v["fma"] for k, v in a.items() if k[0] == t) for t in ("float", "double")}
    peak_f = statistics.median(window["float"]) if window["float"] else start_f
    peak_d = statistics.median(window["double"]) if window["double"] else start_d
    out.append(f"OpenBLAS runs: `{gemm_header(default)}` and `{gemm_header(zen)}`, "
               f"{len(default_runs)} runs of each. FMA peak per core, measured between each "
               f"shape's runs (median over shapes, and range): float {peak_f:.1f} GFLOP/s "
               f"({window['float'][0] if window['float'] else float('nan'):.0f}-"
               f"{window['float'][-1] if window['float'] else float('nan'):.0f}), double "
               f"{peak_d:.1f}; at start-up (best of 40 runs): float {start_f:.1f}, double "
               f"{start_d:.1f}. Each % of peak is against its own shape's.\n")
    out.append("Each ratio is ours / OpenBLAS timed alternately in the same process, the median "
               "over the runs with one OpenBLAS kernel; the table keeps, per shape, the lower of "
               "the two kernels' ratios (ours against the better OpenBLAS). GFLOP/s and % of "
               "peak are medians from the runs against that better kernel.\n")
    out.append("| type | product | M | K=N | ours GFLOP/s | OpenBLAS GFLOP/s | ratio | target "
               "| % of FMA peak |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = {"float_min_ratio_small": None, "float_min_ratio_large": None,
               "float_min_peak": None, "misses": []}
    lowest = lambda old, new: new if old is None else min(old, new)
    plot = []
    for key in sorted(set(a) & set(b), key=lambda k: (k[0] != "float", k[3], k[1], k[2])):
        t, prod, batch, kn = key
        worse = a[key] if a[key]["ratio"] <= b[key]["ratio"] else b[key]
        target = 1.0 if t == "float" else None  # issue 11: at least OpenBLAS's best, every shape
        ok = target is None or worse["ratio"] >= target
        out.append(f"| {t} | {prod} | {batch} | {kn} | {worse['ours']:.1f} | {worse['blas']:.1f} "
                   f"| {shown(worse['ratio'], 2, target or 0)}{'' if ok else ' ✗'} | "
                   f"{'' if target is None else f'≥ {target:.1f}'} | {worse['peak']:.0f}% |")
        if t == "float":
            plot.append((f"{prod} {batch}x{kn}", worse["ours"], worse["blas"]))
            which = "float_min_ratio_small" if batch <= 64 else "float_min_ratio_large"
            summary[which] = lowest(summary[which], worse["ratio"])
            if batch >= 256 and kn >= 2048:
                summary["float_min_peak"] = lowest(summary["float_min_peak"], worse["peak"])
            if not ok:
                summary["misses"].append(f"{prod} M={batch} K=N={kn}: {shown(worse['ratio'], 2, 1.0)}")
    out.append("")
    data = os.path.join(images, "gemm.dat")
    with open(data, "w") as f:
        for i, (label, ours, blas) in enumerate(plot):
            f.write(f'{i} "{label}" {ours:.2f} {blas:.2f}\n')
    png = os.path.join(images, "benchmark_gemm.png")
    gnuplot(f"""
set terminal pngcairo noenhanced size 1200,450 font 'sans,9'
set output '{png}'
set title 'float GEMM, one core: shardnet (xsimd) vs OpenBLAS (better kernel); FMA peak {peak_f:.0f} GFLOP/s'
set ylabel 'GFLOP/s'
set yrange [0:{peak_f * 1.1:.0f}]
set xtics rotate by -60 font ',7'
set rmargin 8
set grid ytics
set key bottom right
set style data linespoints
plot '{data}' using 1:3:xtic(2) title 'shardnet' pt 7, '' using 1:4 title 'OpenBLAS' pt 5, \
     {peak_f:.2f} title 'FMA peak' dt 2 lc rgb 'gray'
""")
    os.remove(data)
    out.append(f"![GEMM GFLOP/s per shape]({os.path.relpath(png, os.path.dirname(OUTPUT))})\n")
    for key, name, target in (("float_min_ratio_small", "GEMM float, M ≤ 64: lowest ratio to "
                               "OpenBLAS's best kernel", 1.0),
                              ("float_min_ratio_large", "GEMM float, M ≥ 256: lowest ratio to "
                               "OpenBLAS's best kernel", 1.0)):
        if summary[key] is not None:
            targets.append((name, shown(summary[key], 2, target), f"≥ {target:.1f}",
                            summary[key] >= target))
    if summary["float_min_peak"] is not None:
        targets.append(("GEMM float, M ≥ 256 and K=N ≥ 2048: lowest % of FMA peak",
                        f"{shown(summary['float_min_peak'], 0, 88)}%", "≥ 88%",
                        summary["float_min_peak"] >= 88))
    if summary["misses"]:
        out.append("Below target: " + "; ".join(summary["misses"]) + ".\n")
    return summary


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def median_field(entries, key):
    values = [e[key] for e in entries if key in e]
    return statistics.median(values) if values else float("nan")


def phase_lines(text):
    """Where a step's time goes ("phases:" lines, medians over runs per rank) and the cores' own
    2-thread / 1-thread FMA scaling ("fma_scaling:" lines) from the same bench_mlp runs."""
    out = []
    fma = tagged(text, "fma_scaling")
    if fma:
        out.append(f"The cores' own scaling, measured by each of these runs before its steps "
                   f"(16 register-only FMA chains on 1 thread, then on 2 threads at once): "
                   f"best {median_field(fma, 'one_thread_gflops'):.0f} → "
                   f"{median_field(fma, 'two_threads_gflops'):.0f} GFLOP/s, "
                   f"**{median_field(fma, 'ratio'):.2f}×**; median over rounds "
                   f"{median_field(fma, 'median_ratio'):.2f}× (medians of {len(fma)} runs). The "
                   f"step's 1 → 2 rank scaling above cannot exceed what the cores give.\n")
    phases = tagged(text, "phases")
    if phases:
        out.append("Where a step's time goes (each phase the median over the timed steps, then "
                   "over runs; collectives include waiting for the slower rank; the remainder is "
                   "the element-wise passes: bias, activation, its derivative, loss):\n")
        out.append("| ranks | rank | step ms | GEMM ms | collectives ms | optimizer ms | "
                   "element-wise and other ms | GEMM GFLOP/s |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key in sorted({(r["ranks"], r["rank"]) for r in phases}):
            rows = [r for r in phases if (r["ranks"], r["rank"]) == key]
            step = median_field(rows, "step_ms")
            cells = [f"{median_field(rows, f):.1f} ({100 * median_field(rows, f) / step:.0f}%)"
                     for f in ("gemm_ms", "collectives_ms", "optimizer_ms",
                               "elementwise_and_other_ms")]
            out.append(f"| {key[0]:.0f} | {key[1]:.0f} | {step:.1f} | " + " | ".join(cells) +
                       f" | {median_field(rows, 'gemm_gflops'):.0f} |")
        out.append("")
    return out


OUTPUT = ""


def main():
    global OUTPUT
    results, OUTPUT, images = sys.argv[1], sys.argv[2], sys.argv[3]
    index = sys.argv[4] if len(sys.argv) > 4 else None
    os.makedirs(images, exist_ok=True)
    machine = read(results, "machine.txt").strip()
    fields_of = machine_fields(machine)
    out = [f"# Benchmarks: {fields_of.get('core', 'unknown core')}", "",
           "Generated by `bash scripts/run-benchmarks.sh` (benchmarks/report.py); every figure "
           "below comes from that one run, on the machine described next. Targets are those of "
           "the performance issue. Medians throughout; the machine is shared, so ratios "
           "(measured side by side in the same run) mean more than absolute figures.", "",
           "## Machine", ""]
    out += [f"- {line}" for line in machine.splitlines()]
    out.append("")

    targets = []  # (what, measured, target, met: True/False/None for "shown")
    body = ["## 1. Local GEMM against OpenBLAS", ""]
    out, header = body, out
    gemm_section(results, images, out, targets)
    roofline = read(results, "gemm_roofline.md")
    if roofline:
        out += ["### fp32 and bf16 against the peak, OpenBLAS and PyTorch", "",
                "`benchmarks/gemm_roofline.py`: bench_gemm's fp32 (against OpenBLAS's best kernel "
                "for the CPU) and bf16 rows, and PyTorch's matmul on the same shapes in fp32 and "
                "bf16 (one thread), in one run. The bf16 ceiling is twice the fp32 FMA peak "
                "(vdpbf16ps does 32 multiply-adds per instruction at the FMA's rate).", "",
                roofline.strip(), "",
                f"![GEMM rate per shape against the peak]"
                f"({os.path.relpath(os.path.join(images, 'gemm_roofline.png'), os.path.dirname(OUTPUT))})",
                ""]

    out += ["## 2. Layer step overhead and allocations", ""]
    layers = tagged(read(results, "layer.txt"), "layer")
    if layers:
        out.append("Forward + backward of one 4096 → 4096 ReLU layer, batch 256, float, one rank, "
                   "against its three GEMMs alone (target ≤ 1.1×, 0 allocations per step). The "
                   "cblas row runs the same layer on the optional `cblas_gemm` policy (OpenBLAS, "
                   "1 thread).\n")
        out.append("| GEMM policy | runs | three GEMMs ms | layer step ms | ratio | allocations/step |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for policy in ("xsimd", "cblas"):
            rows = [r for r in layers if r.get("gemm") == policy]
            if rows:
                out.append(f"| {policy} | {len(rows)} | {median_field(rows, 'three_gemms_ms'):.1f} "
                           f"| {median_field(rows, 'layer_step_ms'):.1f} "
                           f"| {median_field(rows, 'overhead_ratio'):.3f} "
                           f"| {max(r['allocations_per_step'] for r in rows):.0f} |")
        out.append("")
        xs = [r for r in layers if r.get("gemm") == "xsimd"]
        if xs:
            ratio = median_field(xs, "overhead_ratio")
            targets.append(("layer step / its three GEMMs (4096→4096, batch 256)",
                            f"{ratio:.3f}", "≤ 1.10", ratio <= 1.1))
            allocated = max(r["allocations_per_step"] for r in layers)
            targets.append(("allocations per steady-state step (layer and MLP)",
                            f"{allocated:.0f}", "0", allocated == 0))

    out += ["## 3. Model-parallel scaling and 4. PyTorch", ""]
    mlp1 = tagged(read(results, "mlp_1.txt"), "mlp")
    mlp2 = tagged(read(results, "mlp_2.txt"), "mlp")
    torch = tagged(read(results, "pytorch.txt"), "pytorch")
    if mlp1 and mlp2:
        s1, s2 = median_field(mlp1, "steps_per_s"), median_field(mlp2, "steps_per_s")
        out.append("MLP 1024-4096-4096-1024 (column → row → column, ReLU), batch 256, float, MSE, "
                   "SGD, one thread per rank, `mpiexec --bind-to core`.\n")
        out.append("| ranks | steps/s | samples/s | GFLOP/s per rank | allocations/step |")
        out.append("|---:|---:|---:|---:|---:|")
        for rows in (mlp1, mlp2):
            out.append(f"| {rows[0]['ranks']:.0f} | {median_field(rows, 'steps_per_s'):.2f} | "
                       f"{median_field(rows, 'samples_per_s'):.0f} | "
                       f"{median_field(rows, 'gflops_per_rank'):.1f} | "
                       f"{max(r['allocations_per_step'] for r in rows):.0f} |")
        if "percent_of_peak" in mlp1[0]:
            share = median_field(mlp1, "percent_of_peak")
            out.append(f"\nOne rank's step runs at **{shown(share, 0, 80)}%** of the core's FMA peak "
                       f"({median_field(mlp1, 'gflops_per_rank'):.1f} of "
                       f"{median_field(mlp1, 'fma_peak_gflops'):.1f} GFLOP/s, the peak measured "
                       f"between the timed steps; target ≥ 80%: {verdict(share >= 80)}).")
            targets.append(("training step, 1 rank: % of the FMA peak (bench_mlp)",
                            f"{shown(share, 0, 80)}%", "≥ 80%", share >= 80))
        out.append(f"\nScaling 1 → 2 ranks: **{shown(s2 / s1, 2, 1.85)}×** (target ≥ 1.85: "
                   f"{verdict(s2 / s1 >= 1.85)}).\n")
        targets.append(("MLP scaling 1 → 2 ranks (bench_mlp runs)", f"{shown(s2 / s1, 2, 1.85)}×",
                        "≥ 1.85",
                        s2 / s1 >= 1.85))
        bf16 = tagged(read(results, "mlp_1_bf16.txt"), "mlp")
        if bf16:
            speedup = median_field(bf16, "samples_per_s") / median_field(mlp1, "samples_per_s")
            out.append(f"bf16 mixed precision (`--precision bf16`), 1 rank, runs alternating with "
                       f"the fp32 ones: {median_field(bf16, 'samples_per_s'):.0f} samples/s "
                       f"({median_field(bf16, 'step_ms'):.1f} ms a step), "
                       f"**{shown(speedup, 2, 1.7)}×** fp32's (target ≥ 1.7: "
                       f"{verdict(speedup >= 1.7)}).\n")
            targets.append(("bf16 step / fp32 step, 1 rank: samples/s (bench_mlp)",
                            f"{shown(speedup, 2, 1.7)}×", "≥ 1.7", speedup >= 1.7))
        out += phase_lines(read(results, "mlp_1.txt") + read(results, "mlp_2.txt"))
    runtime = tagged(read(results, "runtime.txt"), "runtime")
    if runtime:
        out.append("The run-time network (`network<>`, layers behind virtual calls) against "
                   "`sequential<>` with the same layers, steps alternated within each run "
                   "(medians of the runs):\n")
        out.append("| ranks | sequential step ms | network step ms | network / sequential | "
                   "allocations/step | same loss |")
        out.append("|---:|---:|---:|---:|---:|---|")
        for ranks in sorted({r["ranks"] for r in runtime}):
            rows = [r for r in runtime if r["ranks"] == ranks]
            ratio = median_field(rows, "network_over_sequential")
            allocated = max(max(r["sequential_allocations_per_step"],
                                r["network_allocations_per_step"]) for r in rows)
            same = all(r["same_loss"] == "yes" for r in rows)
            out.append(f"| {ranks:.0f} | {median_field(rows, 'sequential_step_ms'):.1f} | "
                       f"{median_field(rows, 'network_step_ms'):.1f} | {ratio:.3f} | "
                       f"{allocated:.0f} | {'yes' if same else 'no'} |")
            targets.append((f"run-time network step / compile-time, {ranks:.0f} rank(s)",
                            f"{ratio:.3f}", "≤ 1.02", ratio <= 1.02))
        out.append("")
    if torch:
        t = torch[0]
        best2 = max(t["torch2"], t["torch_tp"])
        r1, r2 = t["ours1"] / t["torch1"], t["ours2"] / best2
        out.append(f"Against PyTorch ({read(results, 'torch_version.txt').strip() or '?'}, CPU), "
                   f"the same model, batch, loss and optimizer, runs interleaved "
                   f"({t['repeats']:.0f} repeats × {t['steps']:.0f} steps, medians):\n")
        out.append("| cores | shardnet steps/s | PyTorch steps/s | ratio | target |")
        out.append("|---:|---:|---:|---:|---:|")
        out.append(f"| 1 | {t['ours1']:.2f} (1 rank) | {t['torch1']:.2f} (1 thread) | {r1:.2f} "
                   f"| ≥ 1.10 {verdict(r1 >= 1.1)} |")
        targets.append(("samples/s vs PyTorch, 1 core", f"{r1:.2f}×", "≥ 1.10", r1 >= 1.1))
        targets.append(("samples/s vs PyTorch's best 2-core figure", f"{r2:.2f}×", "≥ 1.15",
                        r2 >= 1.15))
        out.append(f"| 2 | {t['ours2']:.2f} (2 ranks) | {t['torch2']:.2f} (2 threads), "
                   f"{t['torch_tp']:.2f} (2-process tensor parallel, gloo) | {r2:.2f} vs best "
                   f"| ≥ 1.15 {verdict(r2 >= 1.15)} |")
        out.append("")
        data = os.path.join(images, "scaling.dat")
        with open(data, "w") as f:
            f.write(f"1 {t['ours1'] * 256:.1f} {t['torch1'] * 256:.1f}\n")
            f.write(f"2 {t['ours2'] * 256:.1f} {best2 * 256:.1f}\n")
        png = os.path.join(images, "benchmark_scaling.png")
        gnuplot(f"""
set terminal pngcairo noenhanced size 640,400 font 'sans,10'
set output '{png}'
set title 'MLP 1024-4096-4096-1024, batch 256: training samples/s'
set xlabel 'cores (shardnet: ranks; PyTorch: best of threads / tensor-parallel processes)'
set ylabel 'samples/s'
set xrange [0.5:2.5]
set xtics 1
set yrange [0:*]
set grid
set key top left
plot '{data}' using 1:2 with linespoints pt 7 title 'shardnet', \
     '' using 1:3 with linespoints pt 5 title 'PyTorch'
""")
        os.remove(data)
        out.append(f"![samples/s vs cores]({os.path.relpath(png, os.path.dirname(OUTPUT))})\n")

    out += ["## 5. Communication", ""]
    comm = tagged(read(results, "comm.txt"), "comm")
    if comm:
        out.append("`mpi_communicator` against the raw MPI call on 2 ranks (shared memory), "
                   "alternating, per-call time the slowest rank's, medians. Bus bandwidth as in "
                   "nccl-tests: all-reduce bytes/t·2(P−1)/P, all-gather bytes/t·(P−1)/P "
                   "(target ≥ 0.95×).\n")
        out.append("| operation | bytes | ours µs | MPI µs | ours GB/s | MPI GB/s | ratio |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for c in comm:
            out.append(f"| {c['op']} | {human(c['bytes'])} | {c['ours_us']:.1f} | "
                       f"{c['mpi_us']:.1f} | {c['ours_busbw_gbs']:.2f} | "
                       f"{c['mpi_busbw_gbs']:.2f} | {c['ratio']:.3f} |")
        low = min(comm, key=lambda c: c["ratio"])
        out.append(f"\nLowest ratio: {low['ratio']:.3f} ({low['op']}, {human(low['bytes'])}).\n")
        for op in ("all_reduce", "all_gather"):
            rows = [c for c in comm if c["op"] == op]
            if rows:
                worst = min(c["ratio"] for c in rows)
                targets.append((f"{op} bus bandwidth / raw MPI, 4 KiB to 64 MiB (lowest)",
                                f"{worst:.3f}", "≥ 0.95", worst >= 0.95))
    dp = tagged(read(results, "data_parallel.txt"), "data_parallel")
    if dp:
        d = dp[0]
        out.append("Data-parallel gradient all-reduce hidden in backward: every rank a replica of "
                   f"the MLP ({d['rows_per_rank']:.0f} rows each, {d['gradient_mib']:.0f} MiB of "
                   "gradients per step). Steps without reduction, with the reduction after "
                   "backward, and with `backward(model, dy, data)` (each layer's all-reduce "
                   "started as soon as its gradients exist, polled between GEMM blocks) alternate "
                   "step by step. hidden = (blocking − overlapped) / (blocking − compute only). "
                   "Run with OpenMPI's own choice of non-blocking all-reduce algorithm, and with "
                   "`--mca coll_libnbc_iallreduce_algorithm 3` (Rabenseifner).\n")
        out.append("| MPI_Iallreduce algorithm | compute only ms | blocking ms | overlapped ms | "
                   "exposed comm, blocking ms | exposed comm, overlapped ms | hidden |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for d in dp:
            algorithm = "Rabenseifner" if d.get("iallreduce") == "rabenseifner" else \
                "OpenMPI default"
            out.append(f"| {algorithm} | {d['compute_ms']:.1f} | {d['blocking_ms']:.1f} | "
                       f"{d['overlapped_ms']:.1f} | {d['exposed_comm_blocking_ms']:.1f} | "
                       f"{d['exposed_comm_overlapped_ms']:.1f} | {100 * d['hidden']:.0f}% |")
            targets.append((f"data-parallel all-reduce hidden in backward ({algorithm})",
                            f"{100 * d['hidden']:.0f}%", "shown", None))
        out.append("")
        out.append("A negative share means the overlapped step was slower than reducing after "
                   "backward. Two things limit overlap on one node: Open MPI's non-blocking "
                   "all-reduce defaults to a binomial algorithm for in-place buffers and below 4 "
                   "ranks (about twice the data movement of the blocking call; compare `all_reduce_async` with "
                   "`all_reduce` above), and on shared memory the transfer is the cores' own "
                   "copying and adding, which cannot hide behind computation on the same cores. "
                   "Most of the gradient (the 4096 × 4096 layer) also becomes ready only before "
                   "the last, smallest layer's backward. Hence the trainer's "
                   "`overlap_gradient_reduction` is off by default; see "
                   "[multi-node.md](multi-node.md#what-to-tune).\n")

    out += ["## 6. Memory", ""]
    # Peak memory hardly varies between runs: the last SGD run and the Adam run.
    memory = tagged(read(results, "mlp_2.txt"), "memory")[-1:] + \
        tagged(read(results, "mlp_2_adam.txt"), "memory")
    if memory:
        out.append("Peak resident memory per rank (getrusage) of the MLP on 2 ranks, against what "
                   "the model needs: (weights + gradients + optimizer state) / 2 + activations "
                   "(the buffers a step keeps for backward; bench_mlp.cpp spells them out). The "
                   "process's resident memory before the model is built (MPI, libraries) is "
                   "shown apart; the target compares the growth from there (≤ 1.10×).\n")
        out.append("| optimizer | peak RSS MiB | RSS before the model MiB | model needs MiB | "
                   "(peak − before) / needs | peak / needs |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for m in memory:
            out.append(f"| {m['optimizer']} | {m['peak_rss_mib']:.1f} | "
                       f"{m['rss_before_model_mib']:.1f} | {m['model_mib']:.1f} | "
                       f"{m['peak_over_model']:.3f} | {m['peak_rss_mib'] / m['model_mib']:.3f} |")
            targets.append((f"peak memory growth / model needs, 2 ranks, {m['optimizer']}",
                            f"{m['peak_over_model']:.3f}", "≤ 1.10", m["peak_over_model"] <= 1.1))
        out.append("")

    header += ["## Summary against the targets", "",
               "Run-to-run spread on this shared virtual machine is several percent per figure "
               "(a burst of load elsewhere lands on one shape or one message size), so a row "
               "within a few percent of its target can flip between runs; the per-shape and "
               "per-size tables below show where.", "",
               "| target | measured | wanted | |",
               "|---|---:|---:|---|"]
    for what, measured, wanted, met in targets:
        header.append(f"| {what} | {measured} | {wanted} | "
                      f"{'' if met is None else verdict(met)} |")
    header.append("")
    out = header + body
    summary_start = header.index("| target | measured | wanted | |")
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    link = os.path.relpath(OUTPUT, os.path.dirname(readme))
    intro = (f"Last run: {fields_of.get('core', 'unknown core')} ({fields_of.get('CPU', 'unknown CPU')}); "
             f"{fields_of.get('date', '?')}, git "
             f"{fields_of.get('git', '?')}, load average {fields_of.get('load average before the run', '?')} "
             f"before ([full report]({link})):")
    replace_between(readme, "<!-- benchmarks:begin", "<!-- benchmarks:end -->",
                    [intro, ""] + header[summary_start:])
    with open(OUTPUT, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    if index:
        update_index(index, os.path.dirname(OUTPUT))


def machine_fields(machine):
    """The "key: value" lines of machine.txt as a dict."""
    return dict(line.split(": ", 1) for line in machine.splitlines() if ": " in line)


def replace_between(path, begin_marker, end_marker, lines):
    """Puts `lines` between the two marker lines of the file at `path`, if it has both."""
    if not os.path.exists(path):
        return
    text = open(path).read()
    begin = text.find(begin_marker)
    end = text.find(end_marker)
    if begin < 0 or end < begin:
        return
    begin = text.index("\n", begin) + 1
    with open(path, "w") as f:
        f.write(text[:begin] + "\n".join(lines).strip() + "\n" + text[end:])


def update_index(index, reports_dir):
    """Rewrites the list of machine reports in `index` from every report in `reports_dir`: one
    row per CPU, with the machine lines each report starts with."""
    rows = ["| report | CPU | run | git |", "|---|---|---|---|"]
    for name in sorted(os.listdir(reports_dir)):
        if not name.endswith(".md"):
            continue
        # The "## Machine" section: machine.txt's lines as bullets, up to the next blank line.
        text = read(reports_dir, name)
        section = text.split("\n## Machine\n\n", 1)[-1].split("\n\n", 1)[0]
        lines = machine_fields("\n".join(line[2:] for line in section.splitlines()
                                         if line.startswith("- ")))
        link = os.path.relpath(os.path.join(reports_dir, name), os.path.dirname(index))
        rows.append(f"| [{name[:-3]}]({link}) | {lines.get('CPU', '?')} | {lines.get('date', '?')} "
                    f"| {lines.get('git', '?')} |")
    replace_between(index, "<!-- reports:begin", "<!-- reports:end -->", rows)


def human(n):
    n = int(n)
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n // size} {unit}"
    return f"{n} B"


if __name__ == "__main__":
    main()
