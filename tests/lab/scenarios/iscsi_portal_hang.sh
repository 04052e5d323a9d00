# An iSCSI portal that stops answering.  16 LIO LUNs behind four portals of the LIO iSCSI
# target on loopback (64 paths), the open-iscsi initiator logged in to each (one session
# each), tur checker, no_path_retry 12, IO on every map; portal 1 goes silent for 60 s (its
# address is routed into a blackhole), then answers again: 16 hung paths, more than the check
# pool's minimum of workers.  Debian's daemon, then ours, on the same setup.
# Ours must fail the silent portal's paths in DM within the initiator's detection (NOP-Out
# ping, 10 s) + replacement_timeout + checker_timeout + one polling interval (+ margin), fail
# no path of the healthy portals, have no IO error on any map, and get every path back after
# the portal answers again.  Debian's numbers are reported next to ours (table.txt).
#
# What the initiator sees: nothing at first (no error, no close: commands and pings wait);
# after ~10 s its NOP-Out times out, it drops the connection and the session goes into
# recovery (sd devices "blocked", commands held); after replacement_timeout the held commands
# fail (DID_TRANSPORT_FAILFAST, devices "transport-offline") and DM retries them on the other
# portal.  iscsid keeps reconnecting; after the resume it logs in again within seconds.
# lab-timeout: 720
# Ours as shipped (the release build), beside Debian's optimized build.
# lab-profile: release
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_BIN/multipathd
# the daemons' answers are timed through one client, Debian's (it starts in well under a
# second; our client over 9p can take seconds to start under TCG, that is not the daemon's
# latency).  It gives up after 4 s and prints "timeout".
CLIENT=/sbin/multipathd
LUNS=16 PORTALS=4 HUNG_PORTAL=1 OK_PORTALS="0 2 3"
PATHS=$((LUNS * PORTALS))
HANG_S=60
ISCSI_REPLACEMENT_TIMEOUT=15
# NOP-Out detection 10 + replacement_timeout 15 + checker_timeout 10 + polling_interval 5,
# + 10 s of slack (TCG, a loaded host, DM sampled every 0.5-3 s under load)
FAIL_LIMIT=50
BACK_LIMIT=90          # resume until every path is active in DM again

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
# map_devs: /dev/dm-N of every multipath map
map_devs() { dmsetup ls --target multipath | sed -n 's|.*(\([0-9]*\)[:, ]*\([0-9]*\))$|/dev/dm-\2|p'; }
maps_ready() {
    dmsetup table --target multipath | awk -v want=$LUNS -v per=$PORTALS '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) n++
        if (n == per) c++ } END { exit c != want }'
}
portal_devts() { for _p in "$@"; do for _d in $(portal_sds "$_p"); do devt "$_d"; done; done | tr '\n' ' '; }
session_of() { readlink -f "/sys/block/$1/device" | grep -o 'session[0-9]*' | head -1; }
# every session logged in and every sd running: the initiator is back to normal
initiator_ready() {
    ! grep -qv LOGGED_IN /sys/class/iscsi_session/session*/state &&
        for _d in $(sd_devices); do [ "$(path_state "$_d")" = running ] || return 1; done
}

# dm_sample HUNG_DEVTS OK_DEVTS HUNG_SESSION: "uptime failed-hung failed-ok active-all session-state"
dm_sample() {
    dmsetup status --target multipath | awk -v t="$(uptime_s)" -v hung=" $1 " -v ok=" $2 " \
        -v s="$(cat "/sys/class/iscsi_session/$3/state" 2> /dev/null)" '
        { for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) {
              if ($(i + 1) == "A") act++
              else if ($(i + 1) == "F") { if (index(hung, " " $i " ")) fh++; if (index(ok, " " $i " ")) fo++ } } }
        END { printf "%s %d %d %d %s\n", t, fh, fo, act, s }'
}

