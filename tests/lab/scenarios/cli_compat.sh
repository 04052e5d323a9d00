# Debian's multipathd binary as a client: every command of the list (what os-brick, gobrick,
# Trident, HPE, IBM, curtin, vdsm, avocado, PCP, libdmmp and libmpathpersist send) goes to
# Debian's daemon and then to ours on the same topology; the replies and exit codes must be
# the same, after masking what changes by itself (pid, next_check).  Where upstream changed a
# reply after Debian's 0.9.4 (`%s` of a path, error replies with their reason, getprstatus),
# today's text is measured against upstream 0.14.3's own daemon in cli_compat_upstream.  Then
# our client against Debian's daemon.
# lab-timeout: 420
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd

# The commands, one per line, as argv words separated by '|'.
cat > "$LAB_TMP/commands" <<'CMDS'
show|status
show|paths|raw|format|%d
show|maps
show|paths|raw|format|%d %w %m
show|paths|format|%w %d %t %i %o %T %z %m
show|maps|format|%w %d %n %s
show|daemon
show|maps|topology
show|topology
show|map|mpatha|topology
show|maps|status
show|maps|json
show|map|mpatha|json
list|multipath|mpatha|json
show|paths
show|maps|raw|format|name=%n multipath='%w' sysfs='%d' paths='%N'
show|paths|raw|format|device='%d' serial='%z' multipath='%m' host_wwpn='%N' target_wwnn='%n' host_wwpn='%R' target_wwpn='%r' host_adapter='%a'
show|maps|raw|format|"%d,%w"
show|path|sda
resize|map|mpatha
resize|map|/dev/dm-0
add|path|sda
fail|path|sdb
show|paths|raw|format|%d %t %T
reinstate|path|sdb
getprkey|map|mpatha
setprkey|map|mpatha|key|0x123abc
getprkey|map|mpatha
unsetprkey|map|mpatha
getprkey|map|mpatha
disablequeueing|maps
restorequeueing|maps
switchgroup|map|mpatha|group|1
CMDS

# ask: run every command with $BIN as the client, into $OUT: N.out holds the reply, N.rc its
# exit code.  Volatile fields are masked: pid, the next_check bar and tick, and `show daemon`'s
# state while it is one of the two a settled daemon is in (running during a checker pass:
# Debian's was once, in d0cc370's CI); any other state still differs.
ask() {
    mkdir -p "$OUT"; n=0
    while IFS= read -r line; do
        n=$((n + 1))
        old_ifs=$IFS; IFS='|'; set -- $line; IFS=$old_ifs
        "$BIN" "$@" > "$OUT/$n.raw" 2>&1; echo $? > "$OUT/$n.rc"
        # the client's own config warnings (0.9.4 does not know detect_pgpolicy) are not replies
        sed -E '/^[0-9]+\.[0-9]+ \| /d; s/^pid [0-9]+ (idle|running)$/pid N STATE/; s/pid [0-9]+/pid N/; s/[X.]{10} [0-9]+\/[0-9]+/BAR/' "$OUT/$n.raw" > "$OUT/$n.out"
        echo "$line" > "$OUT/$n.cmd"
    done < "$LAB_TMP/commands"
}

mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    detect_pgpolicy no
    # 0.9.4 prints the default (manual) failback as "-", today's upstream as "manual"
    failback immediate
    polling_interval 2
    max_polling_interval 4
    find_multipaths greedy
    user_friendly_names yes
}
CONF
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin; modprobe scsi_dh_alua
udevd_start

step "topology: one LUN through two hosts"
topo_scsi_debug_2paths
udevadm settle -t 30
# scsi_dh_alua sets the ALUA states a moment after the disks appear; a daemon started
# before that reads the same priority on both paths
wait_for "ALUA states of both paths known" 30 sh -c \
    "[ \$(cat /sys/block/sda/device/access_state /sys/block/sdb/device/access_state | sort -u | grep -c '^active/') -eq 2 ]"

