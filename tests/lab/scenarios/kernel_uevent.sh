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

step "all DM uevents of the run"
uevents_stop
grep -E '^(DM_ACTION|DM_PATH|DM_NR_VALID_PATHS)=' "$LAB_TMP/uevents.log" | tee "$LAB_OUT/dm_uevents.txt"
cp "$LAB_TMP/uevents.log" "$LAB_OUT/uevents.log"
