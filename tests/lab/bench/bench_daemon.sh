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
# Requests per latency row and the seconds after which none is sent (lab_bench.sh says why).
LAT_N=${BENCH_LAT_N:?}
LAT_BUDGET=${BENCH_LAT_BUDGET:?}
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
cp "$LAB_BIN/sockload" "$LAB_BIN/ioload" "$LAB_TMP/" || fail "copy sockload, ioload"
SOCKLOAD=$LAB_TMP/sockload

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }
paths_in_maps() { dmsetup table --target multipath | grep -oE '[0-9]+:[0-9]+' | wc -l; }
maps_whole() { [ "$(map_count)" -eq "$LUNS" ] && [ "$(paths_in_maps)" -eq "$NPATHS" ]; }
mapper_nodes() { ls /dev/mapper | grep -c '^mpath'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# thread_ticks: "TID NAME TICKS USER SYSTEM" of each of the daemon's threads (no blanks in names here)
thread_ticks() { for _t in /proc/"$PID"/task/*; do awk -v t="${_t##*/}" '{ print t, $2, $14 + $15, $14, $15 }' "$_t/stat" 2> /dev/null; done; }
# thread_cpu BEFORE AFTER: the CPU ticks between two thread_ticks, summed by thread name (the
# number of a worker's name folded to N; threads that ended between the two are not listed,
# what they used is in the daemon's total)
thread_cpu() {
    awk 'NR == FNR { t0[$1] = $3; u0[$1] = $4; next }
         { k = $2; sub(/-[0-9]+\)$/, "-N)", k); n[k] += $3 - t0[$1]; u[k] += $4 - u0[$1]; c[k]++ }
         END { for (k in n) printf "%8d ticks (%d user, %d system) %4d threads %s\n", n[k], u[k], n[k] - u[k], c[k], k }' \
        "$1" "$2" | sort -rn
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
pss_kib() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] }'; }
record() { echo "$1=$2" >> "$VALUES"; echo "  $1 = $2"; }
# field KEY FILE: the value of KEY=... in sockload's output line
field() { sed -n "s/^\(.* \)\{0,1\}$1=\([0-9.]*\).*/\2/p" "$2" | head -1; }
# map_devs: /dev/dm-N of every multipath map
map_devs() { dmsetup ls --target multipath | sed -n 's|.*(\([0-9]*\)[:, ]*\([0-9]*\))$|/dev/dm-\2|p'; }
# dm_sample: "uptime failed-storm-paths active-paths" from DM's status of every map
dm_sample() {
    dmsetup status --target multipath | awk -v t="$(uptime_s)" -v down=" $STORM_DEVTS " '
        { for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) {
              if ($(i + 1) == "A") act++
              else if ($(i + 1) == "F" && index(down, " " $i " ")) fd++ } }
        END { printf "%s %d %d\n", t, fd, act }'
}
# wait_dm FIELD VALUE SECONDS: polls DM every 0.5 s until FIELD (2: storm paths failed, 3: paths
# active) of dm_sample is VALUE; prints the seconds it took, or fails after SECONDS
wait_dm() {
    _w0=$(uptime_s) _k=0
    until [ "$(dm_sample | cut -d' ' -f"$1")" = "$2" ]; do
        _k=$((_k + 1)); [ $_k -lt $(($3 * 2)) ] || fail "storm: DM not at $2 (field $1) after $3 s: $(dm_sample)"
        sleep 0.5
    done
    secs_since "$_w0"
}
# dm_slowest WORD LINE: of the storm's paths, the longest time from the kernel-log mark
# "bench: WORD MAJ:MIN" (written just before that path's state) to DM's first LINE for it
# after the mark ("Failing path" or "Reinstating path"), both on the kernel log's clock;
# fails unless DM logged it for every storm path. A poll of `dmsetup status` over every map
# takes a second or two under TCG, more than what it would time.
dm_slowest() {
    dmesg | awk -v word="bench: $1 " -v line="$2 " -v n="$STORM_N" '
        { t = substr($0, 2, index($0, "]") - 2) + 0 }
        NR == 1 { first = t }
        (i = index($0, word)) { d = substr($0, i + length(word)); mark[d] = t; delete done[d]; next }
        (i = index($0, line)) { d = substr($0, i + length(line)); sub(/\.$/, "", d)
            if ((d in mark) && !(d in done)) { done[d] = t - mark[d]; if (done[d] > m) m = done[d] } }
        END { for (d in done) k++
              if (k != n) { print "only " k + 0 " of " n " (the kernel log begins at " first " s)"; exit 1 }
              printf "%.2f\n", m }'
}
# wait_tables_hold N SECONDS WHAT: polls DM's tables every 0.5 s until they hold N paths in
# all; fails after SECONDS (counted from WHAT)
wait_tables_hold() {
    _k=0
    until [ "$(paths_in_maps)" -eq "$1" ]; do
        _k=$((_k + 1)); [ $_k -lt $(($2 * 2)) ] || fail "uevent storm: DM's tables hold $(paths_in_maps) paths, not $1, $2 s after $3"
        sleep 0.5
    done
}
# io_sum KEY FILE: the sum of the KEY=N fields of ioload's per-map lines in FILE
io_sum() { awk -v k="$1=" '{ for (i = 2; i <= NF; i++) if (index($i, k) == 1) s += substr($i, length(k) + 1) } END { print s + 0 }' "$2"; }
# io_every_map WHAT FILE: fails unless ioload's FILE has a line for every map
io_every_map() { _m=$(grep -c 'reads=' "$2"); [ "$_m" -eq "$LUNS" ] || fail "$1: ioload read $_m of $LUNS maps"; }
# monitor_compact: `udevadm monitor --kernel --udev --property` on stdin, one line an event on
# stdout: "KERNEL|UDEV TIME ACTION DEVPATH SEQNUM"
monitor_compact() {
    awk '/^(KERNEL|UDEV) *\[/ { match($0, /\[[0-9.]+\]/); t = substr($0, RSTART + 1, RLENGTH - 2)
                                 split(substr($0, RSTART + RLENGTH), f, " "); src = substr($1, 1, 1) == "K" ? "KERNEL" : "UDEV" }
         /^SEQNUM=/ && src != "" { print src, t, f[1], f[2], substr($0, 8); src = "" }'
}
# udev_lag FILE S1: from monitor_compact's lines, how long udev held the sd and dm block
# events before passing them on (an event's kernel and udev lines paired by SEQNUM), by phase
# (the removal: the kernel's SEQNUM up to S1, the rescan's start; the rescan after it) and
# kind: count, median and slowest.  An event whose kernel line came before the monitor
# started has no lag of its own: those are counted apart.
udev_lag() {
    # two passes: the monitor may print udev's line of an event before the kernel's
    awk -v s1="$2" '
        NR == FNR { if ($1 == "KERNEL") sent[$5] = $2; next }
        $1 == "UDEV" {
            kind = $4 ~ /\/block\/sd[a-z]+$/ ? "sd" : $4 ~ /\/block\/dm-[0-9]+$/ ? "dm" : ""
            if (kind == "") next
            if (!($5 in sent)) { early++; next }
            printf "%s|%s %s|%.2f\n", $5 <= s1 ? "1before" : "2after", kind, $3, $2 - sent[$5]
        }
        END { printf "early||%d\n", early }
    ' "$1" "$1" | sort -t'|' -k1,1 -k2,2 -k3,3n | awk -F'|' '
        $1 == "early" { e = $3; next }
        $1 "|" $2 != g { if (g != "") out(); g = $1 "|" $2; m = 0 }
        { v[++m] = $3 }
        function out(  p) { split(g, p, "|"); printf "  (udev held %s events %s the rescan: %d, median %.2f s, slowest %.2f s)\n", p[2], substr(p[1], 2), m, v[int((m + 1) / 2)], v[m] }
        END { if (g != "") out(); printf "  (sd and dm events udev passed on that the kernel sent before the monitor began: %d)\n", e }
    '
}
# udev_queued FILE T S: of monitor_compact's lines, the block events the kernel had sent by S
# (its last SEQNUM at T) that udev passed on only after T: udev's queue at T
udev_queued() { awk -v t="$2" -v s="$3" '$1 == "UDEV" && $5 <= s && $2 >= t { n++ } END { print n + 0 }' "$1"; }
# udev_idle WHAT: waits until udev's queue is empty (`udevadm settle`; when settle fails at
# once, "Failed to wait for daemon to reply: Broken pipe" with udevd busy at 4,096 paths,
# until udev's queue file is gone), at most 120 s + 0.5 s a path; sets _uw to the seconds it
# took and _ul to 1 when the queue was still not empty then
udev_idle() {
    _u0=$(uptime_s) _lim=$((120 + NPATHS / 2)) _ul=0
    if ! udevadm settle -t $_lim; then
        _q=0
        while [ -e /run/udev/queue ] && [ $_q -lt $_lim ]; do sleep 1; _q=$((_q + 1)); done
        [ -e /run/udev/queue ] && _ul=1
        echo "  (udevadm settle failed $1; udev's queue $([ $_ul = 1 ] && echo "still not empty" || echo "empty") $_q s later)"
    fi
    _uw=$(secs_since "$_u0")
    echo "  (udev's queue $([ $_ul = 1 ] && echo "not empty after" || echo "empty after") $_uw s $1)"
}
# quantile Q: the value at quantile Q of the numbers on stdin (nearest rank)
quantile() { sort -n | awk -v q="$1" '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else { i = int(q * NR + 0.999999); if (i < 1) i = 1; print v[i] } }'; }

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
# Both run SCHED_RR, as each does on a real host: Debian's 0.9.4 sets it unconditionally
# (priority 99), ours at the LimitRTPRIO= its systemd unit grants (10), given here with
# `ulimit -r` since no unit starts it.  (Without it ours answered `show paths` 3x slower
# than Debian's during the storm: the reads on every map competed with it for the CPUs.)
case $DAEMON in
    ours) (ulimit -r 10 && exec "$BIN" -d -v2) > "$LAB_TMP/daemon.log" 2>&1 & ;;
    *) "$BIN" -d -v2 > "$LAB_TMP/daemon.log" 2>&1 & ;;
