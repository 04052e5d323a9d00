# OpenStack os-brick's iSCSI connect / extend / disconnect flow, on one LIO LUN behind two
# iSCSI portals on loopback, against Debian's daemon and then ours, on the same setup.  The
# steps are os-brick's (connectors/iscsi.py, initiator/linuxscsi.py) with its commands:
# `multipathd show status`; SendTargets discovery and a node login per portal;
# `multipath -a WWID`; `multipathd add path /dev/sdX` per path; the map found through the
# paths' holders and read with `multipath -l` and `multipathd show maps`; IO on the map;
# the LUN grows on the target, each path is rescanned, `multipathd reconfigure`, then
# `multipathd resize map /dev/dm-N` (retried while the reply says timeout, as os-brick does)
# and the map's new size (upstream's reconfigure applies it already); disconnect: `multipath -f NAME`, `multipathd del path /dev/sdX`
# and the SCSI device deleted per path, logout and node delete per portal; nothing left:
# no map, no path in `show paths`.  Every reply os-brick parses is recorded for both daemons
# (table.txt) and every row must be the same for ours as for Debian's.
# lab-timeout: 300
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_TMP/multipathd            # (a copy on tmpfs: exec from the 9p share is slow under TCG)
PORTALS=2 MB0=16 MB1=24             # the LUN is MB0 MiB at login and grows to MB1
# the daemons' logs (on tmpfs while they run) are saved however the scenario ends
trap 'cp "$LAB_TMP"/debian.log "$LAB_TMP"/ours.log "$LAB_TMP"/iscsid.log "$LAB_OUT"/ 2> /dev/null' EXIT

# reply CMD...: "TEXT (rc N)", the command's stdout+stderr with its lines joined by \n
reply() {
    _o=$("$@" 2>&1)
    _r=$?
    [ -n "$_o" ] || _o='""'
    printf '%s (rc %s)' "$(printf '%s' "$_o" | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }')" "$_r"
}
# put LABEL KEY VALUE: one row of LABEL's values, and shown
put() { echo "$2=$3" >> "$LAB_OUT/$1.values"; echo "$1: $2 = $3"; }
# lun_paths: the LUN's sd devices now (os-brick finds them through the sessions)
lun_paths() { lun_sds 0; }
# holder_dm: the dm-N holding the LUN's paths (os-brick's find_sysfs_multipath_dm)
holder_dm() {
    for _d in $(lun_paths); do
        for _h in /sys/block/$_d/holders/dm-*; do [ -e "$_h" ] && { basename "$_h"; return 0; }; done
    done
    return 1
}

