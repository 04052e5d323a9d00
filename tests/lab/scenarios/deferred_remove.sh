# `deferred_remove yes`: a LIO LUN behind 2 tcm_loop ports, its map held open by a reader (as
# a mount or LVM would hold it).  The LUN is unmapped from both ports (its paths go): the
# daemon removes the map with DM_DEFERRED_REMOVE, so the map stays while it is open.  The LUN
# comes back before the reader closes it: the removal is cancelled and the map keeps its
# paths, and stays after the close.  Unmapped again and then closed: the kernel removes the
# map at the close.  Debian's 0.9.4, upstream 0.14.3's (if `make upstream` built it) and ours,
# one after the other; the rows are printed side by side and ours must equal Debian's and
# upstream's.  `no_path_retry fail` is an override: 0.14.3's built-in LIO entry queues (12), and
# a queueing map in use is kept whatever deferred_remove says (flush_on_last_del unused).
# lab-timeout: 600
. "$LAB_DIR/lib.sh"

modprobe dm-multipath; modprobe dm-service-time
udevd_start

step "topology: 1 LIO LUN x 2 ports"
topo_tcm_loop 1 2
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 2
    find_multipaths greedy
    user_friendly_names yes
    deferred_remove yes
}
overrides {
    no_path_retry fail
}
CONF

put() { echo "$2=$3" >> "$LAB_OUT/$1.values"; echo "  $1: $2 = $3"; }
# state: what the kernel has of mpatha: gone, or its state line ("ACTIVE", "ACTIVE (DEFERRED REMOVE)")
state() { dmsetup info mpatha 2> /dev/null | sed -n 's/^State: *//p' | grep . || echo gone; }
paths() { dmsetup table mpatha 2> /dev/null | grep -oE ' [0-9]+:[0-9]+ ' | wc -l; }
two_paths() { [ "$(paths)" -eq 2 ]; }
# new_paths: the table holds exactly the LUN's current sd devices (after the LUN comes back, the
# old table still lists the 2 gone devices: counting them alone would pass before any reload)
devts() { for _d in $(lun_sds 0); do cat "/sys/block/$_d/dev"; done | sort | tr '\n' ' '; }
table_devts() { dmsetup table mpatha 2> /dev/null | grep -oE ' [0-9]+:[0-9]+ ' | tr -d ' ' | sort | tr '\n' ' '; }
new_paths() { [ "$(table_devts)" = "$(devts)" ] && two_paths; }
is_gone() { [ "$(state)" = gone ]; }
hold() { sleep 1000 < /dev/mapper/mpatha & HOLDER=$!; }
release() { kill "$HOLDER"; wait "$HOLDER" 2> /dev/null; }

one_daemon() {
    step "$1: start"
    run sh -c "$2 -d -v3 > $LAB_TMP/$1.log 2>&1 &"
    wait_for "$1: mpatha with 2 paths" 60 two_paths
    udevadm settle -t 30
    wait_for "$1: /dev/mapper/mpatha" 30 test -b /dev/mapper/mpatha

    step "$1: held open, the LUN's paths go"
    hold
    lun_unmap 0
    sleep 3
    put "$1" open_paths_gone "$(state)"

    step "$1: the LUN comes back before the close"
    lun_map 0
    wait_for "$1: mpatha with the LUN's 2 new paths" 60 new_paths
    put "$1" paths_back "$(state), $(paths) paths"
    release
    sleep 3
    put "$1" closed_after "$(state)"

    step "$1: held open, the paths go, then the close"
    hold
    lun_unmap 0
    sleep 3
    put "$1" open_paths_gone_again "$(state)"
    release
    _t0=$(uptime_s)
    wait_for "$1: mpatha gone after the close" 30 is_gone
    put "$1" closed "$(state)"
    echo "$1: gone $(awk -v a="$_t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s after the close"

    lun_map 0
    cp "$LAB_TMP/$1.log" "$LAB_OUT/"
    daemon_stop_and_flush "$1" "$2" "$(pidof multipathd)"
}

LABELS="debian ours"
one_daemon debian /sbin/multipathd
if upstream_daemon; then
    one_daemon upstream "$UPSTREAM_MULTIPATHD"
    LABELS="debian upstream ours"
fi
one_daemon ours multipathd

step "side by side"
ROWS="open_paths_gone paths_back closed_after open_paths_gone_again closed"
printf '%-24s' row; for l in $LABELS; do printf '%-30s' "$l"; done; echo
for row in $ROWS; do
    printf '%-24s' "$row"
    for l in $LABELS; do printf '%-30s' "$(sed -n "s/^$row=//p" "$LAB_OUT/$l.values")"; done
    echo
done
v() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
expect_eq "ours: held open, paths gone" "ACTIVE (DEFERRED REMOVE)" "$(v ours open_paths_gone)"
expect_eq "ours: paths back before the close" "ACTIVE, 2 paths" "$(v ours paths_back)"
expect_eq "ours: closed after the paths came back" "ACTIVE" "$(v ours closed_after)"
expect_eq "ours: gone at the close" gone "$(v ours closed)"
expect_eq "ours as Debian's 0.9.4" "$(cat "$LAB_OUT/debian.values")" "$(cat "$LAB_OUT/ours.values")"
if [ "$LABELS" != "debian ours" ]; then
    expect_eq "ours as upstream 0.14.3" "$(cat "$LAB_OUT/upstream.values")" "$(cat "$LAB_OUT/ours.values")"
fi
