#!/usr/bin/env bash
# Turns train_mlp's --metrics CSV into a loss/accuracy curve PNG with gnuplot (Debian:
# gnuplot-nox). Usage: scripts/plot_metrics.sh METRICS.csv [OUT.png] [TITLE]
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 METRICS.csv [OUT.png] [TITLE]" >&2
    exit 2
fi
metrics=$1
output=${2:-${metrics%.csv}.png}
title=${3:-train_mlp: $(basename "$metrics")}
if ! command -v gnuplot >/dev/null; then
    echo "plot_metrics: needs gnuplot (apt-get install gnuplot-nox)" >&2
    exit 1
fi
# Quotes in the values would end gnuplot's strings early.
case "$metrics$output$title" in
    *"'"*) echo "plot_metrics: no ' in arguments, please" >&2; exit 2 ;;
esac
gnuplot -e "metrics='$metrics'; output='$output'; title='$title'" "$(dirname "$0")/plot_metrics.gp"
echo "plot_metrics: wrote $output"
