#!/bin/bash
# usage: tests/lab/bench/lab_bench.sh   (what `make lab-bench` runs, after a release build)
# The lab benchmark of Debian's multipathd 0.9.4 and ours: every run is ONE daemon in a fresh
# VM (bench_daemon.sh), the daemons alternate in ABBA order (Debian, ours, ours, Debian, ...)
# so that a drift of the host's load over the session hits both alike, BENCH_RUNS runs each.
# The per-run values are kept in benches/lab-runs/<paths>/ (committed: at 4,096 paths a pair of
# runs takes about 1.5 h, so five pairs are gathered over several sessions) and aggregated into
# a table (median and min-max per daemon, ours/Debian of the medians), written to
# target/lab/results/lab-bench-<paths>/table.md and into benches/README.md between the markers
# of that scale.
# Environment: BENCH_RUNS (runs per daemon, default 5), BENCH_SCALE (paths: 256, 1024 or 4096,
#   default 256; 4 paths per LUN), LAB_MEM (MiB; default by scale), LAB_TIMEOUT (per run;
#   default by scale), BENCH_RESUME=1 (keep the runs of this scale in benches/lab-runs/ and
#   make only the missing ones up to BENCH_RUNS each: a session stopped half-way, or a later
#   session adding pairs; the table names the days and host CPUs the runs were taken on).
set -euo pipefail

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(cd "$LAB/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
RUNS=${BENCH_RUNS:-5}
SCALE=${BENCH_SCALE:-256}
PATHS=4
# Requests per latency row, sequential (so the median and the p99 are of the same daemon
# state), none sent after LAT_BUDGET s: at 4,096 paths Debian's daemon took 2.5 s a `show
# paths`, and 200 `show maps json` would have run past the VM's time limit.
LAT_N=200
LAT_BUDGET=300
# Memory and time grow with the sd devices: the kernel's per-device structures, udev's replay
# and the daemons' start all scale with the paths.
case $SCALE in
    256) LUNS=64 MEM=2048 TIMEOUT=1200 ;;
    1024) LUNS=256 MEM=3072 TIMEOUT=3600 ;;
    4096) LUNS=1024 MEM=6144 TIMEOUT=9000 ;;   # Debian's run with the uevent storm: 5,158 s, and the waits for udev before the storms
    *) echo "lab-bench: BENCH_SCALE must be 256, 1024 or 4096 (paths), not '$SCALE'" >&2; exit 2 ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "lab-bench: BENCH_RUNS must be a positive number" >&2; exit 2; }
MEM=${LAB_MEM:-$MEM}
TIMEOUT=${LAB_TIMEOUT:-$TIMEOUT}
OUT=$TARGET/lab/results/lab-bench-$SCALE
RUNS_DIR=$REPO/benches/lab-runs/$SCALE
# what the release build was made from (make lab-bench builds it just before)
REV=$(git -C "$REPO" describe --always --dirty)
WRAP=$TARGET/lab/bench
[ "${BENCH_RESUME:-0}" = 1 ] || rm -rf "$RUNS_DIR"
mkdir -p "$OUT" "$RUNS_DIR" "$WRAP"

# ABBA: pair i runs Debian first when i is odd, ours first when it is even.
order=()
for ((i = 1; i <= RUNS; i++)); do
    if ((i % 2)); then order+=("debian $i" "ours $i"); else order+=("ours $i" "debian $i"); fi
done

for entry in "${order[@]}"; do
    read -r daemon i <<< "$entry"
    name=bench-$SCALE-$daemon-$i
    if [ -e "$RUNS_DIR/$name.values" ]; then echo "lab-bench: run $i of $daemon: kept from before"; continue; fi
    # run.sh takes its profile and timeout from the script's header lines, and results go
    # to target/lab/results/<script name>/: one wrapper per run.
    cat > "$WRAP/$name.sh" <<EOF
