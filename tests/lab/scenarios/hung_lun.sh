# Hung storage must not take healthy paths down with it.  Six LIO LUNs x 2 tcm_loop ports
# (readsector0, checker_timeout 10, no_path_retry fail), O_DIRECT reads on every map the whole
# time; the backstores of five LUNs stop answering for 45 s, then answer again, and a
# `reload map` of a hung map is asked meanwhile (its suspend waits for the stuck reads).  Debian's
# daemon, then ours, on the same setup.  Ours must fail the hung paths within
# checker_timeout + one polling interval (+ margin), never fail a path of the healthy LUN,
# have no IO error on its map, and get every path back after the resume.  Debian's numbers
# are reported next to ours (table.txt), not asserted.
#
# Layout: the healthy LUN sits behind the same two tcm_loop ports (SCSI hosts) as the hung
# ones.  The kernel keeps serving it: a timed-out command to a hung LUN is aborted by
# tcm_loop with a task-management request that waits for the backstore, the host stays
# "running" and the other LUNs on it are answered (the healthy map's slowest read is in the
# table).  So a healthy path failed here is the daemon's doing, not the kernel's.
# lab-timeout: 540
# Ours as shipped (the release build), beside Debian's optimized build.
# lab-profile: release
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_BIN/multipathd
HUNG="0 1 2 3 4" HEALTHY=5
HANG_S=45
# the assertion: hung paths failed in DM within checker_timeout + polling_interval + margin:
# 10 s + 1 s of pool grace + 5 s, plus the hang's own start (the clock starts before the five
# parallel `dmsetup suspend` return, 1-5 s under TCG) and DM sampled every 0.5-3 s under
# load: a clean CI run measured 22.3 s, so 35 s
FAIL_LIMIT=35
BACK_LIMIT=90          # resume until every path is active in DM again

secs_since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
# map_of_lun N: the multipath map holding LUN N's first path
map_of_lun() {
    _dt=$(devt "$(lun_sds "$1" | head -1)")
    dmsetup table --target multipath | grep -E " $_dt( |$)" | cut -d: -f1 | head -1
}
lun_devts() { for _d in $(lun_sds "$1"); do devt "$_d"; done; }
# maps_ready: 6 multipath maps of 2 paths each in DM
maps_ready() {
    dmsetup table --target multipath | awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) n++
        if (n == 2) c++ } END { exit c != 6 }'
}

# dm_sample HUNG_DEVTS HEALTHY_DEVTS: "uptime failed-hung failed-healthy active-all" from DM
dm_sample() {
    dmsetup status --target multipath | awk -v t="$(uptime_s)" -v hung=" $1 " -v ok=" $2 " '
        { for (i = 1; i < NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) {
              if ($(i + 1) == "A") act++
              else if ($(i + 1) == "F") { if (index(hung, " " $i " ")) fh++; if (index(ok, " " $i " ")) fo++ } } }
        END { printf "%s %d %d %d\n", t, fh, fo, act }'
}