esac
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
# the first map's table: which paths the IO of the storms below goes to is the daemons' doing
echo "  first map's table: $(dmsetup table "$(dmsetup ls --target multipath | sort | head -1 | cut -f1)")"
# The daemon locks its memory by itself (Debian's mlockall(MCL_CURRENT|MCL_FUTURE), ours in
# hardening.rs): a daemon not locked would not be measured under the same conditions.
_lck=$(status_kib "$PID" VmLck)
[ "${_lck:-0}" -gt 0 ] || fail "the daemon's memory is not locked (VmLck ${_lck:-none})"
record vmlck_kib "$_lck"
# the scheduling policy (/proc/PID/stat field 41): 2 is SCHED_RR
_pol=$(awk '{ print $41 }' "/proc/$PID/stat")
[ "$_pol" = 2 ] || fail "the daemon does not run SCHED_RR (policy $_pol)"
record rt_priority "$(awk '{ print $40 }' "/proc/$PID/stat")"

step "$DAEMON: every path checked up, at max_polling_interval (20 s)"
wait_for "all $NPATHS paths up at interval 20" $((120 + NPATHS / 8)) sh -c \
    "[ \$($CLIENT show paths raw format '%T %C' 2>/dev/null | grep -cE '^(ready|ghost) .* [0-9]+/20\$') -eq $NPATHS ]"