# story BIN LABEL: os-brick's flow under one daemon; values go to $LAB_OUT/LABEL.values
story() {
    _bin=$1 _l=$2
    : > "$LAB_OUT/$_l.values"
    step "$_l: the LUN is $MB0 MiB again, the daemon starts"
    lun_resize 0 $MB0
    "$_bin" -d -v3 > "$LAB_TMP/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: the daemon answers" 60 "$_bin" show daemon
    # os-brick's is_multipath_running: rc 0, not "error receiving packet"
    _st=$("$_bin" show status 2>&1) && ! printf '%s' "$_st" | grep -q '^error receiving packet' &&
        put "$_l" running yes || put "$_l" running no

    step "$_l: connect: discovery, login to both portals"
    _t0=$(uptime_s)
    put "$_l" discovery "$(iscsiadm -m discovery -t sendtargets -p "$(portal_addr 0):3260" 2>&1 | grep -c "$ISCSI_IQN")"
    _p=0
    while [ $_p -lt $PORTALS ]; do
        _pa="$(portal_addr $_p):3260"
        iscsiadm -m node -T "$ISCSI_IQN" -p "$_pa" --op update -n node.startup -v automatic > /dev/null 2>&1
        put "$_l" "login_$_p" "$(reply iscsiadm -m node -T "$ISCSI_IQN" -p "$_pa" --login | grep -o 'successful\|rc [0-9]*' | tr '\n' ' ' | sed 's/ $//')"
        _p=$((_p + 1))
    done
    wait_for "$_l: $PORTALS paths of the LUN" 30 sh -c ". $LAB_DIR/lib.sh; [ \$(lun_sds 0 | wc -l) -eq $PORTALS ]"
    _paths=$(lun_paths | tr '\n' ' ')
    for _d in $_paths; do wait_for "/dev/$_d" 10 test -b "/dev/$_d" > /dev/null; done
    echo "$_l: paths $_paths"
    put "$_l" paths "$(lun_paths | wc -l)"
    # os-brick's get_sysfs_wwid: the sysfs wwid in udev's form (naa. -> 3)
    _w=$(wwid "${_paths%% *}")
    _wwid=3${_w#naa.}
    echo "$_l: wwid $_wwid"
    echo "wwid=$_wwid" > "$LAB_OUT/$_l.info"
    put "$_l" multipath_a "$(reply /sbin/multipath -a "$_wwid" | sed "s/$_wwid/WWID/")"

    step "$_l: connect: multipathd add path for each path, wait for the map"
    _i=0
    for _d in $_paths; do
        put "$_l" "add_path_$_i" "$(reply "$_bin" add path "/dev/$_d")"
        _i=$((_i + 1))
    done
    wait_for "$_l: the map holds the paths" 30 holder_dm
    _dm=$(holder_dm)
    wait_for "$_l: dm name in sysfs" 10 test -s "/sys/block/$_dm/dm/name"
    _name=$(cat "/sys/block/$_dm/dm/name")
    put "$_l" connect_s "$(awk -v a="$_t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }')"
    wait_for "$_l: both paths in the map's table" 30 sh -c "[ \$(dmsetup table '$_name' | grep -o ' [0-9]*:[0-9]* ' | wc -l) -eq $PORTALS ]"
    # udev's /dev/mapper node first: libdevmapper looks a map given as /dev/dm-N up by its
    # node there, and `multipath -l /dev/dm-N` run before udev made it prints nothing on stdout,
    # only "libdevmapper: libdm-common.c(657): Device dm-0 not found" (why CI failed on cd1dab4)
    wait_for "$_l: udev's /dev/mapper/$_name" 30 test -b "/dev/mapper/$_name"
    put "$_l" map_name "$_name"
    put "$_l" map_uuid "$(sed "s/$_wwid/WWID/" "/sys/block/$_dm/dm/uuid")"
    # multipath -l as os-brick parses it: its stdout only (a tool's log lines go to stderr:
    # 0.9.4 stamps them with seconds since boot, which os-brick's date pattern would not drop),
    # less lines that look like dated log lines and empty ones; name = first token, wwid in (),
    # device lines from the 4th
    echo "+ /sbin/multipath -l /dev/$_dm > \$LAB_OUT/$_l-multipath-l.txt 2> \$LAB_OUT/$_l-multipath-l.err"
    /sbin/multipath -l "/dev/$_dm" > "$LAB_OUT/$_l-multipath-l.txt" 2> "$LAB_OUT/$_l-multipath-l.err"
    cat "$LAB_OUT/$_l-multipath-l.txt" "$LAB_OUT/$_l-multipath-l.err"
    grep -vE '^[A-Za-z]{3} [0-9]+ [0-9:]{8} \||^$' "$LAB_OUT/$_l-multipath-l.txt" > "$LAB_OUT/$_l-multipath-l.lines"
    put "$_l" multipath_l_name "$(awk 'NR == 1 { print ($1 ~ /^(create|reload|switchpg|rename|reject):$/) ? $2 : $1 }' "$LAB_OUT/$_l-multipath-l.lines")"
    put "$_l" multipath_l_wwid "$(sed -n '1s/.*(\(.*\)).*/\1/p' "$LAB_OUT/$_l-multipath-l.lines" | sed "s/$_wwid/WWID/")"
    put "$_l" multipath_l_devices "$(sed -n '4,$p' "$LAB_OUT/$_l-multipath-l.lines" | grep -v policy | sed 's/^[ |`-]*//' |
        awk -v p=" $_paths" 'index(p, " " $2 " ") { n++ } END { print n + 0 }')"
    # gobrick: the show maps line with " dm-N " has 3 fields, the third the WWID
    artifact "$_l-show-maps.txt" "$_bin" show maps > /dev/null
    put "$_l" show_maps_row "$(grep " $_dm " "$LAB_OUT/$_l-show-maps.txt" | awk -v n="$_name" -v w="$_wwid" '{ print NF, ($1 == n), ($3 == w) }')"
    put "$_l" show_maps_header "$(head -1 "$LAB_OUT/$_l-show-maps.txt" | tr -s ' ' | sed 's/ $//')"
    put "$_l" show_paths_map "$("$_bin" show paths raw format '%d %m' | grep -c " $_name\$")"
    artifact "$_l-topology.txt" "$_bin" show maps topology > /dev/null

    step "$_l: IO on the map"
    touch "$LAB_TMP/io.run"
    io_loop "/dev/$_dm" "$LAB_TMP/$_l-io" &
    _io=$!
    wait_for "$_l: 10 reads" 30 sh -c "[ \$(cut -d' ' -f1 '$LAB_TMP/$_l-io' 2>/dev/null || echo 0) -ge 10 ]"
    put "$_l" map_size_before "$(blockdev --getsize64 "/dev/$_dm")"

    step "$_l: extend: the LUN grows to $MB1 MiB, each path rescanned"
    lun_resize 0 $MB1
    for _d in $_paths; do echo 1 > "/sys/block/$_d/device/rescan"; done
    put "$_l" path_sizes "$(for _d in $_paths; do blockdev --getsize64 "/dev/$_d"; done | sort -u | tr '\n' ' ' | sed 's/ $//')"
    put "$_l" reconfigure "$(reply "$_bin" reconfigure)"
    # upstream's reconfigure resizes a map whose paths all have another size (ACT_RESIZE)
    _k=0
    while [ $_k -lt 50 ] && [ "$(blockdev --getsize64 "/dev/$_dm")" != $((MB1 * 1048576)) ]; do _k=$((_k + 1)); sleep 0.2; done
    put "$_l" reconfigure_resized "$([ $_k -lt 50 ] && echo yes || echo "no (10 s)")"
    # os-brick: the resize is retried every second while the reply says timeout (up to 120 s)
    _k=0
    while :; do
        _rs=$(reply "$_bin" resize map "/dev/$_dm")
        _k=$((_k + 1))
        case $_rs in *timeout*) [ $_k -lt 60 ] && { sleep 1; continue; } ;; esac
        break
    done
    echo "$_l: resize map answered after $_k tries"
    echo "resize_tries=$_k" >> "$LAB_OUT/$_l.info"
    put "$_l" resize "$_rs"
    put "$_l" map_size_after "$(blockdev --getsize64 "/dev/$_dm")"
    put "$_l" map_table_sectors "$(dmsetup table "$_name" | cut -d' ' -f2)"
    _r0=$(cut -d' ' -f1 "$LAB_TMP/$_l-io")
    wait_for "$_l: 10 reads after the resize" 30 sh -c "[ \$(cut -d' ' -f1 '$LAB_TMP/$_l-io') -ge $((_r0 + 10)) ]"
    rm -f "$LAB_TMP/io.run"
    wait $_io
    read -r _reads _errs _slow < "$LAB_TMP/$_l-io"
    echo "$_l: reads=$_reads errors=$_errs slowest=${_slow}cs"
    echo "reads=$_reads slowest_cs=$_slow" >> "$LAB_OUT/$_l.info"
    put "$_l" io_errors "$_errs"

    step "$_l: disconnect: flush the map, del path and delete each path, logout"
    put "$_l" flush "$(reply /sbin/multipath -f "$_name")"
    put "$_l" map_gone_after_flush "$([ -e "/sys/block/$_dm/dm/name" ] && echo no || echo yes)"
    _i=0
    for _d in $_paths; do
        put "$_l" "del_path_$_i" "$(reply "$_bin" del path "/dev/$_d")"
        blockdev --flushbufs "/dev/$_d"
        echo 1 > "/sys/block/$_d/device/delete"
        _i=$((_i + 1))
    done
    for _d in $_paths; do wait_for "$_l: /dev/$_d removed" 30 sh -c "! test -e /dev/$_d"; done
    _p=0
    while [ $_p -lt $PORTALS ]; do
        _pa="$(portal_addr $_p):3260"
        put "$_l" "logout_$_p" "$(reply iscsiadm -m node -T "$ISCSI_IQN" -p "$_pa" --logout | grep -o 'successful\|rc [0-9]*' | tr '\n' ' ' | sed 's/ $//')"
        iscsiadm -m node -T "$ISCSI_IQN" -p "$_pa" --op delete > /dev/null 2>&1
        _p=$((_p + 1))
    done

    step "$_l: nothing left"
    sleep 2                 # the daemon's view after the last removal events
    put "$_l" maps_in_dm "$(map_count)"
    put "$_l" show_maps_after "$(reply "$_bin" show maps)"
    # os-brick's multipath_show_paths: the names in `show paths raw format %d`
    _left=0
    for _d in $_paths; do "$_bin" show paths raw format %d | grep -qx "$_d" && _left=$((_left + 1)); done
    put "$_l" show_paths_left "$_left"
    put "$_l" show_paths_after "$(reply "$_bin" show paths raw format %d)"
    put "$_l" sessions "$(iscsiadm -m session 2>&1 | grep -c "$ISCSI_IQN")"
    put "$_l" sd_left "$(sd_count)"
    daemon_stop_and_flush "$_l" "$_bin" "$_pid" "$LAB_OUT/$_l.values"
}

