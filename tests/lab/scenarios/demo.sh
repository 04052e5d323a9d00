# The demo behind `make lab-demo`: what our multipathd does with a real kernel, today.
#   1. our daemon: its config dump and a start in the foreground (whatever is implemented so far;
#      a command it does not support yet is shown with its exit status, not treated as failure);
#   2. the scsi_debug topology;
#   3. an intermittent fault injected with dm-flakey on one path of a dm-multipath map;
#   4. the PATH_FAILED uevents the kernel sends for it: the input of marginal-path detection.
# As the daemon grows, its steps go into section 1 and into the fault steps (e.g. `multipathd
# show paths` after each round).  The kernel parts are asserted, so the demo cannot rot.
# lab-timeout: 240
. "$LAB_DIR/lib.sh"

# ours CMD...: run our binary, show its output and exit status; never fails the demo.
ours() {
    echo "+ multipathd $*   (ours: $LAB_BIN/multipathd)"
    multipathd "$@" > "$LAB_TMP/ours.txt" 2>&1
    _rc=$?
    head -40 "$LAB_TMP/ours.txt"
    echo "  -> exit status $_rc"
}

step "our multipathd: version and configuration dump"
[ -x "$LAB_BIN/multipathd" ] || fail "our multipathd was not copied into the VM ($LAB_BIN)"
ours -t

step "the topology: one scsi_debug disk, two device-mapper paths over it"
topo_flakey
uevents_start
mpath_create demo_mp "$FLAKEY_P0" "$FLAKEY_P1"
artifact demo-table.txt dmsetup table demo_mp
run dmsetup ls --tree

step "our multipathd: start in the foreground for 3 s"
multipathd -d -v3 > "$LAB_OUT/our-multipathd.log" 2>&1 &
OURS=$!
sleep 3
ours show paths
ours show maps topology
if kill "$OURS" 2>/dev/null; then echo "our daemon was running; stopped it"; else
    wait "$OURS"; echo "our daemon had exited with status $?"; fi
echo "its log ($LAB_OUT/our-multipathd.log):"; head -20 "$LAB_OUT/our-multipathd.log"

step "inject an intermittent fault on $FLAKEY_P1: dm-flakey up 1 s, down 1 s"
flakey_set lab_p1 1 1
dmsetup table lab_p1

step "IO on the map in 3 rounds; nobody reinstates the path but this script"
for round in 1 2 3; do
    # read until the kernel fails the flakey path (it is down one second in two)
    n=0
    until dmsetup status demo_mp | grep -q " $FLAKEY_P1 F "; do
        read_direct /dev/mapper/demo_mp 64 > /dev/null
        n=$((n + 1))
        [ $n -lt 200 ] || fail "round $round: the flakey path never failed"
    done
    echo "round $round: failed after $n reads: $(dmsetup status demo_mp)"
    run dmsetup message demo_mp 0 reinstate_path "$FLAKEY_P1"
done

step "the PATH_FAILED / PATH_REINSTATED uevents of the run"
# the kernel sends DM uevents from a work queue: the last ones may still be on their way
for action in PATH_FAILED PATH_REINSTATED; do
    wait_for "3 $action uevents for $FLAKEY_P1" 10 \
        sh -c ". $LAB_DIR/lib.sh; [ \$(uevents_count DM_ACTION=$action DM_PATH=$FLAKEY_P1) = 3 ]"
done
uevents_stop
uevents_find DM_NAME=demo_mp | grep -E '^(KERNEL|DM_ACTION|DM_PATH|DM_NR_VALID_PATHS)' | tee "$LAB_OUT/demo-uevents.txt"
expect_eq "PATH_FAILED events for the healthy path $FLAKEY_P0" 0 "$(uevents_count DM_ACTION=PATH_FAILED DM_PATH=$FLAKEY_P0)"

step "heal the path"
flakey_set lab_p1 3600 0
run dmsetup message demo_mp 0 reinstate_path "$FLAKEY_P1"
expect_match "both paths active" "$FLAKEY_P0 A 0 $FLAKEY_P1 A [0-9]+" "$(dmsetup status demo_mp)"
read_direct /dev/mapper/demo_mp 256