step "Debian's client against Debian's daemon"
run sh -c "$REF -d -v2 > $LAB_OUT/reference.log 2>&1 &"
wait_for "reference daemon has its map" 60 sh -c "$REF show maps raw format %n 2>/dev/null | grep -q ."
wait_for "both paths ready" 30 sh -c "[ \$($REF show paths raw format %T | grep -c ready) -eq 2 ]"
read_direct /dev/dm-0 16   # the kernel marks a group active on its first IO (dm-0: udev may not have made the /dev/mapper link yet)
BIN=$REF OUT=$LAB_OUT/reference; ask
run $REF shutdown
wait_for "reference daemon exited" 20 sh -c "! pidof multipathd"
for m in $(dmsetup ls --target multipath | grep -v '^No devices' | cut -f1); do run dmsetup remove --retry "$m"; done
rm -f /etc/multipath/bindings /etc/multipath/wwids

step "Debian's client against our daemon"
run sh -c "multipathd -d -v3 > $LAB_OUT/ours.log 2>&1 &"
wait_for "our daemon has its map" 60 sh -c "$REF show maps raw format %n 2>/dev/null | grep -q ."
wait_for "both paths ready" 30 sh -c "[ \$($REF show paths raw format %T | grep -c ready) -eq 2 ]"
read_direct /dev/dm-0 16
BIN=$REF OUT=$LAB_OUT/ours; ask

# Replies upstream changed after 0.9.4 (ours follows 0.14.3, compared in cli_compat_upstream).
cat > "$LAB_TMP/changed" <<'CHANGED'
show|maps|format|%w %d %n %s|a map's %s column is headed vend/prod since 0.9.4 (vend/prod/rev before)
CHANGED

step "replies compared"
same=0; differ=0; changed=0
: > "$LAB_OUT/differences.txt"
for f in "$LAB_OUT"/reference/*.cmd; do
    n=$(basename "$f" .cmd)
    why=$(grep -F "$(cat "$f")|" "$LAB_TMP/changed" | sed 's/.*|//')
    if cmp -s "$LAB_OUT/reference/$n.out" "$LAB_OUT/ours/$n.out" && cmp -s "$LAB_OUT/reference/$n.rc" "$LAB_OUT/ours/$n.rc"; then
        same=$((same + 1))
    elif [ -n "$why" ]; then
        changed=$((changed + 1)); echo "changed after 0.9.4: $(cat "$f"): $why"
    else
        differ=$((differ + 1))
        { echo "=== $(cat "$f") (rc reference $(cat "$LAB_OUT/reference/$n.rc"), ours $(cat "$LAB_OUT/ours/$n.rc"))"
          diff "$LAB_OUT/reference/$n.out" "$LAB_OUT/ours/$n.out"; } >> "$LAB_OUT/differences.txt"
    fi
done
echo "identical replies: $same, changed after 0.9.4: $changed, different: $differ"
cat "$LAB_OUT/differences.txt"
expect_eq "commands with a different reply" 0 "$differ"

step "the map removed"
expect_eq "del map of an unused map" "ok" "$(multipathd del map mpatha)"
expect_eq "maps left" 0 "$(dmsetup ls --target multipath | grep -vc '^No devices')"

step "our client against Debian's daemon"
run multipathd shutdown
wait_for "our daemon exited" 20 sh -c "! pidof multipathd"
run sh -c "$REF -d -v2 >> $LAB_OUT/reference.log 2>&1 &"
wait_for "reference daemon answers our client" 60 sh -c "multipathd show maps raw format %n 2>/dev/null | grep -q ."
expect_eq "show daemon via our client" "pid $(pidof multipathd) idle" "$(multipathd show daemon)"
expect_eq "exit code of a failing command via our client" 1 "$(multipathd fail path sdzz > /dev/null 2>&1; echo $?)"
# 0.9.4's daemon answers a bare "fail", which the client prints as it is
expect_eq "reply of a failing command via our client" "fail" "$(multipathd fail path sdzz)"
expect_match "topology via our client" "^(create: )?mpatha \(333333330000007d0\) dm-" "$(multipathd show maps topology)"
run multipathd shutdown