# one more whole interval, so that every path has been checked at the maximum at least once
sleep 20

step "$DAEMON: CPU over $CPU_WINDOW s of steady checking, then memory"
_c0=$(cpu_ticks "$PID")
thread_ticks > "$LAB_TMP/threads0"
sleep "$CPU_WINDOW"
_c1=$(cpu_ticks "$PID")
thread_ticks > "$LAB_TMP/threads1"
thread_cpu "$LAB_TMP/threads0" "$LAB_TMP/threads1" > "$LAB_OUT/cpu-threads.txt"
cat "$LAB_OUT/cpu-threads.txt"
record cpu_window_s "$CPU_WINDOW"
record cpu_s "$(awk -v a="$_c0" -v b="$_c1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
record pss_kib "$(pss_kib "$PID")"
record rss_anon_kib "$(status_kib "$PID" RssAnon)"

step "$DAEMON: show paths and show maps json, $LAT_N sequential requests each (none after $LAT_BUDGET s)"
"$SOCKLOAD" latency "$LAT_N" "show paths" "$LAT_BUDGET" | tee "$LAB_TMP/lat.txt"
expect_eq "show paths failed" 0 "$(field failed "$LAB_TMP/lat.txt")"
record show_paths_n "$(field n "$LAB_TMP/lat.txt")"
record show_paths_median_ms "$(field median_ms "$LAB_TMP/lat.txt")"
record show_paths_p99_ms "$(field p99_ms "$LAB_TMP/lat.txt")"
"$SOCKLOAD" latency "$LAT_N" "show maps json" "$LAT_BUDGET" | tee "$LAB_TMP/lat.txt"
expect_eq "show maps json failed" 0 "$(field failed "$LAB_TMP/lat.txt")"
record show_maps_json_n "$(field n "$LAB_TMP/lat.txt")"
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

