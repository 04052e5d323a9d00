# An ALUA controller failover on LIO must move IO to the new optimized port.  2 LUNs x 2
# tcm_loop ports (A, B), each port in its own implicit ALUA group; group_by_prio, failback
# immediate, the prioritizer that detect_prio picks (both daemons: sysfs, the kernel's
# access_state); O_DIRECT reads on both maps the whole time.  Under Debian's daemon, then ours:
#   failover: A -> non-optimized, B -> optimized: time until DM sends the IO to B's group;
#   standby:  A -> standby (B optimized): how the daemon shows A, IO errors;
#   failback: A -> optimized, B -> non-optimized: time until the IO is back on A.
# Ours fails the scenario when it does not move the IO within MOVE_LIMIT either way, shows A
# failed or faulty in standby, keeps A where the IO goes in standby (DM fails it again and
# again), or lets an IO error through.  Debian's numbers are reported (table.txt), not
# asserted, apart from the setup checks both daemons go through.
# lab-timeout: 540
# Ours as shipped (the release build), beside Debian's optimized build.
# lab-profile: release
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
# ours runs from tmpfs, as Debian's does from the initramfs: from the 9p share each start of
# the 37 MB debug binary (every CLI call) took seconds, and the CLI samples timed out
OURS=$LAB_TMP/multipathd
cp "$LAB_BIN/multipathd" "$OURS" || fail "copy of our multipathd to $LAB_TMP"
LUNS="0 1"
# A daemon that refreshes priorities on every check moves the IO at its next check of a path
# of the map after the change: within max_polling_interval (10 s) + the reload.  Debian's
# took 3.9 to 13.5 s for the failover and 7 to 10 s for the failback in six runs; 30 s is
# that worst case twice over plus slack for a loaded host, and still three check intervals,
# far from "never"
MOVE_LIMIT=30
WAIT_MAX=40            # a move not seen by then is reported as "never"
# standby is watched this long: every path is checked twice (max_polling_interval 10) after
# the change, so what the daemon shows at the end is its settled view
STANDBY_S=25

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
# maps_ready: 2 multipath maps of 2 paths each in DM
maps_ready() {
    dmsetup table --target multipath | awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) n++
        if (n == 2) c++ } END { exit c != 2 }'
}

# $LAB_TMP/luns: "N MAP DEVT_A DEVT_B SD_A SD_B" a line (port 0 is A, port 1 is B; MAP is "-"
# until map_names fills it in).  Made once: the queries below run several times a second.
lun_table() {
    for _n in $LUNS; do
        _a=$(lun_port_sd "$_n" 0) _b=$(lun_port_sd "$_n" 1)
        echo "$_n - $(devt "$_a") $(devt "$_b") $_a $_b"
    done > "$LAB_TMP/luns"
}
# map_names: the maps of this daemon, by the dev_t of port A's path
map_names() {
    dmsetup table --target multipath > "$LAB_TMP/tables"
    while read -r _n _m _da _db _a _b; do
        echo "$_n $(grep -E " $_da( |$)" "$LAB_TMP/tables" | cut -d: -f1 | head -1) $_da $_db $_a $_b"
    done < "$LAB_TMP/luns" > "$LAB_TMP/luns.new"
    mv "$LAB_TMP/luns.new" "$LAB_TMP/luns"
}
sds_of() { awk -v c="$1" '{ print $c }' "$LAB_TMP/luns" | tr '\n' ' '; }   # 5: A, 6: B

