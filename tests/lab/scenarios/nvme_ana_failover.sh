# An NVMe controller failover must move IO to the new optimized port.  nvmet over TCP on
# loopback: 4 namespaces x 2 ports (A, B), namespaces 1 and 3 in ANA group 1, 2 and 4 in
# group 2; the host with nvme_core multipath=N, so dm-multipath manages the paths (checker
# and grouping from the hardware table's NVMe entry, prio ana, group_by_prio, failback
# immediate); O_DIRECT reads on every map the whole time.  Under Debian's daemon, then ours:
#   failover: B optimized; A non-optimized for group 1, inaccessible for group 2: time until
#             DM sends each map's IO to B (group 2: DM fails A on the first IO error; group 1:
#             only a refreshed priority and a regroup move it);
#   failback: A optimized, B non-optimized: time until the IO is back on A.
# Ours fails the scenario when it does not move every map's IO within MOVE_LIMIT either way,
# lets an IO error through, or has a path failed that could serve IO (a false failure: any
# of B's, A's in group 1, A's in group 2 outside the inaccessible window).  Debian's numbers
# are reported (table.txt), not asserted, apart from the setup checks both go through.
# lab-timeout: 300
# Ours as shipped (the release build), beside Debian's optimized build.
# lab-profile: release
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
# ours runs from tmpfs, as Debian's from the initramfs (the CLI is sampled every second)
OURS=$LAB_TMP/multipathd
cp "$LAB_BIN/multipathd" "$OURS" || fail "copy of our multipathd to $LAB_TMP"
NSS="1 2 3 4"
# A daemon that refreshes priorities at every check sees the new ANA states at its next
# check of a path of the map, within max_polling_interval (10 s), then reloads the map
# (about a second under TCG); 20 s is that twice over on a loaded CI
# machine, and still far from "never"
MOVE_LIMIT=20
WAIT_MAX=30            # a move not seen by then is reported as "never"

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
# maps_ready: 4 multipath maps of 2 paths each in DM
maps_ready() {
    dmsetup table --target multipath | awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) n++
        if (n == 2) c++ } END { exit c != 4 }'
}

# $LAB_TMP/ns: "N MAP DEVT_A DEVT_B DEV_A DEV_B GROUP" a line (port 0 is A, port 1 is B; MAP
# is "-" until map_names fills it in)
ns_table() {
    for _n in $NSS; do
        _a=$(nvme_ns_dev "$_n" 0) _b=$(nvme_ns_dev "$_n" 1)
        echo "$_n - $(devt "$_a") $(devt "$_b") $_a $_b $(cat "$NVMET/subsystems/$NVME_NQN/namespaces/$_n/ana_grpid")"
    done > "$LAB_TMP/ns"
}
map_names() {
    dmsetup table --target multipath > "$LAB_TMP/tables"
    while read -r _n _m _da _db _a _b _g; do
        echo "$_n $(grep -E " $_da( |$)" "$LAB_TMP/tables" | cut -d: -f1 | head -1) $_da $_db $_a $_b $_g"
    done < "$LAB_TMP/ns" > "$LAB_TMP/ns.new"
    mv "$LAB_TMP/ns.new" "$LAB_TMP/ns"
}
col() { awk -v c="$1" '{ print $c }' "$LAB_TMP/ns" | tr '\n' ' '; }   # 5: A's devices, 6: B's

