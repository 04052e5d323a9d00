# A fabric outage: half of all paths of 64 LUNs lost at once, then back.  64 LIO LUNs behind
# two portals of the LIO iSCSI target on loopback, the open-iscsi initiator logged in to both
# (one session each, so 128 paths), tur checker, no_path_retry 12, O_DIRECT reads on every
# map the whole time; portal 1 goes silent (its address routed into a blackhole, as when the
# switch in front of it reboots) until DM has failed all its 64 paths, then answers again.
# Debian's daemon, then ours, on the same setup.  Measured: time until DM has failed all 64,
# until all 128 are active again, IO errors, healthy paths failed, and how long `show paths`
# takes (sampled every 0.5 s through one client, examples/sockload.rs, for both daemons), also
# while a `reconfigure` sent 2 s into the outage runs (and how long that takes).
# Ours must fail the 64 within the bound of iscsi_portal_hang, fail none of the other portal,
# see 0 IO errors, get all 128 back, be idle again after the reconfigure, and answer every
# `show paths` within 1 s.
# lab-timeout: 900
# Ours as shipped (the release build), beside Debian's optimized build.
# lab-profile: release
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_BIN/multipathd
LUNS=64 DOWN_PORTAL=1 OK_PORTAL=0
ISCSI_REPLACEMENT_TIMEOUT=15
# NOP-Out detection 10 + recovery_tmo (fast_io_fail_tmo 5, 15 if a daemon leaves iscsid's) +
# checker_timeout 10 + polling_interval 5 + slack (TCG, 64 maps sampled every 0.5-3 s)
FAIL_LIMIT=50
HOLD_S=5               # the portal stays silent this long after the last of its paths failed
BACK_LIMIT=60          # resume until every path is active in DM again
SHOW_LIMIT_MS=1000     # ours: the slowest show paths

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
# maps_ready: $LUNS multipath maps of 2 paths each in DM
maps_ready() {
    dmsetup table --target multipath | awk -v want=$LUNS '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) n++
        if (n == 2) c++ } END { exit c != want }'
}
# map_devs: /dev/dm-N of every multipath map
map_devs() { dmsetup ls --target multipath | sed -n 's|.*(\([0-9]*\)[:, ]*\([0-9]*\))$|/dev/dm-\2|p'; }
portal_devts() { for _d in $(portal_sds "$1"); do read -r _t < "/sys/class/block/$_d/dev"; echo "$_t"; done | tr '\n' ' '; }
# every session logged in and every sd running: the initiator is back to normal
initiator_ready() {
    ! grep -qv LOGGED_IN /sys/class/iscsi_session/session*/state &&
        ! grep -qvx running /sys/block/sd*/device/state
}
# dm_sample DOWN_DEVTS OK_DEVTS: "uptime failed-down-portal failed-ok-portal active-all"
dm_sample() {
    dmsetup status --target multipath | awk -v t="$(uptime_s)" -v down=" $1 " -v ok=" $2 " '
        { for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) {
              if ($(i + 1) == "A") act++
              else if ($(i + 1) == "F") { if (index(down, " " $i " ")) fd++; if (index(ok, " " $i " ")) fo++ } } }
        END { printf "%s %d %d %d\n", t, fd, fo, act }'
}
# wait_dm FIELD VALUE SECONDS: poll DM every 0.5 s until FIELD (2 failed-down, 4 active) of
# dm_sample is VALUE; prints the seconds it took, n/a after SECONDS
wait_dm() {
    _w0=$(uptime_s) _k=0
    while [ $_k -lt $(($3 * 2)) ]; do
        [ "$(dm_sample "$_ddt" "$_odt" | cut -d' ' -f"$1")" = "$2" ] && { secs_since "$_w0"; return; }
        _k=$((_k + 1)); sleep 0.5
    done
    echo n/a
}