# sides: where DM sends each LUN's IO, "S0 S1": A or B (the active group holds that port's
# path), AB (both in the active group), - (no active group yet).  In the status, a group's
# state (A active, E enabled, D disabled) is the A/E/D that does not follow a path's dev_t.
sides() {
    dmsetup status --target multipath | awk -v tab="$LAB_TMP/luns" '
        BEGIN { while ((getline l < tab) > 0) { split(l, f, " "); lun[f[2]] = f[1]; da[f[2]] = f[3]; db[f[2]] = f[4]; n++ } }
        { m = $1; sub(/:$/, "", m); if (!(m in lun)) next
          s = ""; cur = 0
          for (i = 5; i <= NF; i++)
              if ($i ~ /^[AED]$/ && $(i - 1) !~ /:/) cur = ($i == "A")
              else if (cur && $i == da[m]) s = s "A"
              else if (cur && $i == db[m]) s = s "B"
          side[lun[m]] = (s == "") ? "-" : s }
        END { for (k = 0; k < n; k++) printf "%s%s", (k ? " " : ""), ((k in side) ? side[k] : "?"); print "" }'
}
on_side() { sides | awk -v x="$1" '{ for (i = 1; i <= NF; i++) if ($i != x) exit 1 }'; }
# wait_side SIDE T0: seconds from T0 until every map's IO goes to SIDE, "never" after WAIT_MAX
# (by the clock: under load one round takes more than its 0.5 s)
wait_side() {
    while awk -v a="$2" -v b="$(uptime_s)" -v l="$WAIT_MAX" 'BEGIN { exit !(b - a < l) }'; do
        if on_side "$1"; then secs_since "$2"; return; fi
        sleep 0.5
    done
    echo never
}
# cli BIN ARGS...: the daemon's answer, nothing after 10 s (a busy daemon must not stall the story)
cli() { (exec 2> /dev/null; timeout 10 "$@"; :); }

reads() { _r=0; for _d in "$@"; do _r=$((_r + $(awk '{ print $1 }' "/sys/block/$_d/stat"))); done; echo $_r; }
# reads_window SECS: "A/B": reads completed on A's and on B's paths (all LUNs) in SECS seconds
reads_window() {
    _ra=$(reads $(sds_of 5)) _rb=$(reads $(sds_of 6))
    sleep "$1"
    echo "$(($(reads $(sds_of 5)) - _ra))/$(($(reads $(sds_of 6)) - _rb))"
}
# access states the kernel (scsi_dh_alua) has: "A0 B0 A1 B1", AO AN S U T
kernel_states() {
    for _d in $(awk '{ print $5, $6 }' "$LAB_TMP/luns"); do
        case $(cat "/sys/block/$_d/device/access_state") in
            active/optimized) printf 'AO ' ;; active/non-optimized) printf 'AN ' ;; standby) printf 'S ' ;;
            unavailable) printf 'U ' ;; transitioning) printf 'T ' ;; *) printf '? ' ;;
        esac
    done | sed 's/ $//'
}
# kernel_sees STATES: a read on every path (the unit attention of a changed group comes with
# the next command), then the kernel's states must be STATES
kernel_sees() {
    for _d in $(sds_of 5) $(sds_of 6); do read_direct "/dev/$_d" 1 > /dev/null; done
    [ "$(kernel_states)" = "$1" ]
}
# prio_list COL: "pA0 pB0 pA1 pB1" from "DEV ..." lines on stdin with the prio in column COL
prio_list() {
    awk -v c="$1" -v tab="$LAB_TMP/luns" '
        BEGIN { while ((getline l < tab) > 0) { split(l, f, " "); o[++n] = f[5]; o[++n] = f[6] } }
        { p[$1] = $c }
        END { for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), ((o[i] in p) ? p[o[i]] : "?"); print "" }'
}
prios() { cli "$1" show paths raw format "%d %p" | prio_list 2; }
# last_shown LABEL SINCE: "DEV DM_ST CHK_ST PRIO" lines of the last answered show paths sample
# taken since uptime SINCE (nothing if the daemon answered none)
last_shown() {
    awk -v a="$2" '$1 >= a && $2 != "unanswered" { if ($1 != t) { t = $1; n = 0 } l[++n] = $2 " " $3 " " $4 " " $5; c = n }
        END { for (i = 1; i <= c; i++) print l[i] }' "$LAB_OUT/$1-show-paths.txt"
}
shown_prios() { last_shown "$1" "$2" | prio_list 4; }
every_lun() { for _n in $LUNS; do alua_set "$_n" "$1" "$2"; done; }

