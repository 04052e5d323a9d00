# The path checker and the path state machine on a real kernel:
#  1. a path taken offline is failed within one polling interval + checker timeout, and
#     reinstated when it comes back; `show paths` shows the same dm_st/chk_st/dev_st as
#     Debian's daemon at each step;
#  2. no_path_retry 3: with all paths down IO queues for about 3 intervals, then fails;
#  3. no_path_retry queue: IO waits and completes once a path returns, without an error;
#  4. failback immediate: when the higher-priority path returns, the map switches back to it.
# lab-timeout: 480
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd

conf() {   # conf NO_PATH_RETRY
    cat > /etc/multipath.conf <<CONF
defaults {
    polling_interval 2
    max_polling_interval 4
    find_multipaths greedy
    user_friendly_names yes
    path_grouping_policy group_by_prio
    failback immediate
    no_path_retry $1
}
CONF
}
states() { "$1" show paths raw format "%d %t %T %o" | sort; }
# active_group: the 1-based path group the kernel uses now (A in the status)
# (parsed from the status parameters: features, hardware handler, #groups, next group,
#  then per group: state, selector args, #paths, #per-path args, and the paths)
active_group() {
    dmsetup status "$1" | cut -d' ' -f4- | awk '{
        i = 1; i += $i + 1; i += $i + 1; npg = $i; i += 2
        for (g = 1; g <= npg; g++) {
            st = $i; i++; i += $i + 1; np = $i; ns = $(i + 1); i += 2
            if (st == "A") { print g; exit }
            i += np * (3 + ns)
        } }'
}

# story BIN LABEL: offline/online of sdb under BIN's daemon, states saved per step
story() {
    _bin=$1 _out=$LAB_OUT/$2
    mkdir -p "$_out"
    states "$_bin" > "$_out/1-start.txt"
    t0=$(uptime_s)
    path_offline sdb
    wait_for "$2: sdb failed" 12 sh -c "$_bin show paths raw format '%d %t' | grep -q '^sdb failed'"
    echo "$2: sdb failed $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s after going offline"
    sleep 1
    states "$_bin" > "$_out/2-offline.txt"
    path_online sdb
    wait_for "$2: sdb reinstated" 12 sh -c "$_bin show paths raw format '%d %t %T' | grep -q '^sdb active ready'"
    states "$_bin" > "$_out/3-online.txt"
}

mkdir -p /etc/multipath
conf 3
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin; modprobe scsi_dh_alua
udevd_start
topo_scsi_debug_2paths
udevadm settle -t 30

step "Debian's daemon: offline and online"
run sh -c "$REF -d -v2 > $LAB_OUT/reference.log 2>&1 &"
wait_for "both paths ready (reference)" 60 sh -c "[ \$($REF show paths raw format %T 2>/dev/null | grep -c ready) -eq 2 ]"
story $REF reference
run $REF shutdown
wait_for "reference daemon exited" 20 sh -c "! pidof multipathd"
for m in $(dmsetup ls --target multipath | grep -v '^No devices' | cut -f1); do run dmsetup remove --retry "$m"; done
rm -f /etc/multipath/bindings /etc/multipath/wwids

step "our daemon: offline and online, same states at each step"
run sh -c "multipathd -d -v3 > $LAB_OUT/ours.log 2>&1 &"
wait_for "both paths ready (ours)" 60 sh -c "[ \$(multipathd show paths raw format %T 2>/dev/null | grep -c ready) -eq 2 ]"
story multipathd ours
for f in 1-start 2-offline 3-online; do
    cat "$LAB_OUT/ours/$f.txt"
    expect_eq "states at $f" "$(cat "$LAB_OUT/reference/$f.txt")" "$(cat "$LAB_OUT/ours/$f.txt")"
done
M=$(multipathd show maps raw format %n)

step "failback immediate: the map returns to the higher-priority path"
multipathd show maps topology
# scsi_debug's hosts come up in any order: the ALUA-optimized (prio 50) path is group 1
HI=$(multipathd show paths raw format "%p %d" | sort -rn | head -1 | cut -d' ' -f2)
echo "higher-priority path: $HI"
read_direct /dev/mapper/"$M" 64
expect_eq "group in use before" 1 "$(active_group "$M")"
path_offline "$HI"
read_direct /dev/mapper/"$M" 64
expect_eq "group in use with $HI offline" 2 "$(active_group "$M")"
path_online "$HI"
n=0
until read_direct /dev/mapper/"$M" 16 > /dev/null; [ "$(active_group "$M")" = 1 ]; do
    n=$((n + 1)); [ $n -lt 30 ] || fail "IO did not return to group 1 within 30 s"; sleep 1
done
echo "IO back on group 1 after about $n s"
expect_match "failback logged" "switch to path group #1" "$(cat "$LAB_OUT/ours.log")"

step "no_path_retry 3: IO queues about 3 intervals, then fails"
path_offline sda; path_offline sdb
t0=$(uptime_s)
dd if=/dev/mapper/"$M" of=/dev/null bs=4k count=1 iflag=direct > "$LAB_TMP/dd3.log" 2>&1
rc=$?
took=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%d", b - a }')
echo "dd exited $rc after $took s: $(cat "$LAB_TMP/dd3.log")"
expect_eq "IO fails once the retries are used up" 1 "$rc"
[ "$took" -ge 4 ] && [ "$took" -le 25 ] || fail "IO failed after $took s; expected about 3 checks of 2-4 s"
expect_match "recovery mode logged" "Entering recovery mode|retry" "$(cat "$LAB_OUT/ours.log")"
path_online sda; path_online sdb
wait_for "both paths back" 20 sh -c "[ \$(multipathd show paths raw format '%t %T' | grep -c 'active ready') -eq 2 ]"

step "no_path_retry queue: IO waits for a path and completes without an error"
conf queue
run multipathd reconfigure
wait_for "queue_if_no_path in the table" 20 sh -c "dmsetup table $M | grep -q queue_if_no_path"
path_offline sda; path_offline sdb
( dd if=/dev/mapper/"$M" of=/dev/null bs=4k count=1 iflag=direct > "$LAB_TMP/ddq.log" 2>&1; echo "rc=$?" >> "$LAB_TMP/ddq.log" ) &
sleep 12
expect_eq "IO still waiting after 12 s" "" "$(grep rc= "$LAB_TMP/ddq.log")"
path_online sdb
wait_for "queued IO completed" 20 grep -q 'rc=' "$LAB_TMP/ddq.log"
expect_match "queued IO succeeded" "^rc=0$" "$(cat "$LAB_TMP/ddq.log")"
path_online sda
run multipathd shutdown