# story BIN LABEL: the whole experiment under one daemon; values go to $LAB_OUT/LABEL.values
story() {
    _bin=$1 _l=$2 _v=$LAB_OUT/$2.values
    : > "$_v"
    step "$_l: the initiator is back to normal, recovery_tmo $ISCSI_REPLACEMENT_TIMEOUT"
    wait_for "$_l: sessions logged in, sd devices running" 60 initiator_ready
    for _s in /sys/class/iscsi_session/session*; do echo "$ISCSI_REPLACEMENT_TIMEOUT" > "$_s/recovery_tmo"; done

    step "$_l: start the daemon, $LUNS maps of 2 paths"
    _t0=$(uptime_s)
    # (the log goes to tmpfs: -v3 of 128 paths is thousands of lines, slow on the 9p share)
    "$_bin" -d -v3 > "$LAB_TMP/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: $LUNS maps of 2 paths in DM" 120 maps_ready
    echo "[$(uptime_s)] $_l: $LUNS maps"
    _ddt=$(portal_devts $DOWN_PORTAL) _odt=$(portal_devts $OK_PORTAL)
    [ "$(wait_dm 4 $((LUNS * 2)) 60)" != n/a ] || fail "$_l: not all $((LUNS * 2)) paths active in DM within 60 s"
    _start=$(secs_since "$_t0")
    wait_for "$_l: the daemon answers show paths" 30 sh -c "$LAB_TMP/sockload latency 1 'show paths'"
    expect_eq "$_l: checkers" "$((LUNS * 2)) tur" "$($REF show paths raw format %c | sort | uniq -c | awk '{ print $1, $2 }')"
    _rtmo=$(cat /sys/class/iscsi_session/session*/recovery_tmo | sort -u | paste -sd, -)
    echo "$_l: start until all paths active ${_start} s; sessions' recovery_tmo: $_rtmo"
    expect_eq "$_l: paths behind portal $DOWN_PORTAL" $LUNS "$(echo $_ddt | wc -w)"
    artifact "$_l-topology.txt" $REF show maps topology > /dev/null

    step "$_l: IO on every map, monitors"
    uevents_start
    touch "$LAB_TMP/io.run"
    # (ioload prints a line per failed read at once, the summary when io.run goes)
    "$LAB_TMP/ioload" 500 "$LAB_TMP/io.run" $(map_devs) > "$LAB_OUT/$_l-io.txt" 2>&1 &
    _io=$!
    ( while [ -e "$LAB_TMP/io.run" ]; do dm_sample "$_ddt" "$_odt"; sleep 0.5; done ) > "$LAB_OUT/$_l-dm.txt" &
    _dmmon=$!
    "$LAB_TMP/sockload" sample 500 5000 "$LAB_TMP/io.run" "show paths" > "$LAB_OUT/$_l-show-paths-latency.txt" 2>&1 &
    _show=$!
    sleep 5                # IO runs a while on both portals first

    step "$_l: portal $DOWN_PORTAL goes silent: $LUNS paths lost at once"
    _td=$(uptime_s)
    portal_hang $DOWN_PORTAL
    # a reconfigure while the portal's paths hang (their checks and reads wait on it), as an
    # admin's change of multipath.conf can come at any time: timed until `show daemon` says
    # idle again (at most 120 s); `show paths` is sampled throughout as before
    (
        sleep 2
        _r0=$(uptime_s)
        $REF reconfigure > /dev/null 2>&1
        until $REF show daemon 2>/dev/null | grep -qx "pid $_pid idle"; do
            [ "$(secs_since "$_r0" | cut -d. -f1)" -lt 120 ] || { echo n/a; exit; }
            sleep 0.2
        done
        secs_since "$_r0"
    ) > "$LAB_TMP/reconf-$_l" &
    _reconf=$!
    _failed=$(wait_dm 2 $LUNS $FAIL_LIMIT)
    echo "$_l: all $LUNS paths of portal $DOWN_PORTAL failed in DM after $_failed s"
    sleep $HOLD_S

    step "$_l: portal $DOWN_PORTAL answers again: wait until every path is active in DM"
    _tr=$(uptime_s)
    portal_resume $DOWN_PORTAL
    _back=$(wait_dm 4 $((LUNS * 2)) $BACK_LIMIT)
    echo "$_l: all $((LUNS * 2)) paths active in DM $_back s after the resume"
    sleep 3                # the last reads after the recovery
    rm -f "$LAB_TMP/io.run"
    wait $_io $_dmmon $_show $_reconf
    uevents_stop
    cp "$LAB_TMP/uevents.log" "$LAB_OUT/$_l-uevents.log"

    step "$_l: measure"
    # (one pass over the uevent log: a uevents_count per path took a minute for 64 paths)
    uevents_find DM_ACTION=PATH_FAILED | sed -n 's/^DM_PATH=//p' > "$LAB_TMP/failed-devts"
    _pf=$(grep -c . "$LAB_TMP/failed-devts")
    _of=$(awk -v ok=" $_odt " 'index(ok, " " $1 " ") { n++ } END { print n + 0 }' "$LAB_TMP/failed-devts")
    _ofdm=$(awk '$3 > m { m = $3 } END { print m + 0 }' "$LAB_OUT/$_l-dm.txt")
    _shows=$(grep -c . "$LAB_OUT/$_l-show-paths-latency.txt")
    _show_failed=$(awk '$3 == "failed"' "$LAB_OUT/$_l-show-paths-latency.txt" | grep -c .)
    _slow=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$LAB_OUT/$_l-show-paths-latency.txt")
    _slow_out=$(awk -v a="$_td" -v b="$_tr" '$1 >= a && $1 < b && $2 > m { m = $2 } END { print m + 0 }' "$LAB_OUT/$_l-show-paths-latency.txt")
    _over=$(awk -v l=$SHOW_LIMIT_MS '$2 > l || $3 != "ok"' "$LAB_OUT/$_l-show-paths-latency.txt" | wc -l)
    _reads=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^reads=/) { sub(/reads=/, "", $i); s += $i } } END { print s + 0 }' "$LAB_OUT/$_l-io.txt")
    _errs=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^errors=/) { sub(/errors=/, "", $i); s += $i } } END { print s + 0 }' "$LAB_OUT/$_l-io.txt")
    _slowio=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^slowest_ms=/) { sub(/slowest_ms=/, "", $i); if ($i + 0 > m) m = $i + 0 } } END { printf "%.2f", m / 1000 }' "$LAB_OUT/$_l-io.txt")
    _stuck=$(grep -c 'in_flight=1' "$LAB_OUT/$_l-io.txt")
    {
        echo "start_to_all_active_s=$_start"
        echo "recovery_tmo=$_rtmo"
        echo "outage_to_all_failed_s=$_failed"
        echo "reconfigure_during_outage_s=$(cat "$LAB_TMP/reconf-$_l")"
        echo "path_failed_events=$_pf"
        echo "ok_dm_path_failed=$_of"
        echo "ok_failed_in_dm_max=$_ofdm"
        echo "resume_to_all_active_s=$_back"
        echo "io_errors=$_errs"
        echo "reads=$_reads"
        echo "reads_stuck_at_end=$_stuck"
        echo "slowest_read_s=$_slowio"
        echo "show_paths_slowest_ms=$_slow"
        echo "show_paths_slowest_outage_ms=$_slow_out"
        echo "show_paths_over_limit=$_over/$_shows"
        echo "show_paths_failed=$_show_failed"
    } > "$_v"
    cat "$_v"

    daemon_stop_and_flush "$_l" "$_bin" "$_pid" "$_v"
    cp "$LAB_TMP/$_l.log" "$LAB_OUT/"
}

