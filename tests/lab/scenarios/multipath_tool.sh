# Debian's `multipath` tool beside a running daemon: the same commands against Debian's
# multipathd and then against ours, on one topology (scsi_debug, 3 LUNs x 2 paths, udev as on
# a host, find_multipaths strict, user_friendly_names): -u (with the udev environment of the
# path, as 60-multipath.rules calls it) before and after -a, -r (which the tool hands to the
# daemon), -ll, -l, -ll MAP, -U (as 56-dm-mpath.rules calls it) and -C of a map, -f MAP, -w,
# -W, the tool creating maps itself (no option) with the daemon adopting them, -F, -t.  After
# each command that changes state, the maps the daemon shows, the DM tables and the wwids and
# bindings entries are recorded too.  Every output and exit code must be the same for ours as
# for Debian's (table.txt), except the intended differences listed below.  Then, with ours,
# the tool's -a/-w in a loop while our daemon records WWIDs of maps it creates: no entry lost.
# lab-timeout: 420
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_TMP/multipathd            # (a copy on tmpfs: exec from the 9p share is slow under TCG)
MP=/sbin/multipath
trap 'cp "$LAB_TMP"/debian.log "$LAB_TMP"/ours.log "$LAB_TMP"/loop-a "$LAB_OUT"/ 2> /dev/null' EXIT

# Masks, each for what changes between the two runs by itself:
# - the tool's log lines start with the seconds since boot;
# - dm minors: each run creates its maps anew, and a minor is the kernel's next free one, so
#   it says in what order the maps were made, not what they are (names, WWIDs and tables are
#   compared unmasked).
mask() { sed -E 's/^[0-9]+\.[0-9]+ \| /TIME | /; s/dm-[0-9]+/dm-N/g'; }

# with_udev_env DEV CMD...: CMD in the environment udev gives a rule's program for DEV
with_udev_env() {
    _dev=$1; shift
    (
        eval "$(udevadm info -q property --export -n "$_dev" | sed 's/^/export /')"
        export ACTION=change SEQNUM=1
        "$@"
    )
}
# cs: the uptime in centiseconds, without a fork (forks are slow under TCG)
cs() { read -r _up _x < /proc/uptime; echo "${_up%.*}${_up#*.}"; }
# rec LABEL KEY CMD...: CMD's output (masked) and exit code into $LAB_OUT/LABEL/KEY.{out,rc},
# its duration (not compared) into KEY.cs
rec() {
    _l=$1 _k=$2; shift 2
    _t0=$(cs)
    "$@" > "$LAB_TMP/rec.raw" 2>&1
    _rc=$?
    echo $(($(cs) - _t0)) > "$LAB_OUT/$_l/$_k.cs"
    echo $_rc > "$LAB_OUT/$_l/$_k.rc"
    mask < "$LAB_TMP/rec.raw" > "$LAB_OUT/$_l/$_k.out"
    echo "$_l: $_k (rc $_rc): $*"
    while IFS= read -r _line; do echo "    $_line"; done < "$LAB_OUT/$_l/$_k.out"
    echo "$_k" >> "$LAB_OUT/$_l/keys"
}
# the entries of a state file (its comments are each program's own words)
entries() { grep -v '^#' "$1" 2> /dev/null; }
# state LABEL KEY: what the daemon shows (asked through Debian's client for both daemons, so
# the client is not what is compared), the DM maps, tables and the files' entries
state() {
    rec "$1" "$2-maps" $REF show maps raw format '%n %w %N'
    rec "$1" "$2-paths" sh -c "$REF show paths raw format '%d %m %t' | sort"
    rec "$1" "$2-dm" sh -c "dmsetup table --target multipath | sort"
    rec "$1" "$2-wwids" entries /etc/multipath/wwids
    rec "$1" "$2-bindings" entries /etc/multipath/bindings
}
# path P of LUN L (scsi_debug: host order is path order, LUN L at H:0:0:L)
sd_of() {
    for _d in $(sd_devices); do
        case $(basename "$(readlink -f "/sys/block/$_d/device")") in *:0:0:$1) echo "$_d" ;; esac
    done | sed -n "$(($2 + 1))p"
}
# the dm-N holding path sdX
map_of() { for _h in /sys/block/$1/holders/dm-*; do [ -e "$_h" ] && { basename "$_h"; return 0; }; done; return 1; }