# story BIN LABEL: the whole experiment under one daemon; values go to $LAB_OUT/LABEL.values
story() {
    _bin=$1 _l=$2 _v=$LAB_OUT/$2.values
    : > "$_v"
    step "$_l: start the daemon, 6 maps of 2 paths"
    "$_bin" -d -v3 > "$LAB_OUT/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: 6 maps of 2 paths in DM" 90 maps_ready
    wait_for "$_l: 12 paths active ready" 60 sh -c "[ \$($_bin show paths raw format '%t %T' 2>/dev/null | grep -c '^active ready') -eq 12 ]"
    # the setup is what it claims for this daemon: readsector0 everywhere, no queueing
    expect_eq "$_l: checkers" "12 readsector0" "$("$_bin" show paths raw format %c | sort | uniq -c | awk '{ print $1, $2 }')"
    expect_eq "$_l: maps with queue_if_no_path" 0 "$(dmsetup table --target multipath | grep -c queue_if_no_path)"
    _hdt="" _odt=$(lun_devts $HEALTHY | tr '\n' ' ')
    for _n in $HUNG; do _hdt="$_hdt $(lun_devts "$_n" | tr '\n' ' ')"; done
    _hmap=$(map_of_lun $HEALTHY)
    _hsd=$(lun_sds $HEALTHY | tr '\n' ' ')
    echo "$_l: healthy LUN $HEALTHY: map $_hmap, paths $_hsd($_odt)"
    artifact "$_l-topology.txt" "$_bin" show maps topology > /dev/null

    step "$_l: IO on every map, monitors"
    uevents_start
    mkdir -p "$LAB_TMP/$_l"
    touch "$LAB_TMP/io.run"
    _bg=""
    for _n in $HUNG $HEALTHY; do
        _m=$(map_of_lun "$_n")
        io_loop "/dev/dm-$(dmsetup info -c --noheadings -o minor "$_m")" "$LAB_TMP/$_l/io-$_n" &
        _bg="$_bg $!"
    done
    # the kernel's view every 0.5 s; the daemon's every second, "UPTIME DEV DM_ST CHK_ST" a
    # line ("UPTIME unanswered" when its CLI gave no answer within 6 s)
    ( while [ -e "$LAB_TMP/io.run" ]; do dm_sample "$_hdt" "$_odt"; sleep 0.5; done ) > "$LAB_OUT/$_l-dm.txt" &
    _bg="$_bg $!"
    ( while [ -e "$LAB_TMP/io.run" ]; do
          # (exec 2> and the ':': no "Terminated" from a shell when timeout kills the client)
          _s=$(exec 2> /dev/null; timeout 6 "$_bin" show paths raw format "%d %t %T"; :)
          # (Debian's client prints "timeout" and exits 0 when the daemon does not answer)
          printf '%s\n' "$_s" | grep -q '^sd' || _s=unanswered
          echo "$_s" | sed "s/^/$(uptime_s) /"
          sleep 1
      done ) > "$LAB_OUT/$_l-show-paths.txt" &
    _bg="$_bg $!"
    sleep 5                # IO runs a while on healthy storage first: no error expected there

    step "$_l: LUNs $HUNG stop answering for $HANG_S s"
    _ts=$(uptime_s)
    lun_hang $HUNG
    _th=$(uptime_s)          # times are measured from here: all five LUNs hung
    echo "$_l: hanging took $(secs_since "$_ts") s"
    # A reload of a hung map once reads are stuck on it: its suspend waits for them, i.e.
    # until the resume.  Nothing else may wait with it (ours runs it off the owner's
    # thread; a daemon that reloads under its lock stops checking meanwhile): the hung
    # paths' failing below is measured all the same.
    sleep 2
    _rmap=$(map_of_lun "${HUNG%% *}")
    ( _t0=$(uptime_s); _r=$(exec 2>&1; timeout 90 "$_bin" reload map "$_rmap"; :)
      echo "$(secs_since "$_t0") $(printf '%s' "$_r" | tr '\n' ' ')" > "$LAB_TMP/$_l/reload" ) &
    _rl=$!
    # the hang lasts a fixed time by design; the failing is measured from the DM samples
    sleep "$((HANG_S - 2))"
    _trs=$(uptime_s)         # recovery is measured from here: the first LUN answers at once
    lun_resume $HUNG         # (each dmsetup then waits for udev: seconds under TCG)
    echo "$_l: resuming took $(secs_since "$_trs") s"

    step "$_l: resumed: wait until every path is active in DM"
    _back=n/a _k=0
    while [ $_k -lt $((BACK_LIMIT * 2)) ]; do
        if [ "$(dm_sample "" "" | cut -d' ' -f4)" = 12 ]; then _back=$(secs_since "$_trs"); break; fi
        _k=$((_k + 1)); sleep 0.5
    done
    echo "$_l: all 12 paths active in DM ${_back} s after the resume"
    _shown=n/a _k=0
    while [ $_k -lt 60 ]; do
        if [ "$(exec 2> /dev/null; timeout 6 "$_bin" show paths raw format '%t %T' | grep -c '^active ready'; :)" = 12 ]; then
            _shown=$(secs_since "$_trs"); break
        fi
        _k=$((_k + 1)); sleep 0.5
    done
    echo "$_l: all 12 paths active ready in show paths ${_shown} s after the resume"
    sleep 3                # the last reads after the recovery
    wait $_rl
    rm -f "$LAB_TMP/io.run"
    wait $_bg              # IO loops and monitors end at their next round
    uevents_stop
    cp "$LAB_TMP/uevents.log" "$LAB_OUT/$_l-uevents.log"
    artifact "$_l-show-paths-end.txt" "$_bin" show paths > /dev/null

    step "$_l: measure"
    # the kernel's record: PATH_FAILED uevents of the healthy LUN's paths, of the hung ones
    _hf=0 _pf=0
    for _dt in $_odt; do _hf=$((_hf + $(uevents_count DM_ACTION=PATH_FAILED "DM_PATH=$_dt"))); done
    for _dt in $_hdt; do _pf=$((_pf + $(uevents_count DM_ACTION=PATH_FAILED "DM_PATH=$_dt"))); done
    # the daemon's record: healthy paths it ever showed failed in DM or faulty
    _shf=0
    for _d in $_hsd; do
        awk -v d="$_d" '$2 == d && ($3 == "failed" || $4 == "faulty") { f = 1 } END { exit !f }' \
            "$LAB_OUT/$_l-show-paths.txt" && _shf=$((_shf + 1))
    done
    _unans=$(grep -c ' unanswered$' "$LAB_OUT/$_l-show-paths.txt")
    _samples=$(awk '{ print $1 }' "$LAB_OUT/$_l-show-paths.txt" | uniq | grep -c .)
    # hung paths failed in DM before the resume
    _all=$(awk -v a="$_th" -v b="$_trs" '$1 >= a && $1 < b && $2 == 10 { printf "%.1f", $1 - a; exit }' "$LAB_OUT/$_l-dm.txt")
    _most=$(awk -v a="$_th" -v b="$_trs" '$1 >= a && $1 < b && $2 > m { m = $2 } END { print m + 0 }' "$LAB_OUT/$_l-dm.txt")
    set -- $(cat "$LAB_TMP/$_l/io-$HEALTHY")
    _hio="$1 $2 $3"
    _herr=0 _hreads=0
    for _n in $HUNG; do
        set -- $(cat "$LAB_TMP/$_l/io-$_n"); _hreads=$((_hreads + $1)) _herr=$((_herr + $2))
    done
    set -- $_hio
    {
        echo "healthy_dm_path_failed=$_hf"
        echo "healthy_shown_failed=$_shf"
        echo "healthy_io_errors=$2"
        echo "healthy_reads=$1"
        echo "healthy_slowest_read_s=$(awk -v c="$3" 'BEGIN { printf "%.2f", c / 100 }')"
        echo "hung_io_errors=$_herr"
        echo "hung_reads=$_hreads"
        echo "hung_path_failed_events=$_pf"
        echo "hung_failed_before_resume=$_most"
        echo "hang_to_all_hung_failed_s=${_all:-never}"
        echo "resume_to_all_active_dm_s=$_back"
        echo "resume_to_all_ready_shown_s=$_shown"
        echo "show_paths_unanswered=$_unans/$_samples"
        echo "reload_map_client_s=$(cut -d' ' -f1 "$LAB_TMP/$_l/reload")"
        echo "reload_map_reply=$(cut -d' ' -f2- "$LAB_TMP/$_l/reload" | tr ' ' _ | sed 's/_*$//')"
        # ours logs a reload that ran long off its owner's thread
        echo "reload_logged_s=$(sed -n "s/.*$_rmap: reload took \([0-9.]*\) s.*/\1/p" "$LAB_OUT/$_l.log" | head -1)"
    } > "$_v"
    cat "$_v"

    daemon_stop_and_flush "$_l" "$_bin" "$_pid" "$_v"
}

