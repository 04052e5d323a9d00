# Our daemon against Debian's on 8 LUNs x 4 paths: both must build the same maps (names,
# WWIDs, path groups, features, hardware handler), compared field by field in `dmsetup table`.
# Then: a path deleted and re-added while a dd loop reads the map (no IO error), and a
# daemon restart with maps in use (maps adopted, not recreated).
# lab-timeout: 420
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd

# one line per multipath map: its DM uuid, then every field of its table, sorted by uuid
# (names depend on the order in which udev announced the LUNs, so maps are matched by WWID)
tables() {
    for n in $(dmsetup ls --target multipath | grep -v '^No devices' | cut -f1); do
        echo "$(dmsetup info -c --noheadings -o uuid "$n") $(dmsetup table "$n")"
    done | sort
}
names() { dmsetup ls --target multipath | grep -v '^No devices' | cut -f1 | sort | tr '\n' ' '; }
mp_count() { dmsetup ls --target multipath | grep -vc '^No devices'; }

step "configuration, udev and 8x4 topology"
mkdir -p /etc/multipath
# detect_pgpolicy (group_by_prio for ALUA storage) came to upstream after Debian's 0.9.4; with it
# off both daemons use the default failover policy: one group per path, ordered by priority.
# (0.9.4 warns about the keyword it does not know and goes on.)
cat > /etc/multipath.conf <<'CONF'
defaults {
    detect_pgpolicy no
    polling_interval 2
    max_polling_interval 4
    find_multipaths greedy
    user_friendly_names yes
}
CONF
modprobe dm-multipath; modprobe dm-round-robin; modprobe dm-service-time; modprobe dm-queue-length
modprobe scsi_dh_alua
udevd_start
topo_scsi_debug 8 4
udevadm settle -t 30

step "reference daemon builds its maps"
run sh -c "$REF -d -v3 > $LAB_OUT/reference.log 2>&1 &"
wait_for "reference daemon has 8 maps" 60 sh -c "[ \$($REF show maps raw format %n 2>/dev/null | grep -c .) -eq 8 ]"
udevadm settle -t 30
artifact reference-table.txt tables
REF_NAMES=$(names)
artifact reference-topology.txt $REF show maps topology > /dev/null
run $REF shutdown
wait_for "reference daemon exited" 20 sh -c "! pidof multipathd"
run /sbin/multipath -F
udevadm settle -t 30
# a map udev still holds open escapes the flush: remove the rest with retries
for m in $(dmsetup ls --target multipath | grep -v '^No devices' | cut -f1); do run dmsetup remove --retry "$m"; done
expect_eq "maps left after flush" 0 "$(mp_count)"
rm -f /etc/multipath/bindings /etc/multipath/wwids

step "our daemon builds its maps"
run sh -c "multipathd -d -v3 > $LAB_OUT/ours.log 2>&1 &"
wait_for "our daemon has 8 maps" 60 sh -c "[ \$(multipathd show maps raw format %n 2>/dev/null | grep -c .) -eq 8 ]"
artifact ours-table.txt tables
OUR_NAMES=$(names)
artifact ours-topology.txt multipathd show maps topology > /dev/null
artifact ours-show-paths.txt multipathd show paths > /dev/null

step "same maps, field by field"
ref=$(cat "$LAB_OUT/reference-table.txt")
ours=$(cat "$LAB_OUT/ours-table.txt")
echo "$ref" | while read -r uuid rest; do
    mine=$(echo "$ours" | grep "^$uuid " | cut -d' ' -f2-)
    [ -n "$mine" ] || fail "map $uuid is missing in our daemon's tables"
    i=0
    for f in $rest; do
        i=$((i + 1))
        g=$(echo "$mine" | cut -d' ' -f$i)
        [ "$f" = "$g" ] || fail "map $uuid field $i: reference '$f', ours '$g' (reference: $rest | ours: $mine)"
    done
    echo "$uuid identical: $rest"
