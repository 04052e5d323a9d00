# The headline story (also `make lab-demo`): two paths to one LUN, one of them fails
# intermittently while IO runs on the map.  Our daemon sees the PATH_FAILED uevents, puts the
# flaky path under IO-error accounting, keeps it failed while its error rate is too high,
# re-tests it after the recheck gap and reinstates it once the fault is gone.  IO on the map
# never fails and the healthy path is never failed.
# lab-timeout: 600
. "$LAB_DIR/lib.sh"

show() {   # show LABEL: our view of the paths, timestamped
    echo "--- [$(uptime_s)] $1"
    multipathd show paths format "%d %D %t %T %o %M" 2>&1
}
dm_state_of() { multipathd show paths raw format "%d %t" | awk -v d="$1" '$1 == d { print $2 }'; }
chk_state_of() { multipathd show paths raw format "%d %T" | awk -v d="$1" '$1 == d { print $2 }'; }

step "configuration: marginal-path detection on (sample 120 s, threshold 10/1000, gap 30 s)"
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 2
    max_polling_interval 4
    find_multipaths greedy
    user_friendly_names yes
    # one group with both paths, so IO really goes through the flaky one
    detect_pgpolicy no
    path_grouping_policy multibus
    marginal_path_double_failed_time 60
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 10
    marginal_path_err_recheck_gap_time 30
}
CONF
cat /etc/multipath.conf
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin; modprobe scsi_dh_alua
udevd_start

step "topology: one scsi_debug LUN through two hosts (sda, sdb)"
topo_scsi_debug_2paths
udevadm settle -t 30

step "our daemon starts and builds the map"
run sh -c "multipathd -d -v3 > $LAB_OUT/multipathd.log 2>&1 &"
wait_for "our daemon has a map" 60 sh -c "[ \$(multipathd show maps raw format %n 2>/dev/null | grep -c .) -eq 1 ]"
M=$(multipathd show maps raw format %n)
wait_for "both paths ready" 30 sh -c "[ \$(multipathd show paths raw format %T | grep -c ready) -eq 2 ]"
multipathd show maps topology
FLAKY=sdb
HEALTHY=sda

step "IO runs on /dev/mapper/$M for the whole story"
touch "$LAB_TMP/io.run"
( i=0; while [ -e "$LAB_TMP/io.run" ]; do
      dd if=/dev/mapper/"$M" of=/dev/null bs=4k count=16 skip=$((i % 1024)) iflag=direct 2> /dev/null ||
          echo "[$(uptime_s)] IO ERROR" >> "$LAB_TMP/io.err"
      i=$((i + 1)); done ) &

step "inject an intermittent fault on $FLAKY: offline 1 s, online 3 s, repeatedly"
# Every failure of the path in DM (kernel IO error or our fail_path) is one PATH_FAILED.
uevents_start
touch "$LAB_TMP/fault.run"
( while [ -e "$LAB_TMP/fault.run" ]; do
      echo offline > /sys/block/$FLAKY/device/state; sleep 1
      echo running > /sys/block/$FLAKY/device/state; sleep 3; done ) &

step "the daemon isolates $FLAKY: failed in DM and held back while it is tested"
# (a path the checker failed before the uevent is held without a "mark as failed" of its own)
wait_for "$FLAKY under IO-error accounting" 90 grep -q "$FLAKY: start path flakiness pre-checking\|disable reinstating of $FLAKY\|$FLAKY: mark as failed\|io error statistic: $FLAKY: test started" "$LAB_OUT/multipathd.log"
wait_for "$FLAKY shown delayed (held back, being tested)" 90 sh -c "multipathd show paths raw format '%d %T' | grep -q '^$FLAKY delayed'"
show "under test"
# Held on the second failure inside marginal_path_double_failed_time, whichever of
# the checker and the uevent saw it first; a held path is not failed again.
expect_eq "PATH_FAILED uevents of $FLAKY until it was held" 2 \
    "$(uevents_count DM_ACTION=PATH_FAILED DM_PATH="$(devt $FLAKY)")"
expect_eq "dm state of $FLAKY while tested" failed "$(dm_state_of $FLAKY)"
multipathd show marginal | tee "$LAB_OUT/show-marginal-testing.txt"
expect_match "show marginal lists $FLAKY" "^$FLAKY +$M " "$(cat "$LAB_OUT/show-marginal-testing.txt")"

step "first verdict: error rate above the threshold, $FLAKY stays failed"
wait_for "first verdict" 200 grep -q "$FLAKY: IO error rate" "$LAB_OUT/multipathd.log"
grep "io_err_stat" "$LAB_OUT/multipathd.log" | tail -5
expect_match "verdict keeps $FLAKY failed" "keep failing the dm path $FLAKY|reschedule checking after" "$(cat $LAB_OUT/multipathd.log)"
show "after the first verdict"
multipathd show marginal | tee "$LAB_OUT/show-marginal-verdict.txt"
expect_match "show marginal has the measured rate" "^$FLAKY +$M .* [0-9]+\.[0-9]/1000" "$(cat "$LAB_OUT/show-marginal-verdict.txt")"
expect_eq "dm state of $FLAKY after a bad verdict" failed "$(dm_state_of $FLAKY)"

step "remove the fault; after the recheck gap the path is tested again and reinstated"
rm -f "$LAB_TMP/fault.run"; sleep 4
echo running > /sys/block/$FLAKY/device/state
wait_for "$FLAKY reinstated" 260 sh -c "[ \"\$(multipathd show paths raw format '%d %t %T' | awk '\$1 == \"$FLAKY\" { print \$2, \$3 }')\" = 'active ready' ]"
grep "io_err_stat" "$LAB_OUT/multipathd.log" | tail -4
show "healed"

step "IO never failed, the healthy path was never failed"
rm -f "$LAB_TMP/io.run"; sleep 2
expect_eq "IO errors on the map" 0 "$(cat "$LAB_TMP/io.err" 2>/dev/null | grep -c .)"
expect_eq "kernel failures of $HEALTHY" 0 "$(dmesg | grep -c "Failing path $(devt $HEALTHY)")"
expect_eq "dm state of $HEALTHY" active "$(dm_state_of $HEALTHY)"
artifact marginal-io-err-stat.log grep io_err_stat "$LAB_OUT/multipathd.log"
run multipathd shutdown