# concurrent_writers: with our daemon running and the maps of LUNs 0 and 1 up, loop A: the tool
# adds $FAKES WWIDs of no device; loop B, meanwhile, $CYCLES times for each map: the map
# removed (`del map`), the tool forgets its WWID (-w), our daemon makes the map again
# (`add map`) and so records the WWID again.  Every WWID must be in the file once at the end.
FAKES=20 CYCLES=2
concurrent_writers() {
    step "ours: the tool and our daemon write the wwids file at once"
    _wwids=$($REF show maps raw format '%w' | sort)
    _c0=$(grep -c 'create: ' "$LAB_TMP/ours.log")
    (
        _a0=$(cs) _i=0
        while [ $_i -lt $FAKES ]; do
            $MP -a "3lab$(printf '%012d' $_i)" > /dev/null 2>&1 || echo "multipath -a $_i failed"
            _i=$((_i + 1))
        done
        echo "loop A: $_a0 $(cs)"
    ) > "$LAB_TMP/loop-a" 2>&1 &
    _a=$!
    _b0=$(cs) _k=0
    while [ $_k -lt $CYCLES ]; do
        for _w in $_wwids; do
            $REF del map "$_w" > /dev/null
            $MP -w "$_w" > /dev/null 2>&1
            $REF add map "$_w" > /dev/null
        done
        _k=$((_k + 1))
    done
    _b1=$(cs)
    wait $_a
    cat "$LAB_TMP/loop-a"
    cp /etc/multipath/wwids "$LAB_OUT/concurrent-wwids"
    _lost=0
    for _w in $_wwids $(_i=0; while [ $_i -lt $FAKES ]; do echo "3lab$(printf '%012d' $_i)"; _i=$((_i + 1)); done); do
        [ "$(grep -cx "/$_w/" /etc/multipath/wwids)" -eq 1 ] || { echo "not once in the file: $_w"; _lost=$((_lost + 1)); }
    done
    _creates=$(($(grep -c 'create: ' "$LAB_TMP/ours.log") - _c0))
    printf 'lost=%s\ncreates=%s\n' $_lost $_creates > "$LAB_TMP/concurrent.values"
    set -- $(sed -n 's/^loop A: //p' "$LAB_TMP/loop-a")
    echo "concurrent writers of the wwids file: the tool $FAKES adds (loop A, uptime $(($1 / 100))-$(($2 / 100)) s) and $((CYCLES * 2)) removals, our daemon $_creates map creations (loop B, $((_b0 / 100))-$((_b1 / 100)) s); entries not found exactly once: $_lost" > "$LAB_TMP/concurrent.result"
    cat "$LAB_TMP/concurrent.result"
}

# story BIN LABEL
story() {
    _bin=$1 _l=$2
    mkdir -p "$LAB_OUT/$_l"; : > "$LAB_OUT/$_l/keys"
    step "$_l: the daemon starts (strict: no WWID known, no map)"
    _st0=$(uptime_s)
    "$_bin" -d -v3 > "$LAB_TMP/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: the daemon answers" 60 "$_bin" show daemon
    state "$_l" start

    step "$_l: -u before the WWIDs are known, -a, -u after"
    rec "$_l" u-unknown with_udev_env "/dev/$A0" $MP -u "$A0"
    rec "$_l" a-lun0 $MP -a "/dev/$A0"
    rec "$_l" a-lun1 $MP -a "/dev/$B0"
    rec "$_l" a-lun2 $MP -a "/dev/$C0"
    rec "$_l" a-again $MP -a "/dev/$A1"
    rec "$_l" u-known with_udev_env "/dev/$A0" $MP -u "$A0"
    state "$_l" after-a

    step "$_l: -r: the tool asks the daemon to reconfigure; the 3 maps appear"
    rec "$_l" r $MP -r
    wait_for "$_l: 3 maps with 2 paths each" 60 sh -c "[ \$(dmsetup table --target multipath | grep -c ' 2 [0-9]*:[0-9]* ') -eq 3 ]"
    wait_for "$_l: the daemon shows 3 maps" 30 sh -c "[ \$('$_bin' show maps raw format %n | grep -c .) -eq 3 ]"
    sleep 2     # both paths of each map checked once (polling_interval 1 at start)
    state "$_l" after-r
    _m0=$(map_of "$A0")
    _name0=$(cat "/sys/block/$_m0/dm/name")
    _name2=$(cat "/sys/block/$(map_of "$C0")/dm/name")

    step "$_l: -ll, -l, -ll MAP, -U and -C of a map, -u of a path in a map"
    rec "$_l" ll $MP -ll
    rec "$_l" l $MP -l
    rec "$_l" ll-map $MP -ll "$_name0"
    rec "$_l" U with_udev_env "/dev/$_m0" $MP -U -v1 "$_m0"
    rec "$_l" C $MP -C "$_m0"
    rec "$_l" u-in-map with_udev_env "/dev/$A1" $MP -u "$A1"

    step "$_l: -f of LUN 2's map, -w of its WWID, -u of its path"
    rec "$_l" f $MP -f "$_name2"
    sleep 2     # the daemon's reaction to the removal
    state "$_l" after-f
    rec "$_l" w $MP -w "/dev/$C0"
    rec "$_l" u-forgotten with_udev_env "/dev/$C0" $MP -u "$C0"
    rec "$_l" a-lun2-again $MP -a "/dev/$C0"
    rec "$_l" W $MP -W
    state "$_l" after-W

    step "$_l: -F, then the tool creates the maps itself, the daemon adopts them"
    rec "$_l" F $MP -F
    sleep 2
    state "$_l" after-F
    rec "$_l" create $MP
    wait_for "$_l: 2 maps again" 30 sh -c "[ \$(dmsetup ls --target multipath | grep -vc '^No devices') -eq 2 ]"
    sleep 3     # uevents of the new maps reach the daemon; it checks their paths
    state "$_l" after-create
    rec "$_l" t sh -c "$MP -t | md5sum | cut -c1-12"
    echo "seconds=$(awk -v a="$_st0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')" > "$LAB_OUT/$_l.info"
    [ "$_l" != ours ] || concurrent_writers
    daemon_stop_and_flush "$_l" "$_bin" "$_pid"
}