# sides: where DM sends each namespace's IO, "S1 S2 S3 S4": A, B, AB (both in the active
# group) or - (no active group); a group's state letter is the A/E/D not after a dev_t
sides() {
    dmsetup status --target multipath | awk -v tab="$LAB_TMP/ns" '
        BEGIN { while ((getline l < tab) > 0) { split(l, f, " "); ns[f[2]] = f[1]; da[f[2]] = f[3]; db[f[2]] = f[4]; o[++n] = f[1] } }
        { m = $1; sub(/:$/, "", m); if (!(m in ns)) next
          s = ""; cur = 0
          for (i = 5; i <= NF; i++)
              if ($i ~ /^[AED]$/ && $(i - 1) !~ /:/) cur = ($i == "A")
              else if (cur && $i == da[m]) s = s "A"
              else if (cur && $i == db[m]) s = s "B"
          side[ns[m]] = (s == "") ? "-" : s }
        END { for (k = 1; k <= n; k++) printf "%s%s", (k > 1 ? " " : ""), ((o[k] in side) ? side[o[k]] : "?"); print "" }'
}
on_side() { [ "$(sides)" = "$1 $1 $1 $1" ]; }
# wait_sides SIDE T0 FILE: for each namespace, the seconds from T0 until its IO goes to SIDE
# ("never" after WAIT_MAX), "N SECS" lines in FILE
wait_sides() {
    : > "$3"
    while :; do
        _now=$(uptime_s)
        _i=0
        for _s in $(sides); do
            _i=$((_i + 1))
            _n=$(echo $NSS | cut -d' ' -f$_i)
            [ "$_s" = "$1" ] && ! grep -q "^$_n " "$3" && echo "$_n $(awk -v a="$2" -v b="$_now" 'BEGIN { printf "%.1f", b - a }')" >> "$3"
        done
        [ "$(grep -c . "$3")" -ge 4 ] && break
        awk -v a="$2" -v b="$_now" -v l="$WAIT_MAX" 'BEGIN { exit !(b - a >= l) }' && break
        sleep 0.5
    done
    for _n in $NSS; do grep -q "^$_n " "$3" || echo "$_n never" >> "$3"; done
}
# slowest FILE GROUP: the largest time of the group's namespaces in a wait_sides file
slowest() {
    awk -v g="$2" -v tab="$LAB_TMP/ns" 'BEGIN { while ((getline l < tab) > 0) { split(l, f, " "); grp[f[1]] = f[7] } }
        grp[$1] == g { if ($2 == "never") nv = 1; else if ($2 + 0 > m) m = $2 + 0 }
        END { if (nv) print "never"; else printf "%.1f\n", m }' "$1"
}
cli() { (exec 2> /dev/null; timeout 10 "$@"; :); }
reads() { _r=0; for _d in "$@"; do _r=$((_r + $(awk '{ print $1 }' "/sys/block/$_d/stat"))); done; echo $_r; }
# reads_window SECS: "A/B": reads completed on A's and on B's paths in SECS seconds
reads_window() {
    _ra=$(reads $(col 5)) _rb=$(reads $(col 6))
    sleep "$1"
    echo "$(($(reads $(col 5)) - _ra))/$(($(reads $(col 6)) - _rb))"
}
# prios BIN: "pA1 pB1 pA2 pB2 ..." as the daemon shows them
prios() {
    cli "$1" show paths raw format "%d %p" | awk -v tab="$LAB_TMP/ns" '
        BEGIN { while ((getline l < tab) > 0) { split(l, f, " "); o[++n] = f[5]; o[++n] = f[6] } }
        { p[$1] = $2 }
        END { for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), ((o[i] in p) ? p[o[i]] : "?"); print "" }'
}
both_ports() { for _g in 1 2; do ana_set "$1" "$_g" "$2"; done; }

# dm_failures SINCE UNTIL T_INACC T_BACK: "FALSE TRUE": DM's "Failing path" messages for
# paths that could serve IO when they were failed, and for A's group-2 paths while their
# group was inaccessible (from T_INACC until a second after T_BACK)
dm_failures() {
    dmesg | awk -v a="$1" -v b="$2" -v ti="$3" -v tb="$4" -v tab="$LAB_TMP/ns" '
        BEGIN { while ((getline l < tab) > 0) { split(l, f, " "); ga[f[3]] = f[7]; isb[f[4]] = 1 } }
        { t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t); t += 0 }
        / Failing path / && t >= a && t < b { d = $NF; sub(/\.$/, "", d)
            if (ga[d] == 2 && t >= ti && t < tb + 1) tr++
            else if ((d in ga) || (d in isb)) fa++ }
        END { print fa + 0, tr + 0 }'
}