step "$DAEMON: storm: one host's paths (a quarter) lost at once and back, IO on every map"
# Every sd device of the first scsi_debug host set offline at once, as when a host's link
# goes down and the transport fails its IO at once: reads on them fail, nothing is announced
# (no uevent), each daemon finds out through its IO or its checker.  Then all set running
# again.  Reads of 4 KiB every 0.5 s on every map the whole time (examples/ioload.rs); the
# other three paths of each map keep it up, so any IO error is the daemon's doing.
STORM_HOST=$(path_host "$(sd_devices | head -1)")
STORM_SDS=$(for _d in $(sd_devices); do [ "$(path_host "$_d")" = "$STORM_HOST" ] && echo "$_d"; done)
STORM_N=$(echo "$STORM_SDS" | wc -w)
STORM_PAIRS=$(for _d in $STORM_SDS; do echo "$_d $(devt "$_d")"; done)
STORM_DEVTS=$(echo "$STORM_PAIRS" | cut -d' ' -f2 | tr '\n' ' ')
expect_eq "paths of $STORM_HOST" "$LUNS" "$STORM_N"
record storm_paths "$STORM_N"
# Each storm starts with udev idle, for both daemons: the reconfigures' and the storm's map
# events before it would otherwise still be in udev's queue, each daemon's own a different
# amount, and its rules compete with the daemon for the CPUs (the wait is not a daemon row)
udev_idle "before the storm"
record storm_udev_wait_s "$_uw"
record storm_udev_left "$_ul"
# the storm rows of runs without this key began behind udev's queue (lab_bench.sh keeps them apart)
record storms_udev_idle 1
touch "$LAB_TMP/io.run"
"$LAB_TMP/ioload" 500 "$LAB_TMP/io.run" $(map_devs) > "$LAB_OUT/storm-io.txt" 2>&1 &
_io=$!
# the clock and the daemon's ticks read by one process, back to back: read by two, a sampler
# kept waiting for a CPU between them put a second's CPU over a shorter interval (306 % of one
# CPU on 2 vCPUs at 4,096 paths)
# (the third column: the main thread's ticks alone, ours' state owner)
( while [ -e "$LAB_TMP/io.run" ]; do
      awk 'FNR == 1 { f++ } f == 1 { t = $1; next } f == 2 { c = $14 + $15; next } { print t, c, $14 + $15 }' \
          /proc/uptime "/proc/$PID/stat" "/proc/$PID/task/$PID/stat"; sleep 1
  done ) > "$LAB_TMP/storm-cpu.txt" &
