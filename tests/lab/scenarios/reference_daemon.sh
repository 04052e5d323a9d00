# Debian's multipathd (the C reference, multipath-tools 0.9.4) on the 2-path and the 8x4
# topologies.  Its outputs are saved as artifacts for comparison with ours; the scenario checks
# the basic facts: how many paths and maps it manages, and that its checker fails and
# reinstates an offlined path.
# lab-timeout: 300
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd     # "multipathd" alone would be ours (LAB_BIN is first in PATH)

ref_paths() { $REF show paths raw format "%d" | grep -c .; }
ref_maps() { $REF show maps raw format "%n" | grep -c .; }

ref_start() {   # ref_start LOGNAME
    run sh -c "$REF -d -v3 > $LAB_OUT/$1 2>&1 &"
    wait_for "reference multipathd answers on its socket" 20 $REF show daemon
}

ref_stop() {
    run $REF shutdown
    wait_for "reference multipathd exited" 20 sh -c "! pidof multipathd"
}

# ref_artifacts PREFIX: everything a comparison with our daemon may want, saved as PREFIX-*.txt
ref_artifacts() {
    artifact "$1-show-paths.txt" $REF show paths
    artifact "$1-show-maps.txt" $REF show maps
    artifact "$1-show-maps-topology.txt" $REF show maps topology
    artifact "$1-show-maps-json.txt" $REF show maps json > /dev/null
    artifact "$1-show-maps-status.txt" $REF show maps status
    artifact "$1-show-status.txt" $REF show status
    artifact "$1-show-daemon.txt" $REF show daemon
    artifact "$1-show-config.txt" $REF show config > /dev/null
    artifact "$1-show-paths-raw.txt" $REF show paths raw format "%d %D %w %t %T %o %p"
    artifact "$1-multipath-ll.txt" /sbin/multipath -ll > /dev/null
    artifact "$1-dmsetup-table.txt" dmsetup table
    artifact "$1-dmsetup-status.txt" dmsetup status
}

step "configuration and udev"
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 2
    max_polling_interval 4
    find_multipaths greedy
    user_friendly_names yes
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
modprobe dm-multipath; modprobe dm-round-robin; modprobe dm-service-time; modprobe dm-queue-length
modprobe scsi_dh_alua; modprobe scsi_dh_emc; modprobe scsi_dh_rdac
udevd_start
artifact multipath-t.txt /sbin/multipath -t > /dev/null

step "2 paths: topology"
topo_scsi_debug_2paths
udevadm settle -t 30

step "2 paths: start the reference daemon"
ref_start multipathd-2paths.log
wait_for "one map with 2 paths" 30 sh -c ". $LAB_DIR/lib.sh; [ \$($REF show maps raw format %N) = 2 ]"
ref_artifacts 2paths
expect_eq "paths" 2 "$(ref_paths)"
expect_eq "maps" 1 "$(ref_maps)"
MAP=$($REF show maps raw format "%n")
# multipath's WWID of an NAA-identified disk is "3" (the designator type) + the NAA hex digits
expect_eq "map WWID" "3$(sed 's/^naa\.//' /sys/block/sda/device/wwid)" "$($REF show maps raw format "%w")"

step "2 paths: the checker fails an offlined path"
path_offline sdb
read_direct "/dev/mapper/$MAP" 64
wait_for "sdb failed/faulty" 30 sh -c "$REF show paths raw format '%d %t %T' | grep -q '^sdb failed faulty'"
artifact 2paths-failed-show-paths.txt $REF show paths
artifact 2paths-failed-dmsetup-status.txt dmsetup status "$MAP"

step "2 paths: the checker reinstates it"
path_online sdb
wait_for "sdb active/ready" 30 sh -c "$REF show paths raw format '%d %t %T' | grep -q '^sdb active ready'"
artifact 2paths-reinstated-dmsetup-status.txt dmsetup status "$MAP"

step "2 paths: stop the daemon, remove the map and the disks"
ref_stop
run /sbin/multipath -F || fail "multipath -F could not flush the maps"
udevadm settle -t 30
run rmmod scsi_debug || fail "rmmod scsi_debug"
expect_eq "sd devices left" 0 "$(sd_count)"

step "8 LUNs x 4 paths: topology"
topo_scsi_debug 8 4
udevadm settle -t 120

step "8x4: start the reference daemon"
ref_start multipathd-8x4.log
wait_for "8 maps of 4 paths" 120 sh -c "[ \"\$($REF show maps raw format '%N' | grep -c '^4$')\" = 8 ]"
ref_artifacts 8x4
expect_eq "paths" 32 "$(ref_paths)"
expect_eq "maps" 8 "$(ref_maps)"
expect_eq "distinct map WWIDs" 8 "$($REF show maps raw format '%w' | sort -u | grep -c .)"
expect_eq "dm-multipath tables" 8 "$(dmsetup table | grep -c ' multipath ')"
ref_stop
