# Throughput and p99 of GetToken hits, the baseline empty RPC, the baseline
# answering GetToken's message, and Health/Check against concurrency
# (scripts/bench passes data= and out=).
set terminal svg size 960,420 dynamic font "sans,11"
set output out
set multiplot layout 1,2 title "GetToken (cache hit) vs baseline empty RPC vs Health/Check, same server and client"
set logscale x 2
set xlabel "concurrent callers"
set key top left
set grid
set ylabel "throughput (RPC/s)"
set title "Throughput"
plot data using 1:2 with linespoints title "baseline (empty)", \
     data using 1:8 with linespoints title "baseline (token-sized)", \
     data using 1:3 with linespoints title "GetToken", \
     data using 1:4 with linespoints title "Health/Check"
set ylabel "p99 latency (us)"
set title "p99 latency"
plot data using 1:5 with linespoints title "baseline (empty)", \
     data using 1:9 with linespoints title "baseline (token-sized)", \
     data using 1:6 with linespoints title "GetToken", \
     data using 1:7 with linespoints title "Health/Check"
unset multiplot