_cpu=$!
# the measuring client at SCHED_RR 1: under both daemons (99 and 10), over the reads' threads,
# which otherwise kept it from a CPU for up to 1.2 s of a reply's time at 4,096 paths
"$SOCKLOAD" --rr 1 sample 250 5000 "$LAB_TMP/io.run" "show paths" > "$LAB_OUT/storm-show-paths.txt" 2>&1 &
_show=$!
sleep 5
thread_ticks > "$LAB_TMP/storm-threads0"
_td=$(uptime_s)
# (no command started in these loops: a fork under TCG would spread the loss over seconds)
echo "$STORM_PAIRS" | while read -r _d _t; do
    echo "bench: offline $_t" > /dev/kmsg
    echo offline > "/sys/block/$_d/device/state"
done
_poll=$(wait_dm 2 "$STORM_N" $((120 + NPATHS / 4)))
echo "  (polled: every storm path failed in DM $_poll s after the last was set offline)"
sleep 5
_tr=$(uptime_s)
# each write of `running` rescans its device (30 ms and more under TCG): the paths come
# back one after another, and each is timed from its own write
echo "$STORM_PAIRS" | while read -r _d _t; do
    echo "bench: running $_t" > /dev/kmsg
    echo running > "/sys/block/$_d/device/state"
done
_tw=$(secs_since "$_tr")
_poll=$(wait_dm 3 "$NPATHS" $((120 + NPATHS / 4)))
_te=$(uptime_s)
thread_ticks > "$LAB_TMP/storm-threads1"
echo "  (polled: every path active in DM $_poll s after the last was set running; the writes took $_tw s in all)"
# timed on the kernel log's clock, read after the storm (reading it under TCG takes
# seconds at 4,096 paths, which the storm's window would otherwise include)
_s=$(dm_slowest offline "Failing path") || fail "storm: DM's log of the failures: $_s"
record storm_all_failed_s "$_s"
_s=$(dm_slowest running "Reinstating path") || fail "storm: DM's log of the reinstatements: $_s"
record storm_all_back_s "$_s"
sleep 3
rm -f "$LAB_TMP/io.run"
wait $_io || fail "storm: ioload failed: $(head -3 "$LAB_OUT/storm-io.txt")"
wait $_cpu
wait $_show || fail "storm: sockload failed: $(head -3 "$LAB_OUT/storm-show-paths.txt")"
record storm_reads "$(io_sum reads "$LAB_OUT/storm-io.txt")"
io_every_map storm "$LAB_OUT/storm-io.txt"
record storm_io_errors "$(io_sum errors "$LAB_OUT/storm-io.txt")"
# `show paths` sent from the loss until every path was back: round trips answered and not
_storm_show() { awk -v a="$_td" -v b="$_te" '$1 >= a && $1 <= b' "$LAB_OUT/storm-show-paths.txt"; }
record storm_show_unanswered "$(_storm_show | awk '$3 != "ok"' | grep -c .)"
_storm_show | awk '$3 == "ok" { print $2 }' > "$LAB_TMP/storm-ms"
record storm_show_sent "$(_storm_show | grep -c .)"
record storm_show_p50_ms "$(quantile 0.5 < "$LAB_TMP/storm-ms")"
record storm_show_p99_ms "$(quantile 0.99 < "$LAB_TMP/storm-ms")"
record storm_show_max_ms "$(quantile 1 < "$LAB_TMP/storm-ms")"
# how long the measuring client itself waited for a CPU during the slowest round trip: the
# part of it that was not the daemon's (sockload's fourth field)
record storm_show_max_client_wait_ms "$(_storm_show | awk '$3 == "ok" && $2 + 0 >= m + 0 { m = $2; w = $4 } END { print w == "" ? "-" : w }')"
# the busiest second of the daemon from the loss until every path was back (% of one CPU)
record storm_peak_cpu_pct "$(awk -v a="$_td" -v b="$_te" -v hz="$HZ" '
    NR > 1 && $1 >= a && p <= b { d = ($2 - c) / hz / ($1 - p) * 100; if (d > m) m = d }
    { p = $1; c = $2 } END { printf "%.0f", m }' "$LAB_TMP/storm-cpu.txt")"