step "configuration, udev, $LUNS LIO LUNs x 2 iSCSI portals"
mkdir -p /etc/multipath
# as iscsi_portal_hang: tur in overrides (both hardware tables have a LIO-ORG entry);
# fast_io_fail_tmo is what a daemon may write into the iSCSI sessions' recovery_tmo
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 5
    max_polling_interval 5
    checker_timeout 10
    fast_io_fail_tmo 5
    find_multipaths greedy
    user_friendly_names yes
}
overrides {
    detect_checker no
    path_checker tur
    no_path_retry 12
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
# the measuring clients run from tmpfs: exec from the 9p share takes seconds under TCG
cp "$LAB_BIN/sockload" "$LAB_BIN/ioload" "$LAB_TMP/" || fail "copy sockload, ioload"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
# the targets first, udev after: 64 backstores made by dmsetup without udev's sync (each
# create waits for udev otherwise), then every device's add event replayed at once
topo_iscsi $LUNS 2 4
echo "[$(uptime_s)] targets and sessions ready"
udevd_start 120
artifact iscsi-sessions.txt iscsiadm -m session
for _p in 0 1; do echo "portal $_p ($(portal_addr $_p)): $(portal_sds $_p | wc -l) sd devices"; done

story "$REF" debian
story "$OURS" ours
cp "$LAB_TMP/iscsid.log" "$LAB_OUT/iscsid.log"

step "Debian vs ours"
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
row() { printf '| %-58s | %12s | %12s |\n' "$1" "$(value debian "$2")" "$(value ours "$2")"; }
{
    echo "fabric_outage: $LUNS LIO LUNs x 2 iSCSI portals on loopback ($((LUNS * 2)) paths), portal $DOWN_PORTAL silent"
    echo "until all its $LUNS paths are failed in DM, + ${HOLD_S} s; O_DIRECT 4 KiB reads on every map every 0.5 s"
    echo "tur, checker_timeout 10, polling_interval 5, no_path_retry 12, fast_io_fail_tmo 5;"
    echo "iscsid: replacement_timeout $ISCSI_REPLACEMENT_TIMEOUT, NOP-Out every 5 s, timeout 5 s; qemu TCG"
    echo "Debian: $REF ($(grep -o 'multipathd v[0-9.]*' "$LAB_OUT/debian.log" | head -1)); ours: release build of this tree"
    echo "show paths: examples/sockload every 0.5 s, 5 s timeout, for both daemons"
    echo
    echo "| row                                                        |       Debian |         ours |"
    echo "|------------------------------------------------------------|--------------|--------------|"
    row "start until all $((LUNS * 2)) paths active in DM (s)" start_to_all_active_s
    row "sessions' recovery_tmo with the daemon running (s)" recovery_tmo
    row "outage until all $LUNS paths failed in DM (s)" outage_to_all_failed_s
    row "reconfigure 2 s into the outage, until idle (s)" reconfigure_during_outage_s
    row "PATH_FAILED uevents (all paths)" path_failed_events
    row "healthy-portal paths: PATH_FAILED uevents" ok_dm_path_failed
    row "healthy-portal paths failed in DM at once, most" ok_failed_in_dm_max
    row "resume until all $((LUNS * 2)) paths active in DM (s)" resume_to_all_active_s
    row "IO errors (all maps)" io_errors
    row "reads (all maps)" reads
    row "slowest read (s)" slowest_read_s
    row "slowest show paths (ms)" show_paths_slowest_ms
    row "slowest show paths during the outage (ms)" show_paths_slowest_outage_ms
    row "show paths over ${SHOW_LIMIT_MS} ms or failed / samples" show_paths_over_limit
    row "shutdown" shutdown
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"

step "ours: all $LUNS failed in time, none of the other portal, 0 IO errors, all back, show paths < 1 s"
_t=$(value ours outage_to_all_failed_s)
expect_eq "ours: portal $DOWN_PORTAL's paths failed in DM within $FAIL_LIMIT s" yes \
    "$(awk -v t="$_t" -v l="$FAIL_LIMIT" 'BEGIN { print (t ~ /^[0-9.]+$/ && t + 0 <= l) ? "yes" : "no (" t ")" }')"
expect_eq "ours: PATH_FAILED uevents of portal $OK_PORTAL's paths" 0 "$(value ours ok_dm_path_failed)"
expect_eq "ours: IO errors on the maps" 0 "$(value ours io_errors)"
expect_eq "ours: reads stuck at the end" 0 "$(value ours reads_stuck_at_end)"
expect_eq "ours: idle again after the reconfigure during the outage" yes \
    "$([ "$(value ours reconfigure_during_outage_s)" != n/a ] && echo yes || echo no)"
expect_eq "ours: every path active in DM after the resume" yes \
    "$([ "$(value ours resume_to_all_active_s)" != n/a ] && echo yes || echo no)"
expect_eq "ours: show paths over ${SHOW_LIMIT_MS} ms or failed" 0 "$(value ours show_paths_over_limit | cut -d/ -f1)"
