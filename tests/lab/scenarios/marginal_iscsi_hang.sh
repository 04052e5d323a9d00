# The marginal story on a real transport: one LIO LUN behind two iSCSI portals on loopback
# (open-iscsi initiator, one session per portal), IO on the map.  Portal 1 goes silent twice
# (its address routed into a blackhole until its path fails in DM, then answering again): the
# second PATH_FAILED inside marginal_path_double_failed_time puts the path under IO error
# accounting.  While it is sampled the portal hangs once more, so the verdict keeps the path
# failed; IO on the map keeps flowing on portal 0 with no error, and portal 0's path is never
# failed.  The sample time is upstream's minimum (120 s), which sets this scenario's length.
# Debian's daemon (0.9.4, whose io_err_stat thread implements marginal_path_*), then ours, on
# the same LUN, portals and multipath.conf; the table (table.txt) puts them side by side.
# Ours must pass every check; Debian's numbers are only recorded (it must run: a map, both
# paths active ready, its io_err_stat thread started).
# lab-timeout: 720
# Ours as shipped (the release build), beside Debian's optimized build.
# lab-profile: release
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_BIN/multipathd
HUNG_PORTAL=1 OK_PORTAL=0
ISCSI_REPLACEMENT_TIMEOUT=5
# a silent portal: NOP-Out detection (~10 s) + replacement_timeout 5 + checker_timeout 10 +
# polling 2, with slack for TCG
FAIL_LIMIT=60
HANG_IN_TEST_S=20

secs() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.1f", b - a }'; }
# (CLI: the client of the daemon under test, ours or Debian's; each talks to its own daemon)
dm_state_of() { $CLI show paths raw format "%d %t" | awk -v d="$1" '$1 == d { print $2 }'; }
chk_state_of() { $CLI show paths raw format "%d %T" | awk -v d="$1" '$1 == d { print $2 }'; }
marginal_row() { $CLI show marginal | awk -v d="$1" '$1 == d'; }
show() {
    echo "--- [$(uptime_s)] $_l: $1"
    $CLI show paths format "%d %D %t %T %o %M" 2>&1
    [ "$_l" = debian ] || $CLI show marginal 2>&1
}
# every session logged in and every sd running: the initiator is back to normal
initiator_ready() {
    ! grep -qv LOGGED_IN /sys/class/iscsi_session/session*/state &&
        for _d in $(sd_devices); do [ "$(path_state "$_d")" = running ] || return 1; done
}
# await WHAT SECONDS CMD...: ours: wait_for (fails the scenario); Debian: the same wait, only
# recorded (returns 1 when it timed out)
await() {
    [ "$_l" = debian ] || { wait_for "$@"; return 0; }
    _what=$1 _secs=$2; shift 2
    _tries=$((_secs * 5))
    while ! "$@" > /dev/null 2>&1; do
        _tries=$((_tries - 1))
        [ "$_tries" -gt 0 ] || { echo "debian: not within ${_secs}s: $_what"; return 1; }
        sleep 0.2
    done
    echo "ok: $_what"
}
# check_eq WHAT EXPECTED ACTUAL: ours: expect_eq; Debian: recorded
check_eq() {
    if [ "$_l" = debian ]; then echo "debian: $1 = '$3' (ours must: '$2')"; else expect_eq "$@"; fi
}
# flap: the portal goes silent until its path is failed in DM, then answers again
hang_until_failed() {
    portal_hang $HUNG_PORTAL
    await "$FLAKY failed in DM ($1)" $FAIL_LIMIT sh -c "[ \"\$($CLI show paths raw format '%d %t' | awk '\$1 == \"$FLAKY\" { print \$2 }')\" = failed ]"
    _r=$?
    portal_resume $HUNG_PORTAL
    return $_r
}
log_has() { grep -qE "$1" "$_log"; }

