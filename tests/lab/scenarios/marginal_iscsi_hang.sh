# The marginal story on a real transport: one LIO LUN behind two iSCSI portals on loopback
# (open-iscsi initiator, one session per portal), IO on the map.  Portal 1 goes silent twice
# (its address routed into a blackhole until its path fails in DM, then answering again): the
# second PATH_FAILED inside marginal_path_double_failed_time puts the path under IO error
# accounting.  While it is sampled the portal hangs once more, so the verdict keeps the path
# failed; IO on the map keeps flowing on portal 0 with no error, and portal 0's path is never
# failed.  The sample time is upstream's minimum (120 s), which sets this scenario's length.
# lab-timeout: 480
. "$LAB_DIR/lib.sh"

HUNG_PORTAL=1 OK_PORTAL=0
ISCSI_REPLACEMENT_TIMEOUT=5
# a silent portal: NOP-Out detection (~10 s) + replacement_timeout 5 + checker_timeout 10 +
# polling 2, with slack for TCG
FAIL_LIMIT=60
HANG_IN_TEST_S=20

dm_state_of() { multipathd show paths raw format "%d %t" | awk -v d="$1" '$1 == d { print $2 }'; }
marginal_row() { multipathd show marginal | awk -v d="$1" '$1 == d'; }
show() {
    echo "--- [$(uptime_s)] $1"
    multipathd show paths format "%d %D %t %T %o %M" 2>&1
    multipathd show marginal 2>&1
}
# flap: the portal goes silent until its path is failed in DM, then answers again
hang_until_failed() {
    portal_hang $HUNG_PORTAL
    wait_for "$FLAKY failed in DM ($1)" $FAIL_LIMIT sh -c "[ \"\$(multipathd show paths raw format '%d %t' | awk '\$1 == \"$FLAKY\" { print \$2 }')\" = failed ]"
    portal_resume $HUNG_PORTAL
}

