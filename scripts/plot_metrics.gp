# Loss and accuracy curves from train_mlp's per-step metrics CSV (--metrics FILE; columns
# step,epoch,loss,accuracy,samples_per_s), as a PNG. Per-step values are noisy (one batch
# each): they are drawn faint, with an exponential moving average over them.
#
#   gnuplot -e "metrics='metrics.csv'; output='curve.png'" scripts/plot_metrics.gp
#   (or scripts/plot_metrics.sh metrics.csv curve.png)
# Optional: title='...', smoothing=0.05 (weight of the newest step in the average).
if (!exists("metrics")) metrics = 'metrics.csv'
if (!exists("output")) output = 'metrics.png'
if (!exists("title")) title = 'train_mlp: ' . metrics
if (!exists("smoothing")) smoothing = 0.05

set datafile separator ','
set key autotitle columnhead
stats metrics using 1 nooutput
if (STATS_records < 1) { print 'plot_metrics: ', metrics, ' holds no steps'; exit status 1 }

set terminal pngcairo noenhanced size 900,400 font 'sans,10'
set output output
set multiplot layout 1,2 title title

# The moving average keeps state between rows; reset it before each curve.
average = NaN
ema(x) = (average = (average != average) ? x : smoothing * x + (1 - smoothing) * average)

set xlabel 'step'
set xrange [0:STATS_max]
set grid
set key top right
set ylabel 'training loss (log scale)'
set logscale y
average = NaN
plot metrics using 1:3 with points pt 7 ps 0.2 lc rgb '#b0c4de' title 'per step', \
     '' using 1:(ema($3)) with lines lw 2 lc rgb '#1f4e9a' title 'moving average'

unset logscale y
set ylabel 'training accuracy (per batch)'
set yrange [0:1.02]
set key bottom right
average = NaN
plot metrics using 1:4 with points pt 7 ps 0.2 lc rgb '#f4c7a1' title 'per step', \
     '' using 1:(ema($4)) with lines lw 2 lc rgb '#c0500a' title 'moving average'
unset multiplot