step "configuration, udev, 6 LIO LUNs x 2 tcm_loop ports"
mkdir -p /etc/multipath
# max_polling_interval = polling_interval: a steady path is checked every 5 s, so "failed
# within checker_timeout + one interval" is a fair bound for both daemons.  The checker and
# no_path_retry go in overrides: both hardware tables have a LIO-ORG entry (no_path_retry 12;
# ours also directio) that beats defaults, and LIO's ALUA support would make detect_checker
# pick tur.
cat > /etc/multipath.conf <<'CONF'
defaults {
    polling_interval 5
    max_polling_interval 5
    checker_timeout 10
    find_multipaths greedy
    user_friendly_names yes
}
overrides {
    detect_checker no
    path_checker readsector0
    no_path_retry fail
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin
udevd_start
topo_tcm_loop 6 2
udevadm settle -t 30
for _n in $HUNG $HEALTHY; do echo "LUN $_n: $(lun_sds "$_n" | tr '\n' ' ')$(wwid "$(lun_sds "$_n" | head -1)")"; done

story "$REF" debian
for _n in $HUNG $HEALTHY; do
    expect_eq "LUN $_n answers again" "ACTIVE" "$(dmsetup info "lab_lun$_n" | sed -n 's/^State: *//p')"
done
story "$OURS" ours

step "Debian vs ours"
value() { sed -n "s/^$2=//p" "$LAB_OUT/$1.values"; }
row() { printf '| %-52s | %12s | %12s |\n' "$1" "$(value debian "$2")" "$(value ours "$2")"; }
{
    echo "hung_lun: 6 LIO LUNs x 2 tcm_loop ports, LUNs $HUNG hung for ${HANG_S} s, LUN $HEALTHY healthy (same ports)"
    echo "readsector0, checker_timeout 10, polling_interval 5, no_path_retry fail; qemu TCG"
    echo "Debian: $REF ($(grep -o 'multipathd v[0-9.]*' "$LAB_OUT/debian.log" | head -1)); ours: release build of this tree"
    echo
    echo "| row                                                  |       Debian |         ours |"
    echo "|------------------------------------------------------|--------------|--------------|"
    row "healthy LUN: PATH_FAILED uevents (kernel)" healthy_dm_path_failed
    row "healthy LUN: paths shown failed or faulty (of 2)" healthy_shown_failed
    row "healthy map: IO errors" healthy_io_errors
    row "healthy map: reads" healthy_reads
    row "healthy map: slowest read (s)" healthy_slowest_read_s
    row "hung maps: IO errors" hung_io_errors
    row "hung maps: reads" hung_reads
    row "hung paths failed in DM before the resume (of 10)" hung_failed_before_resume
    row "hang until all 10 hung paths failed in DM (s)" hang_to_all_hung_failed_s
    row "hung paths: PATH_FAILED uevents" hung_path_failed_events
    row "resume until all 12 paths active in DM (s)" resume_to_all_active_dm_s
    row "resume until all 12 shown active ready (s)" resume_to_all_ready_shown_s
    row "show paths unanswered in 6 s / samples" show_paths_unanswered
    row "reload map of a hung map: client's wait (s)" reload_map_client_s
    row "reload map of a hung map: reply" reload_map_reply
    row "reload map of a hung map: suspend waited (s)" reload_logged_s
    row "shutdown" shutdown
} > "$LAB_OUT/table.txt"
cat "$LAB_OUT/table.txt"

step "ours: healthy paths untouched, hung paths failed in time, all paths back"
expect_eq "ours: PATH_FAILED uevents of the healthy LUN's paths" 0 "$(value ours healthy_dm_path_failed)"
expect_eq "ours: healthy paths shown failed" 0 "$(value ours healthy_shown_failed)"
expect_eq "ours: IO errors on the healthy map" 0 "$(value ours healthy_io_errors)"
# the reload did wait in the kernel (else the step above proves nothing)
expect_eq "ours: the hung map's reload waited in its suspend for 20 s or more" yes \
    "$(awk -v t="$(value ours reload_logged_s)" 'BEGIN { print (t ~ /^[0-9.]+$/ && t + 0 >= 20) ? "yes" : "no (" t ")" }')"
_t=$(value ours hang_to_all_hung_failed_s)
expect_eq "ours: hung paths failed in DM within $FAIL_LIMIT s" yes \
    "$(awk -v t="$_t" -v l="$FAIL_LIMIT" 'BEGIN { print (t ~ /^[0-9.]+$/ && t + 0 <= l) ? "yes" : "no (" t ")" }')"
expect_eq "ours: every path active in DM after the resume" yes \
    "$([ "$(value ours resume_to_all_active_dm_s)" != n/a ] && echo yes || echo no)"
expect_eq "ours: every path active ready in show paths after the resume" yes \
    "$([ "$(value ours resume_to_all_ready_shown_s)" != n/a ] && echo yes || echo no)"
