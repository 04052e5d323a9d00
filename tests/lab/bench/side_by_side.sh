# Side-by-side benchmark: Debian's multipathd and ours, one after the other, on the same
# topology in the same VM (default 64 LUNs x 4 paths = 256 paths), same multipath.conf.
# Not a test: it fails only when a daemon does not get through a step at all.  The table
# (both daemons, and ours/Debian's as a ratio; lower is better on every row) is printed and
# saved as $LAB_OUT/table.txt.  TCG distorts absolute times: read the ratios.
# Run it with `make lab-bench` (release build of our binaries).
# lab-profile: release
# lab-timeout: 2400
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_BIN/multipathd
# The topology can be changed by a wrapper script that sets these and sources this file.
LUNS=${BENCH_LUNS:-64}
PATHS=${BENCH_PATHS:-4}
NPATHS=$((LUNS * PATHS))
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }
map_count() { dmsetup ls --target multipath | grep -vc '^No devices'; }
paths_in_maps() { dmsetup table --target multipath | grep -oE '[0-9]+:[0-9]+' | wc -l; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] }'; }
# value LABEL KEY: a measured value saved by measure()
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
record() { echo "$2=$3" >> "$LAB_OUT/$1.values"; echo "  $1: $2 = $3"; }

flush_maps() {
    /sbin/multipath -F > /dev/null 2>&1
    udevadm settle -t 30
    for m in $(dmsetup ls --target multipath | grep -v '^No devices' | cut -f1); do
        dmsetup remove --retry "$m" > /dev/null 2>&1
    done
    expect_eq "maps left after flush" 0 "$(map_count)"
    rm -f /etc/multipath/bindings /etc/multipath/wwids
}

# dm_path_state MAP MAJ:MIN: A or F, as the kernel has it
dm_path_state() { dmsetup status "$1" | tr ' ' '\n' | grep -A1 -x "$2" | tail -1; }
devt_name() { basename "$(readlink -f "/sys/dev/block/$1")"; }

# offline_to_fail BIN LABEL: take one path of each of 6 maps offline in turn (no IO on the
# maps, so only the daemon's checker can notice) and time until DM has it failed.  How long
# that takes depends on where the path is in its checking interval; each path goes offline
# a different, fixed time after the previous one came back, the same for both daemons, so
# both are sampled across the interval rather than at one phase of it.
offline_to_fail() {
    _i=0
    for _m in $(dmsetup ls --target multipath | cut -f1 | sort | head -6); do
        _i=$((_i + 1))
        _dt=$(dmsetup table "$_m" | grep -oE '[0-9]+:[0-9]+' | sed -n "$(( (_i % PATHS) + 1 ))p")
        _sd=$(devt_name "$_dt")
        sleep "$(echo 2 14 8 17 5 11 | cut -d' ' -f$_i)"
        _t0=$(uptime_s)
        echo offline > "/sys/block/$_sd/device/state"
        _n=0
        until [ "$(dm_path_state "$_m" "$_dt")" = F ]; do
            _n=$((_n + 1)); [ $_n -lt 600 ] || fail "$2: $_sd ($_dt) of $_m not failed in DM after 60 s"
            sleep 0.1
        done
        _took=$(secs_since "$_t0")
        echo "  $2: $_sd of $_m failed in DM after $_took s"
        echo "$_took" >> "$LAB_TMP/$2.fail"
        echo running > "/sys/block/$_sd/device/state"
        wait_for "$2: $_sd reinstated in DM" 90 sh -c "[ \"\$(dmsetup status $_m | tr ' ' '\n' | grep -A1 -x $_dt | tail -1)\" = A ]" > /dev/null
    done
    record "$2" offline_to_dm_fail_s "$(median < "$LAB_TMP/$2.fail")"
}