# story BIN LABEL: the whole experiment under one daemon; values go to $LAB_OUT/LABEL.values
story() {
    _bin=$1 _l=$2 _v=$LAB_OUT/$2.values
    : > "$_v"
    _t0=$(uptime_s)
    step "$_l: ANA at the start: A optimized, B non-optimized; start the daemon"
    both_ports 0 optimized
    both_ports 1 non-optimized
    "$_bin" -d -v3 > "$LAB_OUT/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: 4 maps of 2 paths in DM" 60 maps_ready
    wait_for "$_l: 8 paths active" 30 sh -c "[ \$($_bin show paths raw format '%t' 2>/dev/null | grep -c '^active') -eq 8 ]"
    map_names
    cat "$LAB_TMP/ns"
    _c=$(cli "$_bin" show paths raw format %c | sort | uniq -c | awk '{ printf "%s%d %s", (NR > 1 ? ", " : ""), $1, $2 }')
    # the prioritizer of each path, from the daemon's log ("nvmeXnY: prio = NAME ...")
    _pn=$(sed -n 's/.* \(nvme[0-9]*n[0-9]*\): prio = \([a-z0-9_]*\).*/\1 \2/p' "$LAB_OUT/$_l.log" | sort -u | awk '{ print $2 }' | sort | uniq -c | awk '{ printf "%s%d %s", (NR > 1 ? ", " : ""), $1, $2 }')
    echo "$_l: checkers: $_c; prioritizers: $_pn"
    echo "checker=$_c" >> "$_v"
    echo "prioritizer=$_pn" >> "$_v"
    _p=$(prios "$_bin")
    echo "$_l: prio A1 B1 A2 B2 A3 B3 A4 B4: $_p"
    echo "start_prio=$_p" >> "$_v"
    artifact "$_l-show-paths-start.txt" cli "$_bin" show paths format "%d %i %P %w %t %T %c %p" > /dev/null
    artifact "$_l-topology-start.txt" cli "$_bin" show maps topology > /dev/null

    step "$_l: IO on every map"
    mkdir -p "$LAB_TMP/$_l"
    touch "$LAB_TMP/io.run"
    : > "$LAB_TMP/$_l/errors"
    _bg=""
    for _n in $NSS; do
        _m=$(awk -v n="$_n" '$1 == n { print $2 }' "$LAB_TMP/ns")
        io_loop "/dev/dm-$(dmsetup info -c --noheadings -o minor "$_m")" "$LAB_TMP/$_l/io-$_n" "$LAB_TMP/$_l/errors" &
        _bg="$_bg $!"
    done
    # every second: "UPTIME DEV DM_ST CHK_ST PRIO" (UPTIME unanswered: no answer within 6 s)
    ( while [ -e "$LAB_TMP/io.run" ]; do
          _s=$(exec 2> /dev/null; timeout 6 "$_bin" show paths raw format "%d %t %T %p"; :)
          printf '%s\n' "$_s" | grep -q '^nvme' || _s=unanswered
          echo "$_s" | sed "s/^/$(uptime_s) /"
          sleep 1
      done ) > "$LAB_OUT/$_l-show-paths.txt" &
    _bg="$_bg $!"
    wait_for "$_l: IO goes to A on every map" 20 on_side A
    _rw=$(reads_window 2)
    echo "$_l: reads A/B in 2 s: $_rw"
    expect_eq "$_l: reads on B's paths while A is optimized" 0 "${_rw#*/}"

    step "$_l: failover: B optimized; A non-optimized (group 1), inaccessible (group 2)"
    _tf=$(uptime_s)
    both_ports 1 optimized          # (B first: there is always an optimized group)
    ana_set 0 1 non-optimized
    ana_set 0 2 inaccessible
    wait_sides B "$_tf" "$LAB_TMP/$_l/failover"
    sed 's/^/ns /' "$LAB_TMP/$_l/failover"
    _rw=$(reads_window 3)
    _p=$(prios "$_bin")
    echo "$_l: reads A/B in the next 3 s: $_rw; prio A1 B1 ... A4 B4: $_p; sides: $(sides)"
    artifact "$_l-topology-failover.txt" cli "$_bin" show maps topology > /dev/null
    {
        echo "failover_nonopt_s=$(slowest "$LAB_TMP/$_l/failover" 1)"
        echo "failover_inacc_s=$(slowest "$LAB_TMP/$_l/failover" 2)"
        echo "failover_reads_ab=$_rw"
        echo "failover_prio=$_p"
    } >> "$_v"

    step "$_l: failback: A optimized, B non-optimized"
    _tb=$(uptime_s)
    both_ports 0 optimized
    both_ports 1 non-optimized
    wait_sides A "$_tb" "$LAB_TMP/$_l/failback"
    sed 's/^/ns /' "$LAB_TMP/$_l/failback"
    _rw=$(reads_window 3)
    _p=$(prios "$_bin")
    echo "$_l: reads A/B in the next 3 s: $_rw; prio: $_p; sides: $(sides)"
    {
        echo "failback_s=$(for _g in 1 2; do slowest "$LAB_TMP/$_l/failback" "$_g"; done | awk '$1 == "never" { nv = 1 } $1 + 0 > m { m = $1 + 0 } END { if (nv) print "never"; else printf "%.1f\n", m }')"
        echo "failback_reads_ab=$_rw"
        echo "failback_prio=$_p"
    } >> "$_v"
    rm -f "$LAB_TMP/io.run"
    wait $_bg
    _te=$(uptime_s)
    echo "daemon_cpu_s=$(awk '{ sub(/.*\) /, ""); printf "%.1f", ($12 + $13) / 100 }' "/proc/$_pid/stat")" >> "$_v"
    artifact "$_l-show-paths-end.txt" cli "$_bin" show paths > /dev/null

    step "$_l: IO errors and failed paths"
    _e="" _r=""
    for _n in $NSS; do
        set -- $(cat "$LAB_TMP/$_l/io-$_n")
        _r="$_r $1" _e="$_e $2"
    done
    set -- $(dm_failures "$_t0" "$_te" "$_tf" "$_tb")
    # the daemon's view: a path that could serve IO shown failed or faulty in a sample
    _shown=$(awk -v tf="$_tf" -v tb="$_tb" -v tab="$LAB_TMP/ns" '
        BEGIN { while ((getline l < tab) > 0) { split(l, f, " "); g2a[f[5]] = (f[7] == 2) } }
        $2 != "unanswered" && ($3 == "failed" || $4 == "faulty") && !(g2a[$2] && $1 >= tf && $1 < tb + 5) { c[$2] = 1 }
        END { n = 0; for (d in c) n++; print n }' "$LAB_OUT/$_l-show-paths.txt")
    {
        echo "io_reads=${_r# }"
        echo "io_errors=${_e# }"
        echo "dm_failed_false=$1"
        echo "dm_failed_inaccessible=$2"
        echo "shown_failed_false=$_shown"
        echo "show_paths_unanswered=$(grep -c ' unanswered$' "$LAB_OUT/$_l-show-paths.txt")/$(awk '{ print $1 }' "$LAB_OUT/$_l-show-paths.txt" | uniq | grep -c .)"
    } >> "$_v"
    cat "$_v"

    daemon_stop_and_flush "$_l" "$_bin" "$_pid"
}

step "configuration, udev, nvmet: 4 namespaces in 2 ANA groups x 2 TCP ports"
mkdir -p /etc/multipath
# The hardware tables' NVMe entry gives checker none, group_by_prio and failback immediate;
# overrides pin the prioritizer and grouping this scenario is about.
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 5
    max_polling_interval 10
    find_multipaths greedy
    user_friendly_names yes
}
overrides {
    prio ana
    path_grouping_policy group_by_prio
    failback immediate
    no_path_retry 12
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
topo_nvme_tcp 4 2 2
udevd_start
udevadm settle -t 30
for _n in $NSS; do
    echo "namespace $_n: A $(nvme_ns_dev "$_n" 0), B $(nvme_ns_dev "$_n" 1), group $(cat "$NVMET/subsystems/$NVME_NQN/namespaces/$_n/ana_grpid"), $(cat "/sys/block/$(nvme_ns_dev "$_n" 0)/wwid")"
    expect_eq "namespace $_n: one path per port" "1 1" "$(nvme_ns_dev "$_n" 0 | wc -l) $(nvme_ns_dev "$_n" 1 | wc -l)"
done
ns_table
artifact nvme-controllers.txt sh -c 'for c in /sys/class/nvme/nvme*; do echo "$(basename $c): $(cat $c/transport) $(cat $c/address) $(cat $c/state) cntlid $(cat $c/cntlid)"; done'

story "$REF" debian
story "$OURS" ours

step "Debian vs ours"
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
row() { printf '| %-52s | %24s | %24s |\n' "$1" "$(value debian "$2")" "$(value ours "$2")"; }
{
    echo "nvme_ana_failover: nvmet over TCP on loopback, 4 namespaces (ANA groups 1 2 1 2) x 2 ports (A, B)"
    echo "host nvme_core multipath=N; prio ana, group_by_prio, failback immediate; polling_interval 5, max 10; qemu TCG"
    echo "Debian: $REF ($(grep -o 'multipathd v[0-9.]*' "$LAB_OUT/debian.log" | head -1)); ours: release build of this tree"
    echo "lists are namespace 1 2 3 4; prio lists A1 B1 A2 B2 ...; A/B: port A / port B"
    echo
    echo "| row                                                  |                   Debian |                     ours |"
    echo "|------------------------------------------------------|--------------------------|--------------------------|"
    row "checker (paths)" checker
    row "prioritizer (paths)" prioritizer
    row "prio at the start" start_prio
    row "failover: IO on B, group 1 (A non-optimized) (s)" failover_nonopt_s
    row "failover: IO on B, group 2 (A inaccessible) (s)" failover_inacc_s
    row "failover: reads on A/B in the next 3 s" failover_reads_ab
    row "failover: prio" failover_prio
    row "failback: IO back on A, every map (s)" failback_s
    row "failback: reads on A/B in the next 3 s" failback_reads_ab
    row "failback: prio" failback_prio
    row "IO errors per map" io_errors
    row "reads per map" io_reads
    row "paths falsely failed by DM (could serve IO)" dm_failed_false
    row "A's inaccessible paths failed by DM" dm_failed_inaccessible
    row "paths shown failed/faulty while usable" shown_failed_false
    row "daemon CPU time, start to failback (s)" daemon_cpu_s
    row "show paths unanswered in 6 s / samples" show_paths_unanswered
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"

step "ours: IO follows the optimized port, no IO error, no false failure"
within() { awk -v t="$1" -v l="$MOVE_LIMIT" 'BEGIN { print (t ~ /^[0-9.]+$/ && t + 0 <= l) ? "yes" : "no (" t ")" }'; }
expect_eq "ours: prioritizer" "8 ana" "$(value ours prioritizer)"
expect_eq "ours: prio at the start" "50 10 50 10 50 10 50 10" "$(value ours start_prio)"
expect_eq "ours: IO on B within $MOVE_LIMIT s, A non-optimized" yes "$(within "$(value ours failover_nonopt_s)")"
expect_eq "ours: IO on B within $MOVE_LIMIT s, A inaccessible" yes "$(within "$(value ours failover_inacc_s)")"
expect_eq "ours: prio after the failover" "10 50 1 50 10 50 1 50" "$(value ours failover_prio)"
expect_eq "ours: IO back on A within $MOVE_LIMIT s of the failback" yes "$(within "$(value ours failback_s)")"
expect_eq "ours: prio after the failback" "50 10 50 10 50 10 50 10" "$(value ours failback_prio)"
expect_eq "ours: IO errors per map" "0 0 0 0" "$(value ours io_errors)"
expect_eq "ours: paths falsely failed by DM" 0 "$(value ours dm_failed_false)"
expect_eq "ours: paths shown failed or faulty while usable" 0 "$(value ours shown_failed_false)"