# lab-profile: release
# lab-timeout: $TIMEOUT
BENCH_DAEMON=$daemon
BENCH_LUNS=$LUNS
BENCH_PATHS=$PATHS
BENCH_LAT_N=$LAT_N
BENCH_LAT_BUDGET=$LAT_BUDGET
. "\$LAB_DIR/bench/bench_daemon.sh"
EOF
    echo "lab-bench: run $i of $daemon ($SCALE paths, ${MEM} MiB) at $(date +%H:%M:%S)"
    LAB_PROFILE=release LAB_NO_BUILD=1 LAB_MEM=$MEM "$LAB/run.sh" "$WRAP/$name.sh" ||
        { echo "lab-bench: run $name failed: see $TARGET/lab/results/$name/" >&2; exit 1; }
    res=$TARGET/lab/results/$name
    # the host's load when the run ended: other VMs and builds on the same cores slow both
    # daemons, and ABBA only evens out a load that drifts slowly
    # and the build it measured: a resumed session may hold runs of earlier builds
    { cat "$res/values"; echo "vm_seconds=$(cat "$res/seconds")"; echo "host_load=$(cut -d' ' -f1 /proc/loadavg)"; echo "rev=$REV"
      echo "taken=$(date -u +%Y-%m-%d)"; echo "host_cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    } > "$RUNS_DIR/$name.values"
done

# SEL: which runs agg reads: all (empty); idle: the runs whose storms began with udev idle
# (bench_daemon.sh waits for udev's queue to empty before each storm since it records
# storms_udev_idle); busy: the runs from before, whose storms began behind udev's queue of
# the phase before them
SEL=
# files DAEMON: the daemon's run files at this scale that SEL takes
files() {
    for _f in "$RUNS_DIR"/bench-"$SCALE"-"$1"-*.values; do
        case $SEL in
            idle) grep -qx 'storms_udev_idle=1' "$_f" || continue ;;
            busy) grep -qx 'storms_udev_idle=1' "$_f" && continue ;;
        esac
        echo "$_f"
    done
}
# agg DAEMON KEY: "median min max" of KEY over the daemon's runs; "-" when no run has it, and
# the values as they are (such as ">4000") when one is not a number
agg() {
    files "$1" | xargs -r cat | sed -n "s/^$2=//p" | sort -n | awk '
        $1 !~ /^[0-9.]+$/ { bad = 1 }
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "-"; exit }
            if (bad) { for (i = 1; i <= NR; i++) printf "%s%s", v[i], (i < NR ? "/" : "\n"); exit }
            # the lower median for an even count, as the runs are few
            printf "%s %s %s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