# story BIN LABEL: the whole experiment under one daemon; values go to $LAB_OUT/LABEL.values
story() {
    _bin=$1 _l=$2 _v=$LAB_OUT/$2.values
    : > "$_v"
    step "$_l: the initiator is back to normal, recovery_tmo $ISCSI_REPLACEMENT_TIMEOUT"
    wait_for "$_l: sessions logged in, sd devices running" 60 initiator_ready
    # a daemon may have written recovery_tmo (fast_io_fail_tmo): start each one from iscsid's value
    for _s in /sys/class/iscsi_session/session*; do echo "$ISCSI_REPLACEMENT_TIMEOUT" > "$_s/recovery_tmo"; done

    step "$_l: start the daemon, $LUNS maps of $PORTALS paths"
    "$_bin" -d -v3 > "$LAB_OUT/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: $LUNS maps of $PORTALS paths in DM" 120 maps_ready
    wait_for "$_l: $PATHS paths active ready" 60 sh -c "[ \$($CLIENT show paths raw format '%t %T' 2>/dev/null | grep -c '^active ready') -eq $PATHS ]"
    expect_eq "$_l: checkers" "$PATHS tur" "$($CLIENT show paths raw format %c | sort | uniq -c | awk '{ print $1, $2 }')"
    _rtmo=$(cat /sys/class/iscsi_session/session*/recovery_tmo | sort -u | paste -sd, -)
    echo "$_l: sessions' recovery_tmo with the daemon running: $_rtmo"
    _hdt=$(portal_devts $HUNG_PORTAL) _odt=$(portal_devts $OK_PORTALS)
    _hsd=$(portal_sds $HUNG_PORTAL | tr '\n' ' ')
    _osd=$(for _p in $OK_PORTALS; do portal_sds "$_p"; done | tr '\n' ' ')
    _hsess=$(session_of "$(portal_sds $HUNG_PORTAL | head -1)")
    echo "$_l: portal $HUNG_PORTAL (to hang, $_hsess): $_hsd($_hdt); portals $OK_PORTALS: $_osd($_odt)"
    artifact "$_l-topology.txt" $CLIENT show maps topology > /dev/null

    step "$_l: IO on every map, monitors"
    uevents_start
    mkdir -p "$LAB_TMP/$_l"
    touch "$LAB_TMP/io.run"
    # (one process for the reads of every map: a dd per read in 16 shell loops is more CPU
    # than the daemons under TCG; it prints a line per failed read, a summary at the end)
    "$LAB_TMP/ioload" 200 "$LAB_TMP/io.run" $(map_devs) > "$LAB_OUT/$_l-io.txt" 2>&1 &
    _bg="$!"
    ( while [ -e "$LAB_TMP/io.run" ]; do dm_sample "$_hdt" "$_odt" "$_hsess"; sleep 0.5; done ) > "$LAB_OUT/$_l-dm.txt" &
    _bg="$_bg $!"
    # the daemon's view every second, "UPTIME DEV DM_ST CHK_ST" a line, and how long each
    # answer took ("UPTIME unanswered" when the client gave up)
    ( while [ -e "$LAB_TMP/io.run" ]; do
          _t0=$(uptime_s)
          _s=$(exec 2> /dev/null; timeout 6 $CLIENT show paths raw format "%d %t %T"; :)
          printf '%s\n' "$_s" | grep -q '^sd' || _s=unanswered
          echo "$_s" | sed "s/^/$_t0 /"
          echo "$_t0 took $(secs_since "$_t0")" >> "$LAB_OUT/$_l-show-paths-latency.txt"
          sleep 1
      done ) > "$LAB_OUT/$_l-show-paths.txt" &
    _bg="$_bg $!"
    sleep 5                # IO runs a while on both portals first: no error expected there

    step "$_l: portal $HUNG_PORTAL stops answering for $HANG_S s"
    _th=$(uptime_s)
    portal_hang $HUNG_PORTAL
    # the silence lasts a fixed time by design; the failing is measured from the DM samples
    sleep "$HANG_S"
    _trs=$(uptime_s)
    portal_resume $HUNG_PORTAL

    step "$_l: the portal answers again: wait until every path is active in DM"
    _back=n/a _k=0
    while [ $_k -lt $((BACK_LIMIT * 2)) ]; do
        if [ "$(dm_sample "" "" "" | cut -d' ' -f4)" = $PATHS ]; then _back=$(secs_since "$_trs"); break; fi
        _k=$((_k + 1)); sleep 0.5
    done
    echo "$_l: all $PATHS paths active in DM ${_back} s after the resume"
    _shown=n/a _k=0
    while [ $_k -lt 60 ]; do
        if [ "$(exec 2> /dev/null; timeout 6 $CLIENT show paths raw format '%t %T' | grep -c '^active ready'; :)" = $PATHS ]; then
            _shown=$(secs_since "$_trs"); break
        fi
        _k=$((_k + 1)); sleep 0.5
    done
    echo "$_l: all $PATHS paths active ready in show paths ${_shown} s after the resume"
    sleep 3                # the last reads after the recovery
    rm -f "$LAB_TMP/io.run"
    wait $_bg
    uevents_stop
    cp "$LAB_TMP/uevents.log" "$LAB_OUT/$_l-uevents.log"
    artifact "$_l-show-paths-end.txt" $CLIENT show paths > /dev/null

    step "$_l: measure"
    # (one pass over the uevent log and over the show paths record, not one per path)
    uevents_find DM_ACTION=PATH_FAILED | sed -n 's/^DM_PATH=//p' > "$LAB_TMP/failed-devts"
    _of=$(awk -v ok=" $_odt " 'index(ok, " " $1 " ") { n++ } END { print n + 0 }' "$LAB_TMP/failed-devts")
    _pf=$(awk -v h=" $_hdt " 'index(h, " " $1 " ") { n++ } END { print n + 0 }' "$LAB_TMP/failed-devts")
    _osf=$(awk -v ok=" $_osd " 'index(ok, " " $2 " ") && ($3 == "failed" || $4 == "faulty") { f[$2] = 1 }
        END { n = 0; for (d in f) n++; print n }' "$LAB_OUT/$_l-show-paths.txt")
    _unans=$(grep -c ' unanswered$' "$LAB_OUT/$_l-show-paths.txt")
    _samples=$(grep -c . "$LAB_OUT/$_l-show-paths-latency.txt")
    _slow=$(awk '$3 > m { m = $3 } END { printf "%.1f", m }' "$LAB_OUT/$_l-show-paths-latency.txt")
    _all=$(awk -v a="$_th" -v b="$_trs" -v w=$LUNS '$1 >= a && $1 < b && $2 == w { printf "%.1f", $1 - a; exit }' "$LAB_OUT/$_l-dm.txt")
    _most=$(awk -v a="$_th" -v b="$_trs" '$1 >= a && $1 < b && $2 > m { m = $2 } END { print m + 0 }' "$LAB_OUT/$_l-dm.txt")
    _noticed=$(awk -v a="$_th" '$1 >= a && $5 != "LOGGED_IN" { printf "%.1f", $1 - a; exit }' "$LAB_OUT/$_l-dm.txt")
    _sumerr=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^errors=/) { sub(/errors=/, "", $i); s += $i } } END { print s + 0 }' "$LAB_OUT/$_l-io.txt")
    _errmaps=$(grep -c 'errors=[1-9]' "$LAB_OUT/$_l-io.txt")
    _reads=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^reads=/) { sub(/reads=/, "", $i); s += $i } } END { print s + 0 }' "$LAB_OUT/$_l-io.txt")
    _slowio=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^slowest_ms=/) { sub(/slowest_ms=/, "", $i); if ($i + 0 > m) m = $i + 0 } } END { printf "%.2f", m / 1000 }' "$LAB_OUT/$_l-io.txt")
    _stuck=$(grep -c 'in_flight=1' "$LAB_OUT/$_l-io.txt")
    {
        echo "recovery_tmo=$_rtmo"
        echo "noticed_s=${_noticed:-never}"
        echo "hung_failed_before_resume=$_most"
        echo "hang_to_all_hung_failed_s=${_all:-never}"
        echo "hung_path_failed_events=$_pf"
        echo "ok_dm_path_failed=$_of"
        echo "ok_shown_failed=$_osf"
        echo "maps_with_io_errors=$_errmaps"
        echo "io_errors=$_sumerr"
        echo "reads=$_reads"
        echo "reads_stuck_at_end=$_stuck"
        echo "slowest_read_s=$_slowio"
        echo "resume_to_all_active_dm_s=$_back"
        echo "resume_to_all_ready_shown_s=$_shown"
        echo "show_paths_slowest_s=$_slow"
        echo "show_paths_unanswered=$_unans/$_samples"
    } > "$_v"
    cat "$_v"

    daemon_stop_and_flush "$_l" "$_bin" "$_pid" "$_v"
}