# story BIN LABEL: the whole experiment under one daemon; values go to $LAB_OUT/LABEL.values
story() {
    _bin=$1 _l=$2 _v=$LAB_OUT/$2.values
    : > "$_v"
    step "$_l: ALUA at the start: A optimized, B non-optimized, and the kernel knows it"
    every_lun 0 optimized
    every_lun 1 non-optimized
    wait_for "$_l: kernel access states AO AN AO AN" 30 kernel_sees "AO AN AO AN"

    step "$_l: start the daemon: 2 maps, A's group first"
    "$_bin" -d -v3 > "$LAB_OUT/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: 2 maps of 2 paths in DM" 90 maps_ready
    wait_for "$_l: 4 paths active ready" 60 sh -c "[ \$($_bin show paths raw format '%t %T' 2>/dev/null | grep -c '^active ready') -eq 4 ]"
    map_names
    cat "$LAB_TMP/luns"
    expect_eq "$_l: checkers" "4 tur" "$(cli "$_bin" show paths raw format %c | sort | uniq -c | awk '{ print $1, $2 }')"
    # the prioritizer each path got, from the daemon's log ("sdX: prio = NAME ...")
    _pn=$(sed -n 's/.* \(sd[a-z]*\): prio = \([a-z0-9_]*\).*/\1 \2/p' "$LAB_OUT/$_l.log" | sort -u | awk '{ print $2 }' | sort | uniq -c | awk '{ printf "%s%d %s", (NR > 1 ? ", " : ""), $1, $2 }')
    echo "$_l: prioritizers: $_pn"
    echo "prioritizer=$(echo "$_pn" | sed 's/^4 //')" >> "$_v"
    expect_eq "$_l: prio of A0 B0 A1 B1 at the start" "50 10 50 10" "$(prios "$_bin")"
    artifact "$_l-topology-start.txt" cli "$_bin" show maps topology > /dev/null

    step "$_l: IO on both maps, monitors"
    mkdir -p "$LAB_TMP/$_l"
    touch "$LAB_TMP/io.run"
    : > "$LAB_TMP/$_l/errors"
    _bg=""
    for _n in $LUNS; do
        _m=$(awk -v n="$_n" '$1 == n { print $2 }' "$LAB_TMP/luns")
        io_loop "/dev/dm-$(dmsetup info -c --noheadings -o minor "$_m")" "$LAB_TMP/$_l/io-$_n" "$LAB_TMP/$_l/errors" &
        _bg="$_bg $!"
    done
    # every 0.5 s: "UPTIME | sides | reads A0 B0 A1 B1 | kernel access states A0 B0 A1 B1"
    ( while [ -e "$LAB_TMP/io.run" ]; do
          _r=""; for _n in $LUNS; do _r="$_r $(reads $(awk -v n="$_n" '$1 == n { print $5, $6 }' "$LAB_TMP/luns"))"; done
          echo "$(uptime_s) | $(sides) |$_r | $(kernel_states)"
          sleep 0.5
      done ) > "$LAB_OUT/$_l-dm.txt" &
    _bg="$_bg $!"
    # every second: "UPTIME DEV DM_ST CHK_ST PRIO" (UPTIME unanswered: no answer within 6 s)
    ( while [ -e "$LAB_TMP/io.run" ]; do
          _s=$(exec 2> /dev/null; timeout 6 "$_bin" show paths raw format "%d %t %T %p"; :)
          printf '%s\n' "$_s" | grep -q '^sd' || _s=unanswered
          echo "$_s" | sed "s/^/$(uptime_s) /"
          sleep 1
      done ) > "$LAB_OUT/$_l-show-paths.txt" &
    _bg="$_bg $!"
    wait_for "$_l: IO goes to A's group on both maps" 20 on_side A
    # the measure is sound: A's paths carry the reads, B's none
    _rw=$(reads_window 3)
    echo "$_l: reads A/B in 3 s: $_rw"
    expect_eq "$_l: reads on B's paths while A is optimized" 0 "${_rw#*/}"

    step "$_l: failover: B optimized, A non-optimized"
    _t=$(uptime_s)
    every_lun 1 optimized          # (B first: there is always an optimized group)
    every_lun 0 non-optimized
    _mv=$(wait_side B "$_t")
    echo "$_l: IO on B's group ${_mv} s after the failover"
    _rw=$(reads_window 3)
    _p=$(shown_prios "$_l" "$_t")
    echo "$_l: reads A/B in the next 3 s: $_rw; prio A0 B0 A1 B1: $_p; sides: $(sides); kernel: $(kernel_states)"
    artifact "$_l-topology-failover.txt" cli "$_bin" show maps topology > /dev/null
    {
        echo "failover_move_s=$_mv"
        echo "failover_reads_ab=$_rw"
        echo "failover_prio_a=$(echo "$_p" | awk '{ print $1, $3 }')"
        echo "failover_prio_b=$(echo "$_p" | awk '{ print $2, $4 }')"
    } >> "$_v"

    step "$_l: standby: A standby, B optimized, watched ${STANDBY_S} s"
    _t=$(uptime_s)
    every_lun 0 standby
    sleep "$STANDBY_S"          # what the daemon shows is sampled every second meanwhile
    _sa=$(sds_of 5)
    # the daemon's view at the end: its last answer to the sampler
    _st=$(last_shown "$_l" "$_t" | awk -v s=" $_sa" 'index(s " ", " " $1 " ") { print $2, $3 }' | sort | uniq -c | awk '{ printf "%s%d %s %s", (NR > 1 ? ", " : ""), $1, $2, $3 }')
    _ever=$(awk -v a="$_t" -v s=" $_sa" '$1 >= a && index(s " ", " " $2 " ") && ($3 == "failed" || $4 == "faulty") { f = 1 } END { print f ? "yes" : "no" }' "$LAB_OUT/$_l-show-paths.txt")
    _st=${_st:-no answer}
    _p=$(shown_prios "$_l" "$_t")
    echo "$_l: A's paths: $_st; shown failed or faulty meanwhile: $_ever; prio A0 B0 A1 B1: $_p; sides: $(sides); kernel: $(kernel_states)"
    {
        echo "standby_a_state=$_st"
        echo "standby_a_failed_meanwhile=$_ever"
        echo "standby_prio_ab=$(echo "$_p" | awk '{ print $1 "/" $2, $3 "/" $4 }')"
        echo "standby_sides=$(sides)"
        echo "standby_io_errors=$(awk -v a="$_t" '$1 >= a' "$LAB_TMP/$_l/errors" | grep -c .)"
    } >> "$_v"

    step "$_l: failback: A optimized, B non-optimized"
    _t2=$_t _t=$(uptime_s)
    # how often DM failed A's paths in standby (each time the daemon put them back where the
    # IO goes, the IO found them in standby): "Failing path MAJ:MIN" in the kernel log
    echo "standby_a_dm_failed=$(dmesg | awk -v a="$_t2" -v b="$_t" -v s=" $(awk '{ print $3 }' "$LAB_TMP/luns" | tr '\n' ' ')" '
        { t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t) }
        / Failing path / && t + 0 >= a && t + 0 < b { d = $NF; sub(/\.$/, "", d); if (index(s, " " d " ")) c++ }
        END { print c + 0 }')" >> "$_v"
    every_lun 0 optimized
    every_lun 1 non-optimized
    _mv=$(wait_side A "$_t")
    echo "$_l: IO on A's group ${_mv} s after the failback"
    _rw=$(reads_window 3)
    _p=$(shown_prios "$_l" "$_t")
    echo "$_l: reads A/B in the next 3 s: $_rw; prio A0 B0 A1 B1: $_p; sides: $(sides); kernel: $(kernel_states)"
    {
        echo "failback_move_s=$_mv"
        echo "failback_reads_ab=$_rw"
        echo "failback_prio_ab=$(echo "$_p" | awk '{ print $1 "/" $2, $3 "/" $4 }')"
    } >> "$_v"
    rm -f "$LAB_TMP/io.run"
    wait $_bg
    # the daemon's CPU time (utime + stime, in clock ticks of 1/100 s) over the whole story
    echo "daemon_cpu_s=$(awk '{ sub(/.*\) /, ""); printf "%.1f", ($12 + $13) / 100 }' "/proc/$_pid/stat")" >> "$_v"
    artifact "$_l-show-paths-end.txt" cli "$_bin" show paths > /dev/null
    echo "show_paths_unanswered=$(grep -c ' unanswered$' "$LAB_OUT/$_l-show-paths.txt")/$(awk '{ print $1 }' "$LAB_OUT/$_l-show-paths.txt" | uniq | grep -c .)" >> "$_v"

    step "$_l: IO errors"
    _e="" _r=""
    for _n in $LUNS; do
        set -- $(cat "$LAB_TMP/$_l/io-$_n")
        _r="$_r $1" _e="$_e $2"
    done
    echo "io_reads=${_r# }" >> "$_v"
    echo "io_errors=${_e# }" >> "$_v"
    cat "$_v"

    daemon_stop_and_flush "$_l" "$_bin" "$_pid"
}

