#!/usr/bin/env bash
# Predicted strong and weak scaling on the built-in `cluster` machine, from shardnet_plan's cost
# model, as docs/images/scaling_strong.png and scaling_weak.png (gnuplot, Debian gnuplot-nox).
# Usage: scripts/plot_scaling.sh [PATH/TO/shardnet_plan] [OUT_DIR]
# Strong: 8192-32768-32768-8192, global batch 512, P = 1 .. 1024. Weak: 256-1024-1024-256 at
# P = 1, every width times sqrt(P) (parameters and flops per rank constant), global batch 512.
set -euo pipefail
plan=${1:-build/plan/tools/shardnet_plan}
out=${2:-docs/images}
if ! command -v gnuplot >/dev/null; then
    echo "plot_scaling: needs gnuplot (apt-get install gnuplot-nox)" >&2
    exit 1
fi
mkdir -p "$out"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$plan" --scaling strong --layers 8192,32768,32768,8192 --batch 512 > "$data/strong.txt"
"$plan" --scaling weak --layers 256,1024,1024,256 --batch 512 > "$data/weak.txt"
cp "$data/strong.txt" "$out/scaling_strong.txt"
cp "$data/weak.txt" "$out/scaling_weak.txt"
plot() {  # file, output, title, ylabel, divisor of the rates (a gnuplot expression of column 1)
    gnuplot <<GP
set terminal pngcairo size 900,560 font "sans,11"
set output '$2'
set title '$3'
set datafile missing 'nan'
set logscale x 2
set xlabel 'ranks P'
set ylabel '$4'
set key bottom left box opaque
set grid
plot '$1' using 1:(\$2/($5)) with linespoints title '1D: column,row,column over all P (default)', \
     '' using 1:(\$3/($5)) with linespoints title 'best 1D (any data x model split)', \
     '' using 1:(\$4/($5)) with linespoints title '2D: block2d on the squarest grid, D = 1', \
     '' using 1:(\$5/($5)) with linespoints title 'data-parallel (replicated, D = P)', \
     '' using 1:(\$6/($5)) with linespoints lw 2 dt 2 title "planner's choice"
GP
}
plot "$data/strong.txt" "$out/scaling_strong.png" \
    'Strong scaling on cluster: 8192-32768-32768-8192, batch 512 (predicted; replicas do not fit in 16 GiB)' \
    'samples/s per rank' '$1'
plot "$data/weak.txt" "$out/scaling_weak.png" \
    'Weak scaling on cluster: widths x sqrt(P), batch 512 (predicted)' 'samples/s' '1'
echo "plot_scaling: wrote $out/scaling_strong.png and $out/scaling_weak.png"