done || exit 1
expect_eq "map count" "$(echo "$ref" | grep -c .)" "$(echo "$ours" | grep -c .)"
expect_eq "map names" "$REF_NAMES" "$OUR_NAMES"

step "a path deleted and re-added under IO"
M=$(multipathd show maps raw format %n | head -1)
P=$(multipathd show paths raw format "%d %m" | awk -v m="$M" '$2 == m { print $1; exit }')
[ -n "$P" ] || fail "no path of map $M in show paths"
echo "map $M, path $P"
: > "$LAB_TMP/io.err"
( i=0; while [ -e "$LAB_TMP/io.run" ]; do
      dd if=/dev/mapper/"$M" of=/dev/null bs=4k count=64 skip=$((i % 512)) iflag=direct 2>> "$LAB_TMP/io.err" ||
          echo "IO ERROR at round $i" >> "$LAB_TMP/io.err"
      i=$((i + 1)); done ) &
touch "$LAB_TMP/io.run"
sleep 1
before=$(multipathd show paths raw format "%d %m" | awk -v m="$M" '$2 == m' | grep -c .)
path_delete "$P"
wait_for "$P left map $M" 30 sh -c "! multipathd show paths raw format '%d %m' | grep -q '^$P '"
host_rescan
udevadm settle -t 30
wait_for "$P back in map $M" 60 sh -c "[ \$(multipathd show paths raw format '%d %m' | awk -v m=$M '\$2 == m' | grep -c .) -eq $before ]"
rm -f "$LAB_TMP/io.run"; sleep 2
artifact io-errors.txt cat "$LAB_TMP/io.err"
expect_eq "IO errors during delete/re-add" 0 "$(grep -c 'IO ERROR' "$LAB_TMP/io.err")"

step "restart with maps in use: adopted, not recreated"
dmsetup info -c --noheadings -o name,major,minor,events --target multipath | sort > "$LAB_TMP/before.txt"
kill "$(pidof multipathd)"
wait_for "our daemon exited" 20 sh -c "! pidof multipathd"
expect_eq "maps kept after shutdown" 8 "$(mp_count)"
run sh -c "multipathd -d -v3 > $LAB_OUT/ours-restart.log 2>&1 &"
wait_for "our daemon has 8 maps again" 60 sh -c "[ \$(multipathd show maps raw format %n 2>/dev/null | grep -c .) -eq 8 ]"
dmsetup info -c --noheadings -o name,major,minor,events --target multipath | sort > "$LAB_TMP/after.txt"
artifact restart-before.txt cat "$LAB_TMP/before.txt"
artifact restart-after.txt cat "$LAB_TMP/after.txt"
expect_eq "maps (name, dev, events) across a restart" "$(cat "$LAB_TMP/before.txt")" "$(cat "$LAB_TMP/after.txt")"
expect_eq "adopted maps logged" 8 "$(grep -c 'adopted existing map' "$LAB_OUT/ours-restart.log")"
step "reconfigure: a changed multipath.conf takes effect, no map is dropped"
dmsetup info -c --noheadings -o name,major,minor --target multipath | sort > "$LAB_TMP/devs-before.txt"
sed -i 's/^defaults {/defaults {\n    no_path_retry 5/' /etc/multipath.conf
run multipathd reconfigure
wait_for "queue_if_no_path in all 8 tables" 60 sh -c "[ \$(dmsetup table --target multipath | grep -c queue_if_no_path) -eq 8 ]"
dmsetup info -c --noheadings -o name,major,minor --target multipath | sort > "$LAB_TMP/devs-after.txt"
expect_eq "maps (name, dev) across reconfigure" "$(cat "$LAB_TMP/devs-before.txt")" "$(cat "$LAB_TMP/devs-after.txt")"
expect_match "queueing shown by show maps status" "mpatha .* 5 chk" "$(multipathd show maps status)"
run multipathd shutdown
