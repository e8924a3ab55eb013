#!/usr/bin/env bash
# Predicted against measured: calibrates this machine with shardnet_plan and runs train_mlp on 1
# and 2 ranks (1024-4096-4096-1024, batch 256, SGD, column,row,column, synthetic data), RUNS
# times each, alternating, and prints each figure and the medians (docs/scaling.md).
# Usage: scripts/validate_plan.sh [BUILD_DIR] [RUNS] [STEPS]
# Another network: LAYERS=784,2048,2048,10 BATCH=128 OPTIMIZER=adam PARTITION=column,row,column
# bf16 mixed precision: PRECISION=bf16
set -euo pipefail
build=${1:-build/plan}
runs=${2:-3}
steps=${3:-40}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
layers=${LAYERS:-1024,4096,4096,1024}
batch=${BATCH:-256}
optimizer=${OPTIMIZER:-sgd}
partition=${PARTITION:-column,row,column}
precision=${PRECISION:-fp32}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for np in 1 2; do
    : > "$work/predicted$np"; : > "$work/measured$np"; : > "$work/steady$np"
done
for run in $(seq "$runs"); do
    for np in 1 2; do
        predicted=$(mpirun -np $np "$build/tools/shardnet_plan" --calibrate --ranks $np \
            --layers $layers --partition $partition --batch $batch --optimizer $optimizer --precision $precision |
            sed -n 's/^predicted: samples_per_s=\([0-9.]*\).*/\1/p')
        mpirun -np $np "$build/examples/train_mlp" --data synthetic --layers $layers \
            --partition $partition --optimizer $optimizer --precision $precision --batch $batch --epochs 1 \
            --train-samples $((steps * batch)) --test-samples $batch --no-progress-bar \
            --metrics "$work/metrics$np.csv" > "$work/train$np.txt" 2>&1
        measured=$(sed -n 's/^final: .*samples_per_s=\([0-9]*\).*/\1/p' "$work/train$np.txt")
        # Steady state: the median step after the first (which allocates the optimizer's state
        # and touches every buffer for the first time), from the cumulative rates of --metrics.
        steady=$(awk -F, -v b=$batch 'NR > 1 { t = ($1 + 1) * b / $5; if (NR > 2) print b / (t - prev); prev = t }' \
            "$work/metrics$np.csv" | median)
        echo "run $run, $np rank(s): predicted $predicted, measured $measured (epoch), $steady (steady-state median step) samples/s; load $(cut -d' ' -f1 /proc/loadavg)"
        echo "$predicted" >> "$work/predicted$np"; echo "$measured" >> "$work/measured$np"
        echo "$steady" >> "$work/steady$np"
    done
done
for np in 1 2; do
    p=$(median < "$work/predicted$np"); m=$(median < "$work/measured$np"); s=$(median < "$work/steady$np")
    awk -v np=$np -v p="$p" -v m="$m" -v s="$s" 'BEGIN { printf "median, %d rank(s): predicted %.1f, measured %.1f (epoch, predicted/measured %.2f), %.1f (steady state, %.2f) samples/s\n", np, p, m, p / m, s, p / s }'
done
