# Device-mapper's table events reach the daemon without udev: the kernel fails a path on an
# IO error, and the daemon hears it from the dm event thread (DM_DEV_ARM_POLL on the control
# node, then every map's event counter), not from the PATH_FAILED uevent, which comes only
# after udev's rules ran (0.6-0.8 s later in the 1,024-path benchmark's storm).  Here udevd
# is stopped (SIGSTOP) while it happens, so no uevent can tell the daemon, and the periodic
# check is 20 s away: the daemon logs the failure within 1 s of the kernel's line (by the
# times since boot both stamp), and shows the path failed and faulty within 5 s, ours and
# Debian's 0.9.4 (its dmevents thread, the reference) alike.
# One scsi_debug LUN through two hosts (sda, sdb), round-robin over both with one request
# per path, so reads of the map reach sdb.
# lab-timeout: 300
. "$LAB_DIR/lib.sh"

modprobe dm-multipath; modprobe dm-round-robin
udevd_start
topo_scsi_debug_2paths
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 20
    max_polling_interval 20
    find_multipaths greedy
    user_friendly_names yes
    path_grouping_policy multibus
    path_selector "round-robin 0"
    rr_min_io_rq 1
}
CONF

udevd_pid() { pidof systemd-udevd | tr ' ' '\n' | sort -n | head -1; }

# story LABEL BIN LOG_LINE: BIN's daemon up on both paths; udevd stopped; sdb offline and the
# map read, so that the kernel fails sdb; the daemon must show sdb failed and faulty within 5 s
# and have logged LOG_LINE (a regex); then udevd goes on and sdb comes back.
story() {
    step "$1: start, both paths up"
    "$2" -d -v3 > "$LAB_TMP/$1.log" 2>&1 &
    _pid=$!
    wait_for "$1: 2 paths active ready" 60 sh -c "[ \$($2 show paths raw format '%t %T' 2>/dev/null | grep -c 'active ready') -eq 2 ]"
    _map=$(dmsetup ls --target multipath | cut -f1)
    # the start's checks are done; the next periodic ones are 20 s away
    sleep 2

    step "$1: udevd stopped, sdb offline, the map read: the kernel fails sdb"
    _udevd=$(udevd_pid)
    run kill -STOP "$_udevd"
    path_offline sdb
    t0=$(uptime_s)
    expect_match "$1: reads of the map go on through sda" "^64\+0 records out" "$(read_direct "/dev/mapper/$_map" 64)"
    expect_match "$1: the kernel failed sdb ($(devt sdb))" "$(devt sdb) F" "$(dmsetup status "$_map")"
    wait_for "$1: sdb failed faulty" 5 sh -c "$2 show paths raw format '%d %t %T' | grep -qx 'sdb failed faulty'"
    # (the client's own start is in this time: ours' is the debug build, run from the 9p share)
    echo "$1: sdb shown failed and faulty $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s after the reads began"
    expect_ok "$1: its log tells of the dm event" grep -Eq "$3" "$LAB_TMP/$1.log"
    grep -E "$3" "$LAB_TMP/$1.log" | sed 's/^/    /'
    # the daemon's line against the kernel's: both are stamped with the time since boot, by
    # two clocks that drift apart by tens of ms under TCG (the daemon's line can come first)
    _k=$(dmesg | grep "Failing path $(devt sdb)" | tail -1 | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
    _d=$(grep -E "$3" "$LAB_TMP/$1.log" | tail -1 | cut -d' ' -f1)
    _late=$(awk -v k="$_k" -v d="$_d" 'BEGIN { printf "%.3f", d - k }')
    echo "$1: the kernel failed sdb at $_k s, the daemon logged it at $_d s ($_late s)"
    expect_ok "$1: the daemon knew within 1 s of the kernel" awk -v l="$_late" 'BEGIN { exit !(l < 1.0) }'

    step "$1: udevd goes on, sdb comes back"
    run kill -CONT "$_udevd"
    path_online sdb
    wait_for "$1: sdb active ready" 45 sh -c "$2 show paths raw format '%d %t %T' | grep -qx 'sdb active ready'"
    cp "$LAB_TMP/$1.log" "$LAB_OUT/"
    daemon_stop_and_flush "$1" "$2" "$_pid"
}

story ours multipathd 'sdb: failed in the kernel \(dm event\), checking it now'
story debian /sbin/multipathd 'sdb: mark as failed'