step "configuration, udev, 2 LIO LUNs x 2 tcm_loop ports, a port group each"
mkdir -p /etc/multipath
# Both hardware tables have a LIO-ORG entry (group_by_prio, failback immediate, no_path_retry
# 12; ours also directio): overrides pin what this scenario is about.  detect_prio stays on:
# for LIO (TPGS, no RDAC, access_state readable) both daemons pick sysfs, printed below.
# max_polling_interval 10: a steady path is checked every 10 s, not every 20.
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 5
    max_polling_interval 10
    find_multipaths greedy
    user_friendly_names yes
}
overrides {
    detect_checker no
    path_checker tur
    detect_prio yes
    path_grouping_policy group_by_prio
    failback immediate
    no_path_retry 12
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
udevd_start
topo_tcm_loop_alua 2 2
udevadm settle -t 30
for _n in $LUNS; do
    echo "LUN $_n: A $(lun_port_sd "$_n" 0), B $(lun_port_sd "$_n" 1), $(wwid "$(lun_sds "$_n" | head -1)")"
    expect_eq "LUN $_n: one path per port" "1 1" "$(lun_port_sd "$_n" 0 | wc -l) $(lun_port_sd "$_n" 1 | wc -l)"
done
lun_table
dmesg | grep 'alua:' | tail -8

story "$REF" debian
story "$OURS" ours

step "Debian vs ours"
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
row() { printf '| %-50s | %20s | %20s |\n' "$1" "$(value debian "$2")" "$(value ours "$2")"; }
{
    echo "alua_failover: 2 LIO LUNs x 2 tcm_loop ports (A, B), a port group each, implicit ALUA"
    echo "group_by_prio, failback immediate, tur, polling_interval 5, max_polling_interval 10; qemu TCG"
    echo "Debian: $REF ($(grep -o 'multipathd v[0-9.]*' "$LAB_OUT/debian.log" | head -1)); ours: release build of this tree"
    echo "pairs are LUN 0 LUN 1; A/B: port A / port B"
    echo
    echo "| row                                                |               Debian |                 ours |"
    echo "|----------------------------------------------------|----------------------|----------------------|"
    row "prioritizer (paths)" prioritizer
    row "failover: IO on B's group after (s)" failover_move_s
    row "failover: reads on A/B in the next 3 s" failover_reads_ab
    row "failover: prio of A (LUN 0 1)" failover_prio_a
    row "failover: prio of B (LUN 0 1)" failover_prio_b
    row "standby: A's paths shown (dm_st chk_st)" standby_a_state
    row "standby: A shown failed or faulty meanwhile" standby_a_failed_meanwhile
    row "standby: prio A/B (LUN 0, LUN 1)" standby_prio_ab
    row "standby: where the IO goes (LUN 0 1)" standby_sides
    row "standby: IO errors" standby_io_errors
    row "standby: A's paths failed by DM (both maps)" standby_a_dm_failed
    row "failback: IO back on A's group after (s)" failback_move_s
    row "failback: reads on A/B in the next 3 s" failback_reads_ab
    row "failback: prio A/B (LUN 0, LUN 1)" failback_prio_ab
    row "IO errors per map (LUN 0 1)" io_errors
    row "reads per map (LUN 0 1)" io_reads
    row "daemon CPU time, start to failback (s)" daemon_cpu_s
    row "show paths unanswered in 6 s / samples" show_paths_unanswered
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"

step "ours: IO follows the optimized group, A stays a usable path in standby, no IO error"
within() { awk -v t="$1" -v l="$MOVE_LIMIT" 'BEGIN { print (t ~ /^[0-9.]+$/ && t + 0 <= l) ? "yes" : "no (" t ")" }'; }
expect_eq "ours: IO on B's group within $MOVE_LIMIT s of the failover" yes "$(within "$(value ours failover_move_s)")"
expect_eq "ours: IO back on A's group within $MOVE_LIMIT s of the failback" yes "$(within "$(value ours failback_move_s)")"
_st=$(value ours standby_a_state)
expect_eq "ours: A's paths in standby shown failed, faulty or not at all ($_st)" no \
    "$(printf '%s\n' "$_st" | grep -qE 'failed|faulty|no answer' && echo yes || echo no)"
# once IO is on B, a standby A gets none: DM fails it only if the daemon puts it back into
# the active group (stale priorities); one failure per map is the most a daemon that acted on
# the failover can see
_f=$(value ours standby_a_dm_failed)
expect_eq "ours: DM failed A's paths in standby at most once per map ($_f)" yes "$([ "$_f" -le 2 ] && echo yes || echo no)"
expect_eq "ours: IO errors per map" "0 0" "$(value ours io_errors)"