# marginal BIN LABEL: one active path of the last map fails 1 s of every 4 s under IO; time from the
# second PATH_FAILED uevent to the path being held back (failed and `delayed`), and to the
# first IO-error-rate verdict in the log (after the 120 s sample).
marginal() {
    _bin=$1 _label=$2 _log=$LAB_OUT/$2.log
    _m=$(dmsetup ls --target multipath | cut -f1 | sort | tail -1)
    _dt=$(dmsetup table "$_m" | grep -oE '[0-9]+:[0-9]+' | sed -n 2p)
    _sd=$(devt_name "$_dt")
    echo "  $_label: flaky path $_sd ($_dt) of $_m"
    uevents_start
    touch "$LAB_TMP/io.run" "$LAB_TMP/fault.run"
    ( i=0; while [ -e "$LAB_TMP/io.run" ]; do
          dd if=/dev/mapper/"$_m" of=/dev/null bs=4k count=16 skip=$((i % 512)) iflag=direct 2> /dev/null
          i=$((i + 1)); done ) &
    ( while [ -e "$LAB_TMP/fault.run" ]; do
          echo offline > "/sys/block/$_sd/device/state"; sleep 1
          echo running > "/sys/block/$_sd/device/state"; sleep 3; done ) &
    _held="" _verdict="" _n=0
    while [ -z "$_verdict" ]; do
        _n=$((_n + 1)); [ $_n -lt 1200 ] || fail "$_label: no IO-error-rate verdict for $_sd within 600 s"
        if [ -z "$_held" ] && "$_bin" show paths raw format "%d %t %T" 2>/dev/null | grep -qE "^$_sd failed (delayed|shaky)"; then
            _held=$(uptime_s)
        fi
        grep -q "$_sd: IO error rate" "$_log" && _verdict=$(uptime_s)
        sleep 0.5
    done
    rm -f "$LAB_TMP/fault.run" "$LAB_TMP/io.run"
    sleep 5
    echo running > "/sys/block/$_sd/device/state"
    uevents_stop
    # the kernel's own time stamp of the second PATH_FAILED of that path
    _pair=$(awk -v p="DM_PATH=$_dt" 'BEGIN { RS = "" }
        index($0, "DM_ACTION=PATH_FAILED") && index($0 "\n", p "\n") {
            if (match($0, /KERNEL\[[0-9.]+\]/)) { n++; if (n == 2) { print substr($0, RSTART + 7, RLENGTH - 8); exit } } }' \
        "$LAB_TMP/uevents.log")
    cp "$LAB_TMP/uevents.log" "$LAB_OUT/$_label-uevents.log"
    [ -n "$_pair" ] || fail "$_label: no second PATH_FAILED uevent for $_dt was recorded"
    if [ -n "$_held" ]; then
        record "$_label" pair_to_held_back_s "$(awk -v a="$_pair" -v b="$_held" 'BEGIN { printf "%.1f", b - a }')"
    else
        record "$_label" pair_to_held_back_s "n/a"
    fi
    record "$_label" pair_to_verdict_s "$(awk -v a="$_pair" -v b="$_verdict" 'BEGIN { printf "%.1f", b - a }')"
}

# measure BIN LABEL: every row of the table for one daemon
measure() {
    _bin=$1 _label=$2
    : > "$LAB_OUT/$_label.values"
    step "$_label: start until all $LUNS maps hold all $NPATHS paths"
    flush_maps
    _t0=$(uptime_s)
    "$_bin" -d -v3 > "$LAB_OUT/$_label.log" 2>&1 &
    _pid=$!
    _n=0
    until [ "$(map_count)" -eq "$LUNS" ] && [ "$(paths_in_maps)" -eq "$NPATHS" ]; do
        _n=$((_n + 1)); [ $_n -lt 3000 ] || fail "$_label: maps not ready after 300 s ($(map_count) maps, $(paths_in_maps) paths)"
        kill -0 "$_pid" 2>/dev/null || fail "$_label: the daemon exited: $(tail -5 "$LAB_OUT/$_label.log")"
        sleep 0.1
    done
    record "$_label" maps_ready_s "$(secs_since "$_t0")"
    # (standby ALUA ports answer TUR with "not ready": ghost)
    wait_for "$_label: all $NPATHS paths checked up" 300 sh -c "[ \$($_bin show paths raw format %T 2>/dev/null | grep -cE 'ready|ghost') -eq $NPATHS ]"

    step "$_label: steady checking: CPU over 60 s, then RSS"
    sleep 10
    _c0=$(cpu_ticks "$_pid")
    sleep 60
    _c1=$(cpu_ticks "$_pid")
    record "$_label" cpu_60s_s "$(awk -v a="$_c0" -v b="$_c1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    record "$_label" rss_settled_kib "$(rss_kib "$_pid")"

    step "$_label: show paths latency (100 round trips)"
    sockload latency 100 "show paths" | tee "$LAB_TMP/lat.txt"
    record "$_label" show_paths_median_ms "$(sed -n 's/.* median_ms=\([0-9.]*\) .*/\1/p' "$LAB_TMP/lat.txt")"

    step "$_label: 200 concurrent show paths (timeout 4 s each)"
    sockload load 200 4000 "show paths" | tee "$LAB_TMP/load.txt"
    _ok=$(sed -n 's/.* ok=\([0-9]*\) .*/\1/p' "$LAB_TMP/load.txt" | head -1)
    record "$_label" load_200_unanswered "$((200 - ${_ok:-0}))"
    # the slowest answer only means something if every client got one
    if [ "${_ok:-0}" -eq 200 ]; then
        record "$_label" load_200_slowest_ms "$(sed -n 's/.* max_ms=\([0-9.]*\).*/\1/p' "$LAB_TMP/load.txt" | head -1)"
    else
        record "$_label" load_200_slowest_ms ">4000"
    fi
    record "$_label" rss_after_load_kib "$(rss_kib "$_pid")"

    step "$_label: path offline until DM fails it (median of 6)"
    offline_to_fail "$_bin" "$_label"

    step "$_label: PATH_FAILED pair to marginal verdict"
    marginal "$_bin" "$_label"

    "$_bin" shutdown > /dev/null 2>&1
    wait_for "$_label: daemon exited" 30 sh -c "! kill -0 $_pid"
}

step "configuration, udev and the ${LUNS}x${PATHS} topology"
mkdir -p /etc/multipath
# detect_pgpolicy: see daemon_maps.sh (0.9.4 does not know it and warns).  group_by_prio:
# scsi_debug's hosts are ALUA active/optimized (2), non-optimized and standby; IO goes to the
# two optimized paths, the first group of each table, and the marginal row's flaky path is
# the second of them, so it really carries IO.
cat > /etc/multipath.conf <<'CONF'
defaults {
    detect_pgpolicy no
    path_grouping_policy group_by_prio
    polling_interval 5
    max_polling_interval 20
    find_multipaths greedy
    user_friendly_names yes
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 10
    marginal_path_err_recheck_gap_time 30
}
CONF
cat /etc/multipath.conf
modprobe dm-multipath; modprobe dm-round-robin; modprobe dm-service-time; modprobe scsi_dh_alua
udevd_start
topo_scsi_debug "$LUNS" "$PATHS" 8
udevadm settle -t 60

measure "$REF" debian
measure "$OURS" ours

step "the table"
row() {   # row TITLE KEY
    _d=$(value debian "$2") _o=$(value ours "$2")
    awk -v t="$1" -v d="$_d" -v o="$_o" 'BEGIN {
        num = "^[0-9.]+$"
        r = (d ~ num && o ~ num && d + 0 > 0) ? sprintf("%.2f", o / d) : "-"
        printf "| %-44s | %12s | %12s | %6s |\n", t, d, o, r }'
}
{
    echo "Side-by-side, ${LUNS} LUNs x ${PATHS} paths = ${NPATHS} paths, qemu TCG, $(nproc) vCPUs"
    echo "Debian: $REF ($(grep -o "multipathd v[0-9.]*" "$LAB_OUT/debian.log" | head -1)); ours: release build of this tree"
    echo
    echo "| row (lower is better)                        |       Debian |         ours | ours/D |"
    echo "|----------------------------------------------|--------------|--------------|--------|"
    row "start to all maps ready (s)" maps_ready_s
    row "RSS after settling (KiB)" rss_settled_kib
    row "CPU over 60 s of steady checking (s)" cpu_60s_s
    row "show paths latency, median of 100 (ms)" show_paths_median_ms
    row "200 concurrent show paths: unanswered in 4 s" load_200_unanswered
    row "200 concurrent show paths: slowest (ms)" load_200_slowest_ms
    row "RSS after the 200 clients (KiB)" rss_after_load_kib
    row "path offline to DM fail, median of 6 (s)" offline_to_dm_fail_s
    row "PATH_FAILED pair to path held back (s)" pair_to_held_back_s
    row "PATH_FAILED pair to IO-error verdict (s)" pair_to_verdict_s
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"
