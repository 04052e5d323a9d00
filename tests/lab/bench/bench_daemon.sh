# One run of the lab benchmark: ONE daemon (BENCH_DAEMON=debian: Debian's /sbin/multipathd
# 0.9.4; ours: the release build of this tree) in a fresh VM on BENCH_LUNS scsi_debug LUNs x
# BENCH_PATHS hosts.  Each value is written as a key=value line to $LAB_OUT/values; the host
# side (lab_bench.sh, `make lab-bench`) runs this in fresh VMs in ABBA order and makes the
# table.  Not a test: it fails only when the daemon does not get through a step at all, or
# when a condition of the comparison (memory locked, interval at its maximum) does not hold.
# The variables are set by the wrapper lab_bench.sh generates for each run, which sources this.
. "$LAB_DIR/lib.sh"

DAEMON=${BENCH_DAEMON:?BENCH_DAEMON must be debian or ours}
LUNS=${BENCH_LUNS:?}
PATHS=${BENCH_PATHS:?}
NPATHS=$((LUNS * PATHS))
# Requests per latency row: sequential, so the median and the p99 are of the same daemon state.
LAT_N=200
CPU_WINDOW=120
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
VALUES=$LAB_OUT/values
# Debian's client for the control commands of both daemons: the same client for both, and it
# prints the reply (sockload only times it).  Its stderr is dropped: it reads multipath.conf
# too and warns about detect_pgpolicy every time.
CLIENT=/sbin/multipathd

# Both daemons and the measuring client run from tmpfs: ours would otherwise be read through
# 9p on exec and on every page fault before its mlockall, Debian's lives in the initramfs.
case $DAEMON in
    debian) BIN=/sbin/multipathd ;;
    ours) cp "$LAB_BIN/multipathd" "$LAB_TMP/multipathd" || fail "copy our multipathd"; BIN=$LAB_TMP/multipathd ;;
    *) fail "BENCH_DAEMON must be debian or ours, not '$DAEMON'" ;;
esac
cp "$LAB_BIN/sockload" "$LAB_TMP/" || fail "copy sockload"
SOCKLOAD=$LAB_TMP/sockload

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }
paths_in_maps() { dmsetup table --target multipath | grep -oE '[0-9]+:[0-9]+' | wc -l; }
maps_whole() { [ "$(map_count)" -eq "$LUNS" ] && [ "$(paths_in_maps)" -eq "$NPATHS" ]; }
mapper_nodes() { ls /dev/mapper | grep -c '^mpath'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
pss_kib() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] }'; }
record() { echo "$1=$2" >> "$VALUES"; echo "  $1 = $2"; }
# field KEY FILE: the value of KEY=... in sockload's output line
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" "$2" | head -1; }

: > "$VALUES"
record daemon "$DAEMON"
record luns "$LUNS"
record paths "$NPATHS"

step "configuration and the ${LUNS}x${PATHS} topology"
mkdir -p /etc/multipath
# The same file for both daemons.  Checker and prioritizer pinned (tur, sysfs), so neither
# picks its own: both send a TUR and read the ALUA state from sysfs at every check.  Polling
# 5 s up to 20 s, so the interval reaches its maximum within a minute.  detect_pgpolicy: see
# daemon_maps.sh (0.9.4 does not know it and warns whenever it reads the file).
cat > /etc/multipath.conf <<'CONF'
defaults {
    detect_pgpolicy no
    path_grouping_policy group_by_prio
    polling_interval 5
    max_polling_interval 20
    find_multipaths greedy
    user_friendly_names yes
}
overrides {
    path_checker tur
    detect_checker no
    prio sysfs
    detect_prio no
}
CONF
cat /etc/multipath.conf
modprobe dm-multipath; modprobe dm-round-robin; modprobe dm-service-time; modprobe scsi_dh_alua
_t0=$(uptime_s)
# scsi_debug takes at most 256 LUNs a target with the usual LUN addressing: more LUNs go to
# more targets.
topo_scsi_debug "$LUNS" "$PATHS" 8 $(( (LUNS + 255) / 256 ))
record setup_topology_s "$(secs_since "$_t0")"
# udev replays every add at once: one settle for all paths instead of one per disk (332 s
# at 1,024 paths on a loaded host).
_t0=$(uptime_s)
udevd_start $((120 + NPATHS / 2))
record setup_udev_s "$(secs_since "$_t0")"
# what the paths cost the guest's kernel and udev before any daemon: bounds the larger scales
record guest_used_kib "$(awk '$1 == "MemTotal:" { t = $2 } $1 == "MemAvailable:" { a = $2 } END { print t - a }' /proc/meminfo)"

