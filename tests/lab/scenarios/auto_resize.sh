# `auto_resize grow_only` (new in 0.14.3): a LIO LUN grows on the target and each of its 2 paths
# is rescanned, as an admin or a CSI driver does after growing a volume; the daemon resizes the
# map by itself, with no command, once both paths report the new size.  Then the LUN shrinks:
# the map stays as it is (grow_only; udev's probes beyond the LUN's new end fail, for both).  Upstream 0.14.3's daemon (skipped loudly without `make
# upstream`), then ours, on the same LUN; the rows are printed side by side and ours must equal
# upstream's.
# lab-timeout: 420
. "$LAB_DIR/lib.sh"

MIB=1048576
modprobe dm-multipath; modprobe dm-service-time
udevd_start

step "topology: 1 LIO LUN (16 MiB) x 2 ports"
topo_tcm_loop 1 2
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 2
    find_multipaths greedy
    user_friendly_names yes
    auto_resize grow_only
}
CONF

map_mib() { echo $(($(blockdev --getsize64 /dev/mapper/mpatha 2> /dev/null || echo 0) / MIB)); }
map_is() { [ "$(map_mib)" = "$1" ]; }
rescan_paths() { for _d in $(lun_sds 0); do echo 1 > "/sys/block/$_d/device/rescan"; done; }
put() { echo "$2=$3" >> "$LAB_OUT/$1.values"; echo "  $1: $2 = $3"; }

# one_daemon LABEL BIN: the daemon on the 16 MiB LUN; grown to 24 MiB, shrunk to 20 MiB, each
# followed by a rescan of both paths; the LUN is back at 16 MiB and the map flushed at the end.
one_daemon() {
    step "$1: start"
    run sh -c "$2 -d -v3 > $LAB_TMP/$1.log 2>&1 &"
    wait_for "$1: mpatha with 2 paths" 60 sh -c \
        "[ \$(dmsetup table mpatha 2> /dev/null | grep -oE ' [0-9]+:[0-9]+ ' | wc -l) -eq 2 ]"
    udevadm settle -t 30
    wait_for "$1: /dev/mapper/mpatha" 30 test -b /dev/mapper/mpatha
    put "$1" start "$(map_mib)"

    step "$1: the LUN grows to 24 MiB, both paths rescanned, no command"
    lun_resize 0 24
    _t0=$(uptime_s)
    rescan_paths
    if wait_for_soft 30 map_is 24; then
        put "$1" grown "$(map_mib)"
        echo "$1: the map grew $(awk -v a="$_t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s after the rescan"
    else
        put "$1" grown "$(map_mib) (not in 30 s)"
    fi
    # a read beyond the old end
    dd if=/dev/mapper/mpatha of=/dev/null bs=1M count=1 skip=20 iflag=direct 2> /dev/null
    put "$1" read_after_grow "$?"

    step "$1: the LUN shrinks to 20 MiB, both paths rescanned"
    lun_resize 0 20
    rescan_paths
    sleep 5
    put "$1" after_shrink "$(map_mib)"

    lun_resize 0 16
    rescan_paths
    cp "$LAB_TMP/$1.log" "$LAB_OUT/"
    daemon_stop_and_flush "$1" "$2" "$(pidof multipathd)"
}

# wait_for_soft SECONDS CMD...: wait_for whose timeout is a value to report, not a failure.
wait_for_soft() {
    _n=$(($1 * 5)); shift
    until "$@"; do
        _n=$((_n - 1)); [ "$_n" -gt 0 ] || return 1
        sleep 0.2
    done
}

LABELS=ours
if upstream_daemon; then
    one_daemon upstream "$UPSTREAM_MULTIPATHD"
    LABELS="upstream ours"
fi
one_daemon ours multipathd

step "side by side"
printf '%-18s' row; for l in $LABELS; do printf '%-22s' "$l"; done; echo
for row in start grown read_after_grow after_shrink; do
    printf '%-18s' "$row"
    for l in $LABELS; do printf '%-22s' "$(sed -n "s/^$row=//p" "$LAB_OUT/$l.values")"; done
    echo
done
expect_eq "ours: map size at start (MiB)" 16 "$(sed -n 's/^start=//p' "$LAB_OUT/ours.values")"
expect_eq "ours: map size after the LUN grew (MiB)" 24 "$(sed -n 's/^grown=//p' "$LAB_OUT/ours.values")"
expect_eq "ours: a read after the growth" 0 "$(sed -n 's/^read_after_grow=//p' "$LAB_OUT/ours.values")"
expect_eq "ours: map size after the LUN shrank, grow_only (MiB)" 24 "$(sed -n 's/^after_shrink=//p' "$LAB_OUT/ours.values")"
if [ "$LABELS" != ours ]; then
    expect_eq "ours as upstream 0.14.3" "$(cat "$LAB_OUT/upstream.values")" "$(cat "$LAB_OUT/ours.values")"
fi