step "configuration, udev, the LIO iSCSI target: 1 LUN behind $PORTALS portals, no login yet"
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
udevd_start
iscsi_target 1 $PORTALS $MB0
expect_eq "sd devices before any login" 0 "$(sd_count)"

story "$REF" debian
story "$OURS" ours

step "Debian vs ours"
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
ROWS="running discovery login_0 login_1 paths multipath_a add_path_0 add_path_1 map_name map_uuid
multipath_l_name multipath_l_wwid multipath_l_devices show_maps_header show_maps_row show_paths_map
map_size_before path_sizes reconfigure reconfigure_resized resize map_size_after map_table_sectors io_errors flush
map_gone_after_flush del_path_0 del_path_1 logout_0 logout_1 maps_in_dm show_maps_after
show_paths_left show_paths_after sessions sd_left shutdown"
{
    echo "osbrick_iscsi: os-brick's connect / extend ($MB0 -> $MB1 MiB) / disconnect flow, 1 LIO LUN x $PORTALS iSCSI portals on loopback"
    echo "Debian: $REF ($(grep -o 'multipathd v[0-9.]*' "$LAB_TMP/debian.log" | head -1)); ours: debug build of this tree"
    echo "replies as each daemon's own client prints them, lines joined by \\n; WWID: the LUN's ($(sed -n 's/^wwid=//p' "$LAB_OUT/debian.info"))"
    echo
    printf '| %-22s | %-30s | %-30s | %-4s |\n' step Debian ours same
    echo "|------------------------|--------------------------------|--------------------------------|------|"
    for _k in $ROWS; do
        _a=$(value debian "$_k") _b=$(value ours "$_k")
        printf '| %-22s | %-30s | %-30s | %-4s |\n' "$_k" "$_a" "$_b" "$([ "$_a" = "$_b" ] && echo yes || echo NO)"
    done
    echo
    echo "connect (discovery to map) s: Debian $(value debian connect_s), ours $(value ours connect_s)"
    echo "Debian: $(grep -v '^wwid=' "$LAB_OUT/debian.info" | tr '\n' ' ')"
    echo "ours:   $(grep -v '^wwid=' "$LAB_OUT/ours.info" | tr '\n' ' ')"
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"

step "every row the same for ours as for Debian's, and the flow worked"
for _k in $ROWS; do
    expect_eq "$_k: ours as Debian's" "$(value debian "$_k")" "$(value ours "$_k")"
done
expect_eq "map size after the resize" $((MB1 * 1048576)) "$(value ours map_size_after)"
expect_eq "IO errors" 0 "$(value ours io_errors)"
expect_eq "maps left" 0 "$(value ours maps_in_dm)"
expect_eq "paths left in show paths" 0 "$(value ours show_paths_left)"
