#!/usr/bin/env bash
# Runs every benchmark and writes this CPU's report, docs/benchmarks/<core>.md, with its plots
# (docs/images/<core>/), and lists it in docs/benchmarks.md beside the other machines' reports.
# Installs what is missing (the build's packages, and python3-torch for the PyTorch comparison),
# builds the bench preset, then runs, one after another so they do not disturb each other:
#   bench_gemm   (against OpenBLAS's best kernel for the CPU, then its AVX2 Zen kernel; twice each)
#   gemm_roofline.py  (fp32 and bf16 GEMM per shape against the peak, OpenBLAS and PyTorch)
#   bench_mlp    --layer-bench (3 runs), 1 and 2 ranks (3 runs each; Adam once for memory),
#                --precision bf16 on 1 rank (3 runs, alternating with the fp32 ones),
#                --data-parallel (OpenMPI's Iallreduce algorithm, then Rabenseifner's),
#                --runtime-network on 1 and 2 ranks (3 runs each)
#   bench_comm   on 2 ranks
#   bench_pytorch.py  (shardnet and PyTorch interleaved, 3 repeats)
# Raw outputs stay in build/bench/results. Takes about 15 minutes on 2 cores; run it on a quiet
# machine. BENCH_QUICK=1 shortens every run (for checking the script, not for figures).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --bench
cmake --preset bench >/dev/null
cmake --build --preset bench --target bench_gemm bench_mlp bench_comm
# Figures from binaries whose micro-kernels call out of their depth loop would measure the
# compiler's inlining, not the GEMM (tests/micro_kernels_inlined.sh): refuse to take them.
bash tests/micro_kernels_inlined.sh "${OBJDUMP:-objdump}" build/bench/benchmarks/bench_gemm \
    build/bench/benchmarks/bench_mlp
# Nor from a peak that does not run every FMA it counts (tests/fma_peak_complete.sh).
bash tests/fma_peak_complete.sh "${OBJDUMP:-objdump}" build/bench/benchmarks/bench_gemm \
    build/bench/benchmarks/bench_mlp

# The report's name: the core's microarchitecture where /proc/cpuinfo's vendor, family and
# model say it (AMD's family 25 holds Zen 3 and Zen 4, told apart by model), else those three.
core_name() {
    local vendor family model
    vendor=$(sed -n 's/^vendor_id[[:space:]]*: //p' /proc/cpuinfo | head -1)
    family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1)
    model=$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1)
    case "$vendor:$family:$model" in
    AuthenticAMD:25:*)
        if ((model >= 0x10 && model <= 0x1f || model >= 0x60 && model <= 0x7f ||
            model >= 0xa0 && model <= 0xaf)); then echo zen4; else echo zen3; fi ;;
    AuthenticAMD:26:*) echo zen5 ;;
    *) echo "$vendor-family-$family-model-$model" | tr '[:upper:]' '[:lower:]' ;;
    esac
}
core=$(core_name)

bin=build/bench/benchmarks
results=build/bench/results
mkdir -p "$results" docs/benchmarks "docs/images/$core"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mpi=(mpiexec --allow-run-as-root --oversubscribe --bind-to core)

quick=${BENCH_QUICK:-0}
gemm_args=() steps=20 repeats=3 layer_runs=3 runs=2
if [ "$quick" = 1 ]; then
    gemm_args=(--m 64 --kn 1024 --min-time 0.05) steps=3 repeats=1 layer_runs=1 runs=1
fi

{
    echo "core: $core"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc --all) cores, cpu family $(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1), model $(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1) ($(lscpu | sed -n 's/^Flags:.*\(avx512_bf16\).*/AVX512-BF16, /p')L1d $(getconf LEVEL1_DCACHE_SIZE) B, L2 $(getconf LEVEL2_CACHE_SIZE) B per core)"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "compiler: $(g++ --version | head -1)"
    echo "MPI: $(mpiexec --version | head -1)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$results/machine.txt"
/usr/bin/python3 -c 'import torch; print("PyTorch", torch.__version__)' >"$results/torch_version.txt"

echo "run-benchmarks: GEMM"
rm -f "$results"/gemm_*.txt "$results"/mlp_*.txt
for run in $(seq "$runs"); do
    "$bin/bench_gemm" "${gemm_args[@]}" >"$results/gemm_default_$run.txt"
    "$bin/bench_gemm" "${gemm_args[@]}" --openblas-core Zen >"$results/gemm_zen_$run.txt"
done

echo "run-benchmarks: GEMM rate per shape against the peak, fp32 and bf16, with PyTorch"
/usr/bin/python3 benchmarks/gemm_roofline.py "$bin/bench_gemm" --png "docs/images/$core/gemm_roofline.png" \
    >"$results/gemm_roofline.md"

echo "run-benchmarks: layer, MLP, memory"
: >"$results/layer.txt"
for _ in $(seq "$layer_runs"); do
    "$bin/bench_mlp" --layer-bench --steps "$steps" >>"$results/layer.txt"
done
for _ in $(seq "$repeats"); do  # alternating, so that load drifts hit both rank counts
    "${mpi[@]}" -n 1 "$bin/bench_mlp" --steps "$steps" >>"$results/mlp_1.txt"
    "${mpi[@]}" -n 2 "$bin/bench_mlp" --steps "$steps" >>"$results/mlp_2.txt"
    "${mpi[@]}" -n 1 "$bin/bench_mlp" --precision bf16 --steps "$steps" >>"$results/mlp_1_bf16.txt"
done
"${mpi[@]}" -n 2 "$bin/bench_mlp" --steps 5 --optimizer adam >"$results/mlp_2_adam.txt"
# The run-time network against sequential<...>, steps alternated inside each run.
: >"$results/runtime.txt"
for _ in $(seq "$repeats"); do
    "${mpi[@]}" -n 1 "$bin/bench_mlp" --runtime-network --steps "$steps" >>"$results/runtime.txt"
    "${mpi[@]}" -n 2 "$bin/bench_mlp" --runtime-network --steps "$steps" >>"$results/runtime.txt"
done
# OpenMPI's own choice of non-blocking all-reduce, then Rabenseifner's (bandwidth-optimal).
"${mpi[@]}" -n 2 "$bin/bench_mlp" --data-parallel --steps "$steps" >"$results/data_parallel.txt"
"${mpi[@]}" -n 2 --mca coll_libnbc_iallreduce_algorithm 3 "$bin/bench_mlp" --data-parallel \
    --steps "$steps" | sed 's/^data_parallel:/data_parallel: iallreduce=rabenseifner/' \
    >>"$results/data_parallel.txt"

echo "run-benchmarks: collectives"
"${mpi[@]}" -n 2 "$bin/bench_comm" --min-seconds 0.5 >"$results/comm.txt"

echo "run-benchmarks: PyTorch"
/usr/bin/python3 benchmarks/bench_pytorch.py --bench-mlp "$bin/bench_mlp" \
    --repeats "$repeats" --steps "$((steps < 15 ? steps : 15))" >"$results/pytorch.txt"

echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results/machine.txt"
/usr/bin/python3 benchmarks/report.py "$results" "docs/benchmarks/$core.md" "docs/images/$core" \
    docs/benchmarks.md
echo "run-benchmarks: wrote docs/benchmarks/$core.md"