# story BIN LABEL CLI: the whole story under one daemon; values go to $LAB_OUT/LABEL.values
story() {
    _bin=$1 _l=$2 CLI=$3 _v=$LAB_OUT/$2.values _log=$LAB_OUT/$2.log
    : > "$_v"
    T0= T_HELD= T_TEST= T_DELAYED= T_VERDICT= _pf_held=n/a _verdict=n/a _rate=n/a
    _dm_after=n/a _chk_after=n/a _m_after=n/a _dm_tested=n/a

    step "$_l: the portals answer, the initiator is back to normal, recovery_tmo $ISCSI_REPLACEMENT_TIMEOUT"
    ip route show table local | grep -q "^blackhole $(portal_addr $HUNG_PORTAL) " && portal_resume $HUNG_PORTAL
    wait_for "$_l: sessions logged in, sd devices running" 60 initiator_ready
    # a daemon writes fast_io_fail_tmo into recovery_tmo: start each one from iscsid's value
    for _s in /sys/class/iscsi_session/session*; do echo "$ISCSI_REPLACEMENT_TIMEOUT" > "$_s/recovery_tmo"; done

    step "$_l: the daemon builds the map"
    "$_bin" -d -v3 > "$_log" 2>&1 &
    _pid=$!
    wait_for "$_l: the daemon has a map" 60 sh -c "[ \$($CLI show maps raw format %n 2>/dev/null | grep -c .) -eq 1 ]"
    M=$($CLI show maps raw format %n)
    wait_for "$_l: both paths active ready" 60 sh -c "[ \$($CLI show paths raw format '%t %T' | grep -c '^active ready') -eq 2 ]"
    # (0.9.4 starts its io_err_stat thread with the first map that has marginal_path_*; ours
    # starts it with the first test)
    [ "$_l" = ours ] ||
        wait_for "$_l: io_err_stat thread started" 20 grep -q "io error statistic: io_error statistic thread started" "$_log"
    $CLI show maps topology

    step "$_l: IO on /dev/mapper/$M for the whole story, show paths sampled"
    uevents_start
    touch "$LAB_TMP/io.run"
    io_loop "/dev/mapper/$M" "$LAB_TMP/$_l-io" "$LAB_TMP/$_l-io.errtimes" &
    _io_pid=$!
    # (one client for both daemons, from tmpfs: the answer's time, not the client's start)
    "$LAB_TMP/sockload" sample 1000 5000 "$LAB_TMP/io.run" "show paths" > "$LAB_OUT/$_l-show-paths-latency.txt" 2>&1 &
    _show_pid=$!
    sleep 3

    step "$_l: portal $HUNG_PORTAL hangs: first failure of $FLAKY"
    T0=$(uptime_s)
    if hang_until_failed "first hang" &&
        await "$FLAKY active ready again" 60 sh -c "[ \"\$($CLI show paths raw format '%d %t %T' | awk '\$1 == \"$FLAKY\" { print \$2, \$3 }')\" = 'active ready' ]"; then
        show "after the first hang"

        step "$_l: portal $HUNG_PORTAL hangs again: the second failure holds $FLAKY"
        if [ "$_l" = debian ]; then
            # 0.9.4 holds the path silently at the PATH_FAILED uevent (io_err_disable_reinstate);
            # it shows once its checker finds the path up again: "path is now marginal", delayed
            hang_until_failed "second hang" &&
                await "$FLAKY held (path is now marginal / mark as failed)" 60 \
                    log_has "$FLAKY: path is now marginal|io error statistic: $FLAKY: mark as failed"
        else
            hang_until_failed "second hang"
            wait_for "$FLAKY under IO error accounting" 20 sh -c "multipathd show marginal | grep -qE '^$FLAKY +$M +(delayed|testing) '"
        fi && {
            T_HELD=$(uptime_s)
            _pf_held=$(uevents_count DM_ACTION=PATH_FAILED DM_PATH="$(devt $FLAKY)")
            check_eq "PATH_FAILED uevents of $FLAKY until it was held" 2 "$_pf_held"
        }
    fi
    if [ -n "$T_HELD" ]; then
        step "$_l: the portal answers: $FLAKY is tested, kept out of the map (delayed)"
        if [ "$_l" = debian ]; then _started="io error statistic: $M: enqueue path $FLAKY to check"
        else _started="io error statistic: $FLAKY: test started"; fi
        await "test of $FLAKY started" 60 log_has "$_started" && T_TEST=$(uptime_s)
        await "$FLAKY shown delayed" 20 sh -c "$CLI show paths raw format '%d %T' | grep -q '^$FLAKY delayed'" &&
            T_DELAYED=$(uptime_s)
        _dm_tested=$(dm_state_of $FLAKY)
        check_eq "dm state of $FLAKY while tested" failed "$_dm_tested"
        show "under test"
    fi
    if [ -n "$T_TEST" ]; then
        step "$_l: portal $HUNG_PORTAL hangs ${HANG_IN_TEST_S} s during the sample"
        sleep 10
        portal_hang $HUNG_PORTAL
        sleep $HANG_IN_TEST_S
        portal_resume $HUNG_PORTAL

        step "$_l: the verdict keeps $FLAKY failed"
        if await "verdict on $FLAKY" 150 log_has "io error statistic: $FLAKY: IO error rate"; then
            T_VERDICT=$(uptime_s)
            sleep 1             # the lines after the rate
            grep "io error statistic" "$_log" | tail -6
            _vlines=$(grep "io error statistic" "$_log")
            if printf '%s\n' "$_vlines" | grep -q "keep failing the dm path $FLAKY"; then _verdict="kept failed"
            elif printf '%s\n' "$_vlines" | grep -q "$FLAKY: .* good to enable reinstating"; then _verdict=reinstated
            else _verdict=other; fi
            _rate=$(printf '%s\n' "$_vlines" | sed -n "s|.*io error statistic: $FLAKY: IO error rate (\([0-9.]*\)/1000).*|\1|p" | tail -1)
            if [ "$_l" = debian ]; then
                echo "debian: verdict: $_verdict, rate $_rate/1000"
            else
                expect_match "verdict" "keep failing the dm path $FLAKY" "$_vlines"
                ROW=$(marginal_row $FLAKY)
                echo "$ROW"
                RATE=$(echo "$ROW" | awk '{ print $7 }' | cut -d/ -f1)
                expect_eq "measured rate above the threshold (10/1000)" yes "$(awk -v r="$RATE" 'BEGIN { print (r + 0 > 10) ? "yes" : "no (" r ")" }')"
            fi
            sleep 3
            _dm_after=$(dm_state_of $FLAKY) _chk_after=$(chk_state_of $FLAKY)
            _m_after=$($CLI show paths raw format '%d %M' | awk -v d=$FLAKY '$1 == d { print $2 }')
            check_eq "dm state of $FLAKY after the verdict" failed "$_dm_after"
            check_eq "checker state of $FLAKY after the verdict" delayed "$_chk_after"
            # as upstream prints it: held with marginal_pathgroups off is delayed, not flagged marginal
            check_eq "%M of $FLAKY after the verdict" normal "$_m_after"
            show "after the verdict"
        fi
    fi

    step "$_l: IO flowed with no error; portal $OK_PORTAL's path was never failed"
    rm -f "$LAB_TMP/io.run"
    wait $_io_pid $_show_pid
    uevents_stop
    cp "$LAB_TMP/uevents.log" "$LAB_OUT/$_l-uevents.log"
    set -- $(cat "$LAB_TMP/$_l-io")
    echo "$_l: reads $1, errors $2, slowest read $(awk -v c="$3" 'BEGIN { printf "%.2f", c / 100 }') s"
    _okpf=$(uevents_count DM_ACTION=PATH_FAILED DM_PATH="$(devt $HEALTHY)")
    _okdm=$(dm_state_of $HEALTHY)
    check_eq "$_l: IO errors on the map" 0 "$2"
    check_eq "$_l: PATH_FAILED uevents of $HEALTHY" 0 "$_okpf"
    check_eq "$_l: dm state of $HEALTHY" active "$_okdm"
    {
        echo "first_hang_to_held_s=$(secs "$T0" "$T_HELD")"
        echo "path_failed_until_held=$_pf_held"
        echo "held_to_test_started_s=$(secs "$T_HELD" "$T_TEST")"
        echo "first_hang_to_delayed_s=$(secs "$T0" "$T_DELAYED")"
        echo "dm_state_tested=$_dm_tested"
        echo "test_to_verdict_s=$(secs "$T_TEST" "$T_VERDICT")"
        echo "verdict=$_verdict"
        echo "rate=$_rate"
        echo "dm_state_after=$_dm_after"
        echo "chk_state_after=$_chk_after"
        echo "marginal_flag_after=$_m_after"
        echo "io_errors=$2"
        echo "reads=$1"
        echo "slowest_read_s=$(awk -v c="$3" 'BEGIN { printf "%.2f", c / 100 }')"
        echo "ok_path_failed_events=$_okpf"
        echo "ok_dm_state_end=$_okdm"
        echo "show_paths_slowest_ms=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$LAB_OUT/$_l-show-paths-latency.txt")"
        echo "show_paths_failed=$(awk '$3 == "failed"' "$LAB_OUT/$_l-show-paths-latency.txt" | grep -c .)/$(grep -c . "$LAB_OUT/$_l-show-paths-latency.txt")"
        [ "$_l" = debian ] || echo "verdict_row=$ROW"
    } | tee "$_v"
    artifact "$_l-io-err-stat.log" grep "io error statistic" "$_log"
    daemon_stop_and_flush "$_l" "$_bin" "$_pid" "$_v"
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
    # (short: 0.9.4 starts the first test only once the monotonic clock, the VM's uptime,
    # passes the gap, the hold time being stored as 0; ours at once, as upstream means to.
    # The story ends seconds after the verdict, before any recheck.)
    marginal_path_err_recheck_gap_time 30
}
overrides {
    detect_checker no
    path_checker tur
    no_path_retry 12
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
cp "$LAB_BIN/sockload" "$LAB_TMP/" || fail "copy sockload"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
udevd_start

step "topology: one LIO LUN x 2 iSCSI portals"
topo_iscsi 1 2
udevadm settle -t 30
FLAKY=$(portal_sds $HUNG_PORTAL) HEALTHY=$(portal_sds $OK_PORTAL)
echo "portal $HUNG_PORTAL: $FLAKY (to hang), portal $OK_PORTAL: $HEALTHY"

story "$REF" debian /sbin/multipathd
story "$OURS" ours multipathd
cp "$LAB_TMP/iscsid.log" "$LAB_OUT/iscsid.log"

step "Debian vs ours"
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
row() { printf '| %-58s | %12s | %12s |\n' "$1" "$(value debian "$2")" "$(value ours "$2")"; }
{
    echo "marginal_iscsi_hang: one LIO LUN x 2 iSCSI portals on loopback, multibus, IO on the map;"
    echo "portal $HUNG_PORTAL silent until its path fails, twice, then ${HANG_IN_TEST_S} s during the sample"
    echo "marginal_path: double_failed_time 90, err_sample_time 120, err_rate_threshold 10, recheck_gap 30;"
    echo "tur, checker_timeout 10, polling_interval 2-4, fast_io_fail_tmo 5; iscsid replacement_timeout $ISCSI_REPLACEMENT_TIMEOUT; qemu TCG"
    echo "Debian: $REF ($(grep -o 'multipathd v[0-9.]*' "$LAB_OUT/debian.log" | head -1)); ours: release build of this tree"
    echo "held: ours: listed by show marginal; Debian: its log (\"path is now marginal\", once its checker finds the path up)"
    echo
    echo "| row                                                        |       Debian |         ours |"
    echo "|------------------------------------------------------------|--------------|--------------|"
    row "first hang until the path is held (s)" first_hang_to_held_s
    row "PATH_FAILED uevents of the path until held" path_failed_until_held
    row "first hang until shown delayed (s)" first_hang_to_delayed_s
    row "held until the test started (s)" held_to_test_started_s
    row "dm state while tested" dm_state_tested
    row "test until the verdict (s; sample time 120)" test_to_verdict_s
    row "verdict" verdict
    row "IO error rate measured (/1000)" rate
    row "dm state after the verdict" dm_state_after
    row "checker state after the verdict" chk_state_after
    row "%M after the verdict" marginal_flag_after
    row "IO errors on the map" io_errors
    row "reads" reads
    row "slowest read (s)" slowest_read_s
    row "other portal's path: PATH_FAILED uevents" ok_path_failed_events
    row "other portal's path: dm state at the end" ok_dm_state_end
    row "slowest show paths (ms, sockload every 1 s)" show_paths_slowest_ms
    row "show paths failed (5 s timeout) / samples" show_paths_failed
    row "shutdown" shutdown
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"
