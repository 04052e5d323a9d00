# Our device-mapper ioctl layer (examples/dmctl) against the real kernel: create a
# multipath map, read its table and status, send path messages, watch a DM event,
# reload, suspend/resume, rename and remove, comparing every read with dmsetup.
# lab-timeout: 240
. "$LAB_DIR/lib.sh"

step "two paths to one scsi_debug disk, multipath modules"
topo_scsi_debug_2paths
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
A=$(devt sda) B=$(devt sdb) SZ=$(cat /sys/block/sda/size)
echo "sda=$A sdb=$B size=$SZ"
artifact dmctl-version.txt dmctl version || fail "dmctl version"
expect_match "interface version" '^4\.[0-9]+\.[0-9]+$' "$(dmctl version)"

step "create a map with dmctl"
TABLE="0 $SZ multipath 0 1 alua 2 1 service-time 0 1 2 $B 1 1 service-time 0 1 2 $A 1 1"
run dmctl create lab_mp mpath-labwwid "$TABLE" || fail "dmctl create"
expect_match "dmsetup sees the map" '^lab_mp' "$(dmsetup ls)"
expect_eq "uuid" "mpath-labwwid" "$(dmsetup info -c --noheadings -o uuid lab_mp)"
expect_eq "table (dmctl = what we loaded)" "$TABLE" "$(dmctl table lab_mp | sed 's/ *$//')"

step "table and status: dmctl matches dmsetup"
expect_eq "dmctl table = dmsetup table" "$(dmsetup table lab_mp)" "$(dmctl table lab_mp)"
expect_eq "dmctl status = dmsetup status" "$(dmsetup status lab_mp)" "$(dmctl status lab_mp)"
artifact status-before.txt dmctl status lab_mp
artifact check-before.txt dmctl check lab_mp || fail "our parsers disagree with the kernel text"
DMI=$(dmsetup info -c --noheadings -o major,minor --separator : lab_mp)
expect_match "dmctl list has the map with its devt" "^lab_mp $DMI event_nr=[0-9]+$" "$(dmctl list)"
expect_match "dmctl info" "^name=lab_mp uuid=mpath-labwwid dev=$DMI open_count=0 .* suspended=false live=true" "$(dmctl info lab_mp)"
read_direct /dev/dm-"${DMI#*:}" 64

step "fail_path via dmctl: dmsetup status shows F"
run dmctl message lab_mp fail_path "$B" || fail "fail_path refused"
st=$(dmsetup status lab_mp)
echo "$st"
expect_match "$B failed" " $B F 1 " "$st"
expect_match "$A still active" " $A A 0 " "$st"
expect_eq "dmctl status = dmsetup status" "$st" "$(dmctl status lab_mp)"
artifact check-failed.txt dmctl check lab_mp || fail "parsers on the failed-path status"
expect_match "parsed path state" "path $B failed fail_count=1" "$(cat "$LAB_OUT/check-failed.txt")"

step "reinstate_path via dmctl: dmsetup status shows A"
run dmctl message lab_mp reinstate_path "$B" || fail "reinstate_path refused"
st=$(dmsetup status lab_mp)
echo "$st"
expect_match "$B active again" " $B A 1 " "$st"
expect_eq "dmctl status = dmsetup status" "$st" "$(dmctl status lab_mp)"

step "switch_group, queueing messages, and a bad message"
run dmctl message lab_mp switch_group 2 || fail "switch_group 2 refused"
run dmctl message lab_mp queue_if_no_path || fail "queue_if_no_path refused"
expect_match "queue_if_no_path in the table" "multipath 1 queue_if_no_path " "$(dmctl table lab_mp)"
run dmctl message lab_mp fail_if_no_path || fail "fail_if_no_path refused"
expect_match "queueing off again" "multipath 0 " "$(dmctl table lab_mp)"
out=$(dmctl message lab_mp frobnicate 2>&1) && fail "bad message accepted: $out"
expect_eq "bad message error" "dmctl: DM_TARGET_MSG lab_mp: Invalid argument" "$out"

step "DM event: arm poll, fail a path, control node becomes readable"
artifact event.txt dmctl event lab_mp fail_path "$A" || fail "no DM event after fail_path"
run dmctl message lab_mp reinstate_path "$A" || fail "reinstate_path $A refused"

step "reload with a new table (load, then a resume that suspends by itself, queued IO kept, no lockfs)"
T2="0 $SZ multipath 1 queue_if_no_path 0 1 1 round-robin 0 2 1 $A 1 $B 1"
run dmctl reload lab_mp "$T2" || fail "dmctl reload"
expect_eq "reloaded table" "$T2" "$(dmsetup table lab_mp | sed 's/ *$//')"
expect_eq "dmctl status = dmsetup status" "$(dmsetup status lab_mp)" "$(dmctl status lab_mp)"
run dmctl suspend --noflush lab_mp || fail "suspend"
expect_match "suspended per dmsetup" "^State: +SUSPENDED" "$(dmsetup info lab_mp)"
expect_match "suspended per dmctl" "suspended=true" "$(dmctl info lab_mp)"
run dmctl resume lab_mp || fail "resume"
expect_match "active per dmsetup" "^State: +ACTIVE" "$(dmsetup info lab_mp)"

step "errors: busy create, missing map"
out=$(dmctl create lab_mp mpath-other "$T2" 2>&1) && fail "duplicate create accepted"
expect_eq "duplicate create" "dmctl: DM_DEV_CREATE lab_mp: Device or resource busy" "$out"
out=$(dmctl status no_such_map 2>&1) && fail "status of a missing map succeeded"
expect_eq "missing map" "dmctl: DM_TABLE_STATUS no_such_map: No such device or address" "$out"

step "rename and remove"
run dmctl rename lab_mp lab_mp2 || fail "rename"
expect_match "renamed" '^lab_mp2' "$(dmsetup ls)"
run dmctl remove lab_mp2 || fail "remove"
expect_eq "no dm devices left" "No devices found" "$(dmsetup ls)"
expect_eq "dmctl list empty" "" "$(dmctl list)"

step "a device list larger than the first ioctl buffer (16 KiB): dmctl grows it"
# 125 table-less devices with 120-byte names: 144 bytes a record, 18 000 bytes in all.
F=$(printf '%0105d' 0)
i=0
while [ $i -lt 125 ]; do
    dmsetup create "lab_growth_${F}_$(printf %03d $i)" --notable || fail "dmsetup create #$i"
    i=$((i + 1))
done
expect_eq "dmsetup count" 125 "$(dmsetup ls | grep -c '^lab_growth_')"
expect_eq "dmctl list count" 125 "$(dmctl list | grep -c '^lab_growth_')"
expect_eq "dmctl list names = dmsetup ls names" \
    "$(dmsetup ls | awk '{print $1}' | sort)" "$(dmctl list | awk '{print $1}' | sort)"
run dmsetup remove_all || fail "dmsetup remove_all"
expect_eq "dmctl list empty again" "" "$(dmctl list)"