step "$DAEMON: start until all $LUNS maps hold all $NPATHS paths, udev settled, /dev/mapper nodes there"
_t0=$(uptime_s)
"$BIN" -d -v2 > "$LAB_TMP/daemon.log" 2>&1 &
PID=$!
# the log stays on tmpfs while the daemon runs; the host gets it however the run ends
trap 'cp "$LAB_TMP/daemon.log" "$LAB_OUT/daemon.log"' EXIT
_n=0
until maps_whole; do
    _n=$((_n + 1)); [ $_n -lt $((1500 + NPATHS)) ] || fail "maps not ready after $((_n / 5)) s ($(map_count) maps, $(paths_in_maps) paths)"
    kill -0 "$PID" 2>/dev/null || fail "the daemon exited: $(tail -5 "$LAB_TMP/daemon.log")"
    sleep 0.2
done
# the daemon's part alone; udev's work on the uevents of the new maps comes after
record maps_loaded_s "$(secs_since "$_t0")"
udevadm settle -t $((120 + NPATHS)) || fail "udevadm settle timed out after the maps were made"
expect_eq "/dev/mapper nodes" "$LUNS" "$(mapper_nodes)"
record maps_ready_s "$(secs_since "$_t0")"
# The daemon locks its memory by itself (Debian's mlockall(MCL_CURRENT|MCL_FUTURE), ours in
# hardening.rs): a daemon not locked would not be measured under the same conditions.
_lck=$(status_kib "$PID" VmLck)
[ "${_lck:-0}" -gt 0 ] || fail "the daemon's memory is not locked (VmLck ${_lck:-none})"
record vmlck_kib "$_lck"

step "$DAEMON: every path checked up, at max_polling_interval (20 s)"
wait_for "all $NPATHS paths up at interval 20" $((120 + NPATHS / 8)) sh -c \
    "[ \$($CLIENT show paths raw format '%T %C' 2>/dev/null | grep -cE '^(ready|ghost) .* [0-9]+/20\$') -eq $NPATHS ]"
# one more whole interval, so that every path has been checked at the maximum at least once
sleep 20

step "$DAEMON: CPU over $CPU_WINDOW s of steady checking, then memory"
_c0=$(cpu_ticks "$PID")
sleep "$CPU_WINDOW"
_c1=$(cpu_ticks "$PID")
record cpu_window_s "$CPU_WINDOW"
record cpu_s "$(awk -v a="$_c0" -v b="$_c1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
record pss_kib "$(pss_kib "$PID")"
record rss_anon_kib "$(status_kib "$PID" RssAnon)"

step "$DAEMON: show paths and show maps json, $LAT_N sequential requests each"
"$SOCKLOAD" latency "$LAT_N" "show paths" | tee "$LAB_TMP/lat.txt"
expect_eq "show paths answered" "$LAT_N" "$(field ok "$LAB_TMP/lat.txt")"
record show_paths_median_ms "$(field median_ms "$LAB_TMP/lat.txt")"
record show_paths_p99_ms "$(field p99_ms "$LAB_TMP/lat.txt")"
"$SOCKLOAD" latency "$LAT_N" "show maps json" | tee "$LAB_TMP/lat.txt"
expect_eq "show maps json answered" "$LAT_N" "$(field ok "$LAB_TMP/lat.txt")"
record show_maps_json_median_ms "$(field median_ms "$LAB_TMP/lat.txt")"
record show_maps_json_p99_ms "$(field p99_ms "$LAB_TMP/lat.txt")"

step "$DAEMON: 200 concurrent show paths (timeout 4 s each)"
"$SOCKLOAD" load 200 4000 "show paths" | tee "$LAB_TMP/load.txt"
_ok=$(field ok "$LAB_TMP/load.txt")
record load_200_unanswered "$((200 - ${_ok:-0}))"
# the slowest answer only means something if every client got one
if [ "${_ok:-0}" -eq 200 ]; then
    record load_200_slowest_ms "$(field max_ms "$LAB_TMP/load.txt")"
else
    record load_200_slowest_ms ">4000"
fi

step "$DAEMON: reconfigure until idle with every map whole (3 times)"
for _i in 1 2 3; do
    _t0=$(uptime_s)
    expect_eq "reconfigure reply" ok "$($CLIENT reconfigure 2>/dev/null)"
    _n=0
    until $CLIENT show daemon 2>/dev/null | grep -qx "pid $PID idle" && maps_whole; do
        _n=$((_n + 1)); [ $_n -lt $((1500 + NPATHS)) ] || fail "not idle with whole maps $((_n / 10)) s after reconfigure: $($CLIENT show daemon 2>&1)"
        sleep 0.1
    done
    _took=$(secs_since "$_t0")
    echo "  reconfigure $_i: $_took s"
    echo "$_took" >> "$LAB_TMP/reconf"
    # the next one from a settled daemon
    sleep 5
done
record reconfigure_s "$(median < "$LAB_TMP/reconf")"
expect_eq "/dev/mapper nodes after the reconfigures" "$LUNS" "$(mapper_nodes)"

step "$DAEMON: shutdown"
record version "$(grep -o 'multipathd v[0-9.]*' "$LAB_TMP/daemon.log" | head -1 | sed 's/multipathd v//')"
$CLIENT shutdown > /dev/null 2>&1
wait_for "the daemon exited" 60 sh -c "! kill -0 $PID"