step "configuration, udev, $LUNS LIO LUNs x $PORTALS iSCSI portals"
mkdir -p /etc/multipath
# tur, as LIO's ALUA support would pick anyway; checker and queueing in overrides because both
# hardware tables have a LIO-ORG entry.  fast_io_fail_tmo is what a daemon may write into the
# iSCSI sessions' recovery_tmo (the table shows what each one left there).
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
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
udevd_start
# the measuring clients run from tmpfs: exec from the 9p share takes seconds under TCG
cp "$LAB_BIN/ioload" "$LAB_TMP/" || fail "copy ioload"
topo_iscsi $LUNS $PORTALS 4
udevadm settle -t 60
artifact iscsi-sessions.txt iscsiadm -m session
for _p in $(seq 0 $((PORTALS - 1))); do echo "portal $_p ($(portal_addr $_p)): $(portal_sds $_p | tr '\n' ' ')"; done

story "$REF" debian
story "$OURS" ours
cp "$LAB_TMP/iscsid.log" "$LAB_OUT/iscsid.log"

step "Debian vs ours"
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
row() { printf '| %-56s | %12s | %12s |\n' "$1" "$(value debian "$2")" "$(value ours "$2")"; }
{
    echo "iscsi_portal_hang: $LUNS LIO LUNs x $PORTALS iSCSI portals on loopback ($PATHS paths), portal $HUNG_PORTAL silent for ${HANG_S} s"
    echo "tur, checker_timeout 10, polling_interval 5, no_path_retry 12, fast_io_fail_tmo 5;"
    echo "iscsid: replacement_timeout $ISCSI_REPLACEMENT_TIMEOUT, NOP-Out every 5 s, timeout 5 s; qemu TCG"
    echo "Debian: $REF ($(grep -o 'multipathd v[0-9.]*' "$LAB_OUT/debian.log" | head -1)); ours: release build of this tree"
    echo
    echo "| row                                                      |       Debian |         ours |"
    echo "|----------------------------------------------------------|--------------|--------------|"
    row "sessions' recovery_tmo with the daemon running (s)" recovery_tmo
    row "hang until the initiator noticed (session not LOGGED_IN)" noticed_s
    row "hang until all $LUNS silent-portal paths failed in DM (s)" hang_to_all_hung_failed_s
    row "silent-portal paths failed in DM before the resume" hung_failed_before_resume
    row "silent-portal paths: PATH_FAILED uevents" hung_path_failed_events
    row "healthy-portal paths: PATH_FAILED uevents" ok_dm_path_failed
    row "healthy-portal paths shown failed or faulty (of $((PATHS - LUNS)))" ok_shown_failed
    row "IO errors (all maps)" io_errors
    row "maps with IO errors (of $LUNS)" maps_with_io_errors
    row "reads (all maps)" reads
    row "reads stuck at the end" reads_stuck_at_end
    row "slowest read (s)" slowest_read_s
    row "resume until all $PATHS paths active in DM (s)" resume_to_all_active_dm_s
    row "resume until all $PATHS shown active ready (s)" resume_to_all_ready_shown_s
    row "slowest show paths, Debian's client (s)" show_paths_slowest_s
    row "show paths unanswered (client timeout 4 s) / samples" show_paths_unanswered
    row "shutdown" shutdown
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"

step "ours: no IO error, healthy portal untouched, silent portal failed in time, all paths back"
expect_eq "ours: IO errors on the maps" 0 "$(value ours io_errors)"
expect_eq "ours: PATH_FAILED uevents of the healthy portals' paths" 0 "$(value ours ok_dm_path_failed)"
expect_eq "ours: healthy portals' paths shown failed" 0 "$(value ours ok_shown_failed)"
expect_eq "ours: reads stuck at the end" 0 "$(value ours reads_stuck_at_end)"
_t=$(value ours hang_to_all_hung_failed_s)
expect_eq "ours: silent portal's paths failed in DM within $FAIL_LIMIT s" yes \
    "$(awk -v t="$_t" -v l="$FAIL_LIMIT" 'BEGIN { print (t ~ /^[0-9.]+$/ && t + 0 <= l) ? "yes" : "no (" t ")" }')"
expect_eq "ours: every path active in DM after the resume" yes \
    "$([ "$(value ours resume_to_all_active_dm_s)" != n/a ] && echo yes || echo no)"
expect_eq "ours: every path active ready in show paths after the resume" yes \
    "$([ "$(value ours resume_to_all_ready_shown_s)" != n/a ] && echo yes || echo no)"
