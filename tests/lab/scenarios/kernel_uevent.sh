# The kernel alone (no daemon): a dm-multipath map made with dmsetup over two scsi_debug paths
# reports a path failure and a reinstatement as DM uevents.  This is the interface our uevent
# reader consumes.
# lab-timeout: 180
. "$LAB_DIR/lib.sh"

step "two paths to one scsi_debug disk"
topo_scsi_debug_2paths
A=$(devt sda) B=$(devt sdb)
echo "sda=$A sdb=$B wwid=$(wwid sda)"

step "multipath map over both paths"
uevents_start
mpath_create lab_mp sda sdb
artifact table.txt dmsetup table lab_mp
expect_match "status before the fault" "^0 [0-9]+ multipath .* $A A 0 $B A 0" "$(dmsetup status lab_mp)"
read_direct /dev/mapper/lab_mp

step "fail sdb: offline it, then IO on the map"
path_offline sdb
read_direct /dev/mapper/lab_mp 1024
uevents_wait 20 DM_ACTION=PATH_FAILED DM_PATH=$B DM_NAME=lab_mp | tee "$LAB_OUT/path_failed.uevent"
ev=$(uevents_find DM_ACTION=PATH_FAILED DM_PATH=$B)
expect_match "PATH_FAILED carries the valid path count" "^DM_NR_VALID_PATHS=1$" "$ev"
expect_match "PATH_FAILED is a change event of the map" "^ACTION=change$" "$ev"
expect_match "status after the fault" " $B F 1" "$(dmsetup status lab_mp)"

step "bring sdb back and reinstate it"
path_online sdb
run dmsetup message lab_mp 0 reinstate_path "$B" || fail "reinstate_path $B refused"
uevents_wait 20 DM_ACTION=PATH_REINSTATED DM_PATH=$B DM_NAME=lab_mp | tee "$LAB_OUT/path_reinstated.uevent"
expect_match "PATH_REINSTATED valid path count" "^DM_NR_VALID_PATHS=2$" "$(uevents_find DM_ACTION=PATH_REINSTATED DM_PATH=$B)"
expect_match "status after reinstate" " $B A 1" "$(dmsetup status lab_mp)"
read_direct /dev/mapper/lab_mp

step "hot-unplug sdb, IO goes on through sda"
WWID=$(wwid sdb)
path_delete sdb
wait_for "sdb gone" 20 sh -c "! test -e /sys/block/sdb"
read_direct /dev/mapper/lab_mp 256
expect_match "status after the unplug" " $A A 0 $B F [0-9]+" "$(dmsetup status lab_mp)"
wait_for "a second PATH_FAILED uevent for $B" 20 sh -c ". $LAB_DIR/lib.sh; [ \$(uevents_count DM_ACTION=PATH_FAILED DM_PATH=$B) = 2 ]"

step "rescan the host: the path comes back as a new sd device with the same WWID"
host_rescan
wait_for "2 sd devices again" 20 sh -c ". $LAB_DIR/lib.sh; [ \$(sd_count) = 2 ]"
NEW=$(for d in $(sd_devices); do [ "$d" = sda ] || echo "$d"; done)
echo "new path: $NEW ($(devt "$NEW"))"
expect_eq "WWID of the rescanned path" "$WWID" "$(wwid "$NEW")"
expect_eq "state of the rescanned path" running "$(path_state "$NEW")"

step "all DM uevents of the run"
uevents_stop
grep -E '^(DM_ACTION|DM_PATH|DM_NR_VALID_PATHS)=' "$LAB_TMP/uevents.log" | tee "$LAB_OUT/dm_uevents.txt"
cp "$LAB_TMP/uevents.log" "$LAB_OUT/uevents.log"