# runs DAEMON: how many runs of the daemon SEL takes at this scale (more than BENCH_RUNS when
# a session asked for fewer than are kept)
runs() { files "$1" | grep -c . || true; }
ND=$(runs debian) NO=$(runs ours)
# cell "MEDIAN MIN MAX": the range only where the runs differ (one run has none; the table's
# heading says how many runs its cells are of)
cell() {
    read -r med lo hi <<< "$1"
    if [ -z "$lo" ] || [ "$lo" = "$hi" ]; then echo "$med"; else echo "$med ($lo–$hi)"; fi
}
row() {   # row TITLE KEY
    d=$(agg debian "$2") o=$(agg ours "$2")
    ratio=$(awk -v d="${d%% *}" -v o="${o%% *}" 'BEGIN {
        if (d ~ /^[0-9.]+$/ && o ~ /^[0-9.]+$/ && d + 0 > 0) printf "%.2f", o / d; else print "-" }')
    # a row no run of this scale has yet (runs older than the row) is left out
    [ "$d$o" = -- ] || echo "| $1 | $(cell "$d") | $(cell "$o") | $ratio |"
}
first() { sed -n "s/^$2=//p" "$RUNS_DIR/bench-$SCALE-$1-1.values"; }
# distinct DAEMON KEY: the values of KEY over the daemon's runs, each once, in the runs' order
# ("N run(s) not recorded" for runs older than that key): the builds of ours the runs measured
# (rev), the days they were taken (taken)
distinct() {
    awk -F= -v k="$2" '$1 == k && !($2 in r) { r[$2]; l = l (l == "" ? "" : ", ") $2 } $1 == k { n++ }
             FNR == 1 { f++ } END { if (f > n) l = l (l == "" ? "" : ", ") (f - n) " run(s) not recorded"; print l }' \
        "$RUNS_DIR"/bench-"$SCALE"-"$1"-*.values
}
# per_s DAEMON KEY: the uevent storm's path count over the median seconds of KEY
per_s() {
    a=$(agg "$1" "$2")
    awk -v n="$(first debian storm_paths)" -v s="${a%% *}" 'BEGIN {
        if (s ~ /^[0-9.]+$/ && s + 0 > 0) printf "%.0f", n / s; else print "-" }'
}
# spread: what the cells of the runs SEL takes are
spread() {
    if [ "$ND$NO" = 11 ]; then echo "one run each"
    elif [ "$ND" = "$NO" ]; then echo "median (min–max) of $ND runs each"
    else echo "median (min–max) of $ND runs of Debian's, $NO of ours"; fi
}
# storms TITLE: the storm rows of the runs SEL takes, as a table of their own, with the lines
# that are not the daemons' (nothing when SEL takes no run)
storms() {
    ND=$(runs debian) NO=$(runs ours)
    [ "$ND$NO" != 00 ] || return 0
    echo
    echo "$1; $(spread):"
    echo
    echo "| row (lower is better) | Debian | ours | ours/Debian |"
    echo "|---|---|---|---|"
    row "storm: a quarter of the paths lost, the slowest from its loss until DM failed it (s)" storm_all_failed_s
    row "storm: back, the slowest from its return until DM reinstated it (s)" storm_all_back_s
    row "storm: IO errors (reads every 0.5 s on every map)" storm_io_errors
    row "storm: show paths every 0.25 s, median (ms)" storm_show_p50_ms
    row "storm: show paths, p99 (ms)" storm_show_p99_ms
    row "storm: show paths, slowest (ms)" storm_show_max_ms
    row "storm: show paths unanswered in 5 s" storm_show_unanswered
    row "storm: the daemon's busiest second (% of one CPU)" storm_peak_cpu_pct
    row "storm: the daemon's CPU from the loss until every path was back (s)" storm_cpu_s
    row "uevent storm: the host's devices removed, until no map held them (s)" uevent_remove_s
    row "uevent storm: rescanned, until every map held every path again (s)" uevent_add_s
    row "uevent storm: IO errors (reads every 0.5 s on every map)" uevent_io_errors
    row "uevent storm: the daemon's CPU from the first delete until every map was whole (s)" uevent_cpu_s
    row "uevent storm: maps without a /dev/mapper node after it, udev settled" uevent_nodes_missing
    echo
    echo "Not daemon rows: the storm from the loss until every path was back (s) $(cell "$(agg debian storm_window_s)") / $(cell "$(agg ours storm_window_s)");"
    # the measuring client's, not the daemon's: it says how much of the slowest reply was
    # the client's own wait behind other threads, so no ratio
    echo "of the storm's slowest show paths, the measuring client's own wait for a CPU (ms) $(cell "$(agg debian storm_show_max_client_wait_ms)") / $(cell "$(agg ours storm_show_max_client_wait_ms)");"
    if [ "$(agg debian storm_udev_wait_s)$(agg ours storm_udev_wait_s)" != -- ]; then
        echo "the wait for udev's queue to empty before the storm (s) $(cell "$(agg debian storm_udev_wait_s)") / $(cell "$(agg ours storm_udev_wait_s)"), before the uevent storm"
        echo "$(cell "$(agg debian uevent_udev_wait_s)") / $(cell "$(agg ours uevent_udev_wait_s)"), runs where it was still not empty then $(udev_left debian) / $(udev_left ours);"
        echo "block events the kernel had sent that udev passed on only after the first delete $(cell "$(agg debian uevent_udev_queue_at_delete)") / $(cell "$(agg ours uevent_udev_queue_at_delete)"),"
        echo "only after the rescan began $(cell "$(agg debian uevent_udev_queue_at_rescan)") / $(cell "$(agg ours uevent_udev_queue_at_rescan)");"
    fi
    if [ "$(agg debian uevent_remove_s)$(agg ours uevent_remove_s)" != -- ]; then
        echo "the uevent storm's $(first debian storm_paths) path uevents handled per second (from the medians above), removal"
        echo "$(per_s debian uevent_remove_s) / $(per_s ours uevent_remove_s), return $(per_s debian uevent_add_s) / $(per_s ours uevent_add_s); block uevents udev passed on (the paths' and"
        echo "the maps' change events of the reloads), removal $(cell "$(agg debian uevent_remove_events)") / $(cell "$(agg ours uevent_remove_events)"), return $(cell "$(agg debian uevent_add_events)") / $(cell "$(agg ours uevent_add_events)")."
    fi
}
# udev_left DAEMON: of the runs SEL takes, how many found udev's queue still not empty when
# the wait before a storm gave up
udev_left() { files "$1" | xargs -r grep -lE '^(storm|uevent)_udev_left=1' | grep -c . || true; }