step "configuration: marginal-path detection (sample 120 s, threshold 10/1000), tur, multibus"
mkdir -p /etc/multipath
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 2
    max_polling_interval 4
    checker_timeout 10
    fast_io_fail_tmo 5
    find_multipaths greedy
    user_friendly_names yes
    # one group with both paths, so IO really goes through the hanging one
    detect_pgpolicy no
    path_grouping_policy multibus
    marginal_path_double_failed_time 90
    marginal_path_err_sample_time 120
    marginal_path_err_rate_threshold 10
    marginal_path_err_recheck_gap_time 300
}
overrides {
    detect_checker no
    path_checker tur
    no_path_retry 12
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
udevd_start

step "topology: one LIO LUN x 2 iSCSI portals"
topo_iscsi 1 2
udevadm settle -t 30
FLAKY=$(portal_sds $HUNG_PORTAL) HEALTHY=$(portal_sds $OK_PORTAL)
echo "portal $HUNG_PORTAL: $FLAKY (to hang), portal $OK_PORTAL: $HEALTHY"

step "our daemon builds the map"
run sh -c "multipathd -d -v3 > $LAB_OUT/multipathd.log 2>&1 &"
wait_for "our daemon has a map" 60 sh -c "[ \$(multipathd show maps raw format %n 2>/dev/null | grep -c .) -eq 1 ]"
M=$(multipathd show maps raw format %n)
wait_for "both paths active ready" 60 sh -c "[ \$(multipathd show paths raw format '%t %T' | grep -c '^active ready') -eq 2 ]"
multipathd show maps topology

step "IO on /dev/mapper/$M for the whole story"
uevents_start
touch "$LAB_TMP/io.run"
io_loop "/dev/mapper/$M" "$LAB_TMP/io" "$LAB_TMP/io.errtimes" &
IO_PID=$!
sleep 3

step "portal $HUNG_PORTAL hangs: first failure of $FLAKY"
T0=$(uptime_s)
hang_until_failed "first hang"
wait_for "$FLAKY active ready again" 60 sh -c "[ \"\$(multipathd show paths raw format '%d %t %T' | awk '\$1 == \"$FLAKY\" { print \$2, \$3 }')\" = 'active ready' ]"
show "after the first hang"

step "portal $HUNG_PORTAL hangs again: the second failure holds $FLAKY"
hang_until_failed "second hang"
wait_for "$FLAKY under IO error accounting" 20 sh -c "multipathd show marginal | grep -qE '^$FLAKY +$M +(delayed|testing) '"
T_HELD=$(uptime_s)
expect_eq "PATH_FAILED uevents of $FLAKY until it was held" 2 \
    "$(uevents_count DM_ACTION=PATH_FAILED DM_PATH="$(devt $FLAKY)")"

step "the portal answers: $FLAKY is tested, kept out of the map (delayed)"
wait_for "test of $FLAKY started" 60 grep -q "io error statistic: $FLAKY: test started" "$LAB_OUT/multipathd.log"
T_TEST=$(uptime_s)
wait_for "$FLAKY shown delayed" 20 sh -c "multipathd show paths raw format '%d %T' | grep -q '^$FLAKY delayed'"
expect_eq "dm state of $FLAKY while tested" failed "$(dm_state_of $FLAKY)"
show "under test"

step "portal $HUNG_PORTAL hangs ${HANG_IN_TEST_S} s during the sample"
sleep 10
portal_hang $HUNG_PORTAL
sleep $HANG_IN_TEST_S
portal_resume $HUNG_PORTAL

step "the verdict keeps $FLAKY failed"
wait_for "verdict on $FLAKY" 150 grep -q "io error statistic: $FLAKY: IO error rate" "$LAB_OUT/multipathd.log"
T_VERDICT=$(uptime_s)
grep "io error statistic" "$LAB_OUT/multipathd.log" | tail -6
expect_match "verdict" "keep failing the dm path $FLAKY" "$(grep "io error statistic" "$LAB_OUT/multipathd.log")"
ROW=$(marginal_row $FLAKY)
echo "$ROW"
RATE=$(echo "$ROW" | awk '{ print $7 }' | cut -d/ -f1)
expect_eq "measured rate above the threshold (10/1000)" yes "$(awk -v r="$RATE" 'BEGIN { print (r + 0 > 10) ? "yes" : "no (" r ")" }')"
sleep 3
expect_eq "dm state of $FLAKY after the verdict" failed "$(dm_state_of $FLAKY)"
expect_eq "checker state of $FLAKY after the verdict" delayed \
    "$(multipathd show paths raw format '%d %T' | awk -v d=$FLAKY '$1 == d { print $2 }')"
# as upstream prints it: held with marginal_pathgroups off is delayed, not flagged marginal
expect_eq "%M of $FLAKY after the verdict" normal \
    "$(multipathd show paths raw format '%d %M' | awk -v d=$FLAKY '$1 == d { print $2 }')"
show "after the verdict"

step "IO flowed with no error; portal $OK_PORTAL's path was never failed"
rm -f "$LAB_TMP/io.run"
wait $IO_PID
uevents_stop
cp "$LAB_TMP/uevents.log" "$LAB_OUT/uevents.log"
set -- $(cat "$LAB_TMP/io")
echo "reads $1, errors $2, slowest read $(awk -v c="$3" 'BEGIN { printf "%.2f", c / 100 }') s"
expect_eq "IO errors on the map" 0 "$2"
expect_eq "PATH_FAILED uevents of $HEALTHY" 0 "$(uevents_count DM_ACTION=PATH_FAILED DM_PATH="$(devt $HEALTHY)")"
expect_eq "dm state of $HEALTHY" active "$(dm_state_of $HEALTHY)"
{
    echo "first_hang_to_held_s=$(awk -v a="$T0" -v b="$T_HELD" 'BEGIN { printf "%.1f", b - a }')"
    echo "held_to_test_started_s=$(awk -v a="$T_HELD" -v b="$T_TEST" 'BEGIN { printf "%.1f", b - a }')"
    echo "test_to_verdict_s=$(awk -v a="$T_TEST" -v b="$T_VERDICT" 'BEGIN { printf "%.1f", b - a }')"
    echo "verdict=$ROW"
    echo "reads=$1 io_errors=$2"
} | tee "$LAB_OUT/values.txt"
artifact marginal-io-err-stat.log grep "io error statistic" "$LAB_OUT/multipathd.log"
run multipathd shutdown
