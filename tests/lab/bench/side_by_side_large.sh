# The side-by-side benchmark (side_by_side.sh) on the largest topology the lab VM was run
# with: 128 LUNs x 4 paths = 512 paths.  `make lab-bench BENCH=side_by_side_large`.
# lab-profile: release
# lab-timeout: 3600
BENCH_LUNS=128
BENCH_PATHS=4
. "$LAB_DIR/bench/side_by_side.sh"