{
    echo "$LUNS LUNs x $PATHS paths = $SCALE paths (scsi_debug), qemu TCG, 2 vCPUs, $MEM MiB; Debian's"
    echo "multipathd $(first debian version) and ours (release builds: $(distinct ours rev)),"
    echo "each alone in a fresh VM, ABBA order; $(spread); taken: Debian's $(distinct debian taken), ours $(distinct ours taken);"
    echo "host CPUs: Debian's $(distinct debian host_cpu), ours $(distinct ours host_cpu); per-run values in benches/lab-runs/$SCALE/."
    echo
    echo "| row (lower is better) | Debian | ours | ours/Debian |"
    echo "|---|---|---|---|"
    row "start to every map loaded with every path (s)" maps_loaded_s
    row "start to maps ready: loaded, udev settled, nodes there (s)" maps_ready_s
    row "Pss, steady (KiB)" pss_kib
    row "RssAnon, steady (KiB)" rss_anon_kib
    row "CPU over $(first debian cpu_window_s) s at max_polling_interval (s)" cpu_s
    row "show paths, median of $LAT_N (ms)" show_paths_median_ms
    row "show paths, p99 of $LAT_N (ms)" show_paths_p99_ms
    row "show maps json, median of $LAT_N (ms)" show_maps_json_median_ms
    row "show maps json, p99 of $LAT_N (ms)" show_maps_json_p99_ms
    row "200 concurrent show paths: unanswered in 4 s" load_200_unanswered
    row "200 concurrent show paths: slowest (ms)" load_200_slowest_ms
    row "reconfigure until idle, maps whole, median of 3 (s)" reconfigure_s
    echo
    echo "Not daemon rows: locked memory (VmLck, KiB) Debian $(cell "$(agg debian vmlck_kib)"), ours"
    echo "$(cell "$(agg ours vmlck_kib)"); VM setup (scsi_debug load + udev replay, s) Debian"
    echo "$(cell "$(agg debian setup_topology_s)") + $(cell "$(agg debian setup_udev_s)"), ours $(cell "$(agg ours setup_topology_s)") + $(cell "$(agg ours setup_udev_s)");"
    echo "guest memory in use before the daemon (KiB) $(cell "$(agg debian guest_used_kib)") / $(cell "$(agg ours guest_used_kib)");"
    echo "wall time of a VM run (s) Debian $(cell "$(agg debian vm_seconds)"), ours $(cell "$(agg ours vm_seconds)");"
    echo "host load average at the end of a run $(cell "$(agg debian host_load)") / $(cell "$(agg ours host_load)");"
    echo "requests the latency rows made (of $LAT_N, none after $LAT_BUDGET s) Debian $(cell "$(agg debian show_paths_n)") + $(cell "$(agg debian show_maps_json_n)"),"
    echo "ours $(cell "$(agg ours show_paths_n)") + $(cell "$(agg ours show_maps_json_n)")."
    SEL=idle storms "The storms, each begun with udev idle (the harness waits for its queue to empty first)"
    SEL=busy storms "The storms of the runs from before that wait, which began behind udev's queue of the phase before"
} > "$OUT/table.md"
cat "$OUT/table.md"

# The table replaces the block between this scale's markers in benches/README.md.
readme=$REPO/benches/README.md
begin="<!-- lab-bench $SCALE: begin (written by tests/lab/bench/lab_bench.sh) -->"
end="<!-- lab-bench $SCALE: end -->"
grep -qxF "$begin" "$readme" && grep -qxF "$end" "$readme" ||
    { echo "lab-bench: no markers for $SCALE paths in $readme ('$begin' ... '$end')" >&2; exit 1; }
awk -v b="$begin" -v e="$end" -v t="$OUT/table.md" '
    $0 == b { print; while ((getline l < t) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip' "$readme" > "$readme.new"
mv "$readme.new" "$readme"
echo "lab-bench: table written to $OUT/table.md and $readme"