# all of the daemon's CPU in that window (from the first sample in it to the last): its storm
# work and its checking beside it, until its own last path was back (a slower return makes
# a longer window)
record storm_cpu_s "$(awk -v a="$_td" -v b="$_te" -v hz="$HZ" '
    $1 >= a && $1 <= b { if (f == "") f = $2; l = $2 } END { printf "%.2f", (l - f) / hz }' "$LAB_TMP/storm-cpu.txt")"
record storm_window_s "$(awk -v a="$_td" -v b="$_te" 'BEGIN { printf "%.1f", b - a }')"
# where it went, by thread: from just before the loss until every path was back
thread_cpu "$LAB_TMP/storm-threads0" "$LAB_TMP/storm-threads1" > "$LAB_OUT/storm-cpu-threads.txt"
cat "$LAB_OUT/storm-cpu-threads.txt"
cp "$LAB_TMP/storm-cpu.txt" "$LAB_OUT/storm-cpu.txt"

step "$DAEMON: uevent storm: the same host's devices removed at once, then rescanned, IO on every map"
# As when a remote port stays away past dev_loss_tmo (the transport removes its devices) and
# comes back (its devices found again): unlike the storm above, the kernel announces every
# device with a uevent, and each daemon takes the removed paths out of their maps and puts
# the new ones in.  Timed from the first delete until DM's tables hold none of them (`dmsetup
# table` every 0.5 s: a poll of every map takes a second or two under TCG at 4,096 paths),
# then from the rescan until every map holds every path again (udev's rules for the new
# devices run first, for both daemons alike).
# the storm's devices, back under their names (no command per device: a fork each takes
# tens of seconds at 4,096 paths under TCG)
for _d in $STORM_SDS; do [ -e "/sys/block/$_d" ] || fail "uevent storm: $_d is gone before it"; done
udev_idle "before the uevent storm"
record uevent_udev_wait_s "$_uw"
record uevent_udev_left "$_ul"
touch "$LAB_TMP/io.run"
"$LAB_TMP/ioload" 500 "$LAB_TMP/io.run" $(map_devs) > "$LAB_OUT/uevent-storm-io.txt" 2>&1 &
_io=$!
# the kernel's block events and what udev passed on to the daemons (both listen to udev's):
# the paths' own and the maps' change events their reloads cause (the counts are udev's);
# with their properties, for the SEQNUM that pairs an event's kernel and udev lines
udevadm monitor --kernel --udev --property --subsystem-match=block > "$LAB_TMP/uevents.txt" 2>&1 &
_mon=$!
sleep 2
thread_ticks > "$LAB_TMP/uevent-threads0"
_c0=$(cpu_ticks "$PID")
_t0=$(uptime_s) _s0=$(cat /sys/kernel/uevent_seqnum)
for _d in $STORM_SDS; do echo 1 > "/sys/block/$_d/device/delete"; done
_tw=$(secs_since "$_t0")
wait_tables_hold $((NPATHS - STORM_N)) $((120 + NPATHS / 4)) "the deletes"
record uevent_remove_s "$(secs_since "$_t0")"
echo "  (the $STORM_N deletes took $_tw s)"
record uevent_remove_events "$(grep -cE '^UDEV +\[' "$LAB_TMP/uevents.txt")"
sleep 5
_t1=$(uptime_s) _s1=$(cat /sys/kernel/uevent_seqnum)
_e1=$(grep -cE '^UDEV +\[' "$LAB_TMP/uevents.txt")
echo "- - -" > "/sys/class/scsi_host/$STORM_HOST/scan"
_tw=$(secs_since "$_t1")
wait_tables_hold "$NPATHS" $((120 + NPATHS / 2)) "the rescan"
expect_eq "multipath maps after the rescan" "$LUNS" "$(map_count)"
record uevent_add_s "$(secs_since "$_t1")"
# the daemon's CPU from the first delete until every map was whole again (the 5 s between the
# two phases included), and by thread
record uevent_cpu_s "$(awk -v a="$_c0" -v b="$(cpu_ticks "$PID")" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
thread_ticks > "$LAB_TMP/uevent-threads1"
thread_cpu "$LAB_TMP/uevent-threads0" "$LAB_TMP/uevent-threads1" > "$LAB_OUT/uevent-cpu-threads.txt"
cat "$LAB_OUT/uevent-cpu-threads.txt"
echo "  (the rescan took $_tw s; $(sd_count) sd devices now)"
record uevent_add_events "$(($(grep -cE '^UDEV +\[' "$LAB_TMP/uevents.txt") - _e1))"
sleep 3
kill "$_mon" 2> /dev/null
# udev's queue in each phase: what the rescan waited behind (kept compacted: with their
# properties the events take tens of MiB at 4,096 paths)
monitor_compact < "$LAB_TMP/uevents.txt" > "$LAB_OUT/uevent-storm-udev.txt"
rm -f "$LAB_TMP/uevents.txt"
udev_lag "$LAB_OUT/uevent-storm-udev.txt" "$_s1"
record uevent_udev_queue_at_delete "$(udev_queued "$LAB_OUT/uevent-storm-udev.txt" "$_t0" "$_s0")"
record uevent_udev_queue_at_rescan "$(udev_queued "$LAB_OUT/uevent-storm-udev.txt" "$_t1" "$_s1")"
rm -f "$LAB_TMP/io.run"
wait $_io || fail "uevent storm: ioload failed: $(head -3 "$LAB_OUT/uevent-storm-io.txt")"
io_every_map "uevent storm" "$LAB_OUT/uevent-storm-io.txt"
record uevent_io_errors "$(io_sum errors "$LAB_OUT/uevent-storm-io.txt")"
# udev's queue emptied first (its rules make the nodes, after the reloads' change events); a
# map without its node is a row, not the run's end: Debian's run 1 at 4,096 paths counted
# 1,023 nodes 3 s after the storm, before udev had settled
udev_idle "after the uevent storm"
dmsetup ls --target multipath | awk '{ print $1 }' > "$LAB_TMP/maps.txt"
# (the guest has no comm(1): its absence made this list empty, and the row 0, in every run
# before 6 December)
ls /dev/mapper | awk 'NR == FNR { node[$1]; next } !($1 in node)' - "$LAB_TMP/maps.txt" > "$LAB_OUT/uevent-nodes-missing.txt"
[ -s "$LAB_OUT/uevent-nodes-missing.txt" ] && echo "  (maps without a /dev/mapper node: $(tr '\n' ' ' < "$LAB_OUT/uevent-nodes-missing.txt"))"
record uevent_nodes_missing "$(wc -l < "$LAB_OUT/uevent-nodes-missing.txt")"

step "$DAEMON: shutdown"
record version "$(grep -o 'multipathd v[0-9.]*' "$LAB_TMP/daemon.log" | head -1 | sed 's/multipathd v//')"
$CLIENT shutdown > /dev/null 2>&1
wait_for "the daemon exited" 60 sh -c "! kill -0 $PID"