step "configuration, udev, scsi_debug: 3 LUNs x 2 paths"
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 5
    find_multipaths strict
    user_friendly_names yes
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
cp "$LAB_BIN/multipathd" "$OURS" || fail "copy our multipathd to tmpfs"
topo_scsi_debug 3 2
udevd_start
A0=$(sd_of 0 0) A1=$(sd_of 0 1) B0=$(sd_of 1 0) C0=$(sd_of 2 0)
echo "LUN 0: $A0 $A1, LUN 1: $B0, LUN 2: $C0"
[ -n "$A0" ] && [ -n "$A1" ] && [ -n "$B0" ] && [ -n "$C0" ] || fail "paths of the LUNs not found"

story "$REF" debian
story "$OURS" ours

step "Debian vs ours"
# Intended differences, KEY|reason
INTENDED="start-wwids|Debian's daemon creates both files (a header, no entry) when it starts; ours creates them when it first writes one (the tool creates them too): no entry differs
start-bindings|as start-wwids"
printf '%s\n' "$INTENDED" > "$LAB_TMP/intended"
{
    echo "multipath_tool: Debian's multipath ($($MP -h 2>&1 | grep -o 'multipath-tools v[0-9.]*' | head -1)) with Debian's daemon and with ours"
    echo "same: output (masked: seconds since boot, dm minors) and exit code identical; s: the command's run time"
    echo
    # one awk for the whole table: a few processes per row took 40 s under TCG
    awk -v d="$LAB_OUT/debian" -v o="$LAB_OUT/ours" -v bad="$LAB_TMP/bad" -v intended="$LAB_TMP/intended" '
        function slurp(f,   s, l) { s = ""; LINES = 0; while ((getline l < f) > 0) { s = s l "\n"; if (l != "") LINES++ } close(f); return s }
        function cell(dir, k,   rc, n, t) { rc = slurp(dir "/" k ".rc"); sub(/\n$/, "", rc); slurp(dir "/" k ".out"); n = LINES
            t = slurp(dir "/" k ".cs") / 100; return sprintf("rc %s, %2d lines, %4.1f s", rc, n, t) }
        BEGIN {
            while ((getline l < intended) > 0) { split(l, f, "|"); if (f[1] != "") why[f[1]] = 1 }
            printf "| %-22s | %-26s | %-26s | %-8s |\n", "command", "Debian", "ours", "same"
            print "|------------------------|----------------------------|----------------------------|----------|"
        }
        {
            k = $1
            same = slurp(d "/" k ".out") == slurp(o "/" k ".out") && slurp(d "/" k ".rc") == slurp(o "/" k ".rc")
            s = same ? "yes" : (k in why) ? "intended" : "NO"
            if (s == "NO") print k > bad
            printf "| %-22s | %-26s | %-26s | %-8s |\n", k, cell(d, k), cell(o, k), s
        }' "$LAB_OUT/debian/keys"
    echo
    printf '%s\n' "$INTENDED" | grep . | sed 's/^/intended: /'
    echo "story seconds: Debian $(sed -n 's/^seconds=//p' "$LAB_OUT/debian.info"), ours $(sed -n 's/^seconds=//p' "$LAB_OUT/ours.info")"
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"
BAD=$(cat "$LAB_TMP/bad" 2> /dev/null | tr '\n' ' ' | sed 's/ $//')
for _k in $BAD; do
    echo "--- $_k: Debian (rc $(cat "$LAB_OUT/debian/$_k.rc")) / ours (rc $(cat "$LAB_OUT/ours/$_k.rc"))"
    diff -u "$LAB_OUT/debian/$_k.out" "$LAB_OUT/ours/$_k.out"
done
expect_eq "commands and states that differ" "" "$BAD"

step "the tool and our daemon wrote the wwids file at once"
cat "$LAB_TMP/concurrent.result" | tee -a "$LAB_OUT/table.txt"
expect_eq "entries not found exactly once" 0 "$(sed -n 's/^lost=//p' "$LAB_TMP/concurrent.values")"
expect_eq "maps our daemon created, one per cycle and LUN" $((CYCLES * 2)) "$(sed -n 's/^creates=//p' "$LAB_TMP/concurrent.values")"
