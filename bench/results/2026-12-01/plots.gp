set terminal pngcairo size 900,560 font 'sans,10'
set grid
set key below
set output 'throughput_vs_connections.png'
set title 'Requests/s vs connections (wrk, 1 KB chat body, median of rounds)'
set xlabel 'connections'
set ylabel 'requests/s'
set xrange [0.8:80.0]
set logscale xy
set xtics (1, 8, 32, 64)
plot 'plot_rps_sidecar-route.dat' using 1:2 with linespoints lw 2 title 'hpp-sidecar /v1/route', \
     'plot_rps_sidecar-proxy.dat' using 1:2 with linespoints lw 2 title 'hpp-sidecar proxy -> stub', \
     'plot_rps_portkey.dat' using 1:2 with linespoints lw 2 title 'Portkey gateway (conditional) -> stub', \
     'plot_rps_upstream-direct.dat' using 1:2 with linespoints lw 2 title 'upstream stub direct', \
     'plot_rps_nginx-static.dat' using 1:2 with linespoints lw 2 title 'nginx static reply (ceiling)'
unset logscale
set xtics autofreq
set autoscale x
set output 'latency_cdf.png'
set title 'Latency CDF at 32 connections (wrk, closed loop, last round)'
set xlabel 'latency (us, log scale)'
set ylabel 'percentile'
set logscale x
set yrange [0:100]
plot 'plot_cdf_sidecar-route.dat' using 1:2 with lines lw 2 title 'hpp-sidecar /v1/route', \
     'plot_cdf_sidecar-proxy.dat' using 1:2 with lines lw 2 title 'hpp-sidecar proxy -> stub', \
     'plot_cdf_portkey.dat' using 1:2 with lines lw 2 title 'Portkey gateway (conditional) -> stub', \
     'plot_cdf_upstream-direct.dat' using 1:2 with lines lw 2 title 'upstream stub direct', \
     'plot_cdf_nginx-static.dat' using 1:2 with lines lw 2 title 'nginx static reply (ceiling)'
unset logscale
set autoscale y
set output 'engine_depth.png'
set title 'hpp-engine: decisions/s vs pipelining depth (tcp loopback)'
set xlabel 'requests in flight'
set ylabel 'decisions/s'
set logscale x 2
set yrange [0:*]
plot 'plot_engine_depth.dat' using 1:2 with linespoints lw 2 notitle
unset logscale
set autoscale y
