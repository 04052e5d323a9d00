# Persistent-reservation registration by the daemon: a LIO LUN through 2 tcm_loop ports,
# `reservation_key` in multipath.conf, Debian's `mpathpersist` registers the key through the
# map (one registration per I_T nexus, so 2).  Then a third port appears: the daemon adds the
# path and registers the key through it (3).  That path's registration is removed through its
# own nexus (`prkeys register sdX 0`, as when a path loses it while away), the path goes
# offline and comes back: the daemon registers it again before reinstating it (3).  Debian's
# daemon, then ours, each on a LUN of its own; the key counts (`mpathpersist --in -k`) and the
# target's registrations are printed side by side, ours must equal Debian's.  Then the same
# with `reservation_key file`: mpathpersist hands the key to the daemon (`setprkey`), which
# keeps it in /etc/multipath/prkeys; mpathpersist also takes a reservation with it; after a
# restart the daemon reads the key there and registers it through a third port's path, and
# ours, reading the reservation as it registers, says the key holds it (`getprhold`, which
# 0.14.3's mpathpersist asks; Debian's 0.9.4 has no such command).  Then an admin edits the
# key in the file and reconfigures: the map takes the file's new key (`getprkey`), as each
# map setup reads the file again.
# lab-timeout: 300
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_BIN/multipathd
KEY=0x123abc

# keys: the number of registrations of the map's LUN, as mpathpersist reads them ("none" when
# it reads nothing)
keys() {
    _k=$(/sbin/mpathpersist --in -k /dev/mapper/mpatha 2> /dev/null |
        awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "registered") print $i }')
    echo "${_k:-none}"
}
keys_are() { [ "$(keys)" = "$1" ]; }
# soft_wait SECONDS CMD...: like wait_for, but a timeout is a value to compare, not a failure
# (by the clock: one mpathpersist call takes a good part of a second under TCG)
soft_wait() {
    _end=$(($(cut -d. -f1 /proc/uptime) + $1))
    shift
    while [ "$(cut -d. -f1 /proc/uptime)" -lt "$_end" ]; do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}
# map_paths N: mpatha's table has N paths
map_paths() { [ "$(dmsetup table mpatha 2> /dev/null | grep -o ' [0-9]*:[0-9]* ' | grep -c .)" = "$1" ]; }
# dm_state sdX: A or F, the path's state in mpatha's status
dm_state() {
    dmsetup status mpatha | awk -v d="$(devt "$1")" '{ for (i = 1; i < NF; i++) if ($i == d) print $(i + 1) }'
}
dm_state_is() { [ "$(dm_state "$1")" = "$2" ]; }
# add_port LUN: a new tcm_loop port exporting LIO LUN as its lun_0 (a new path to it)
add_port() {
    _t=$(tcm_port "$TCM_PORTS")
    mkdir -p "$_t" && echo "naa.$(printf '500140510000%04x' "$TCM_PORTS")" > "$_t/nexus" &&
        mkdir -p "$_t/lun/lun_0" && ln -s "$TCM/core/iblock_$1/lab_lun$1" "$_t/lun/lun_0/lab_lun$1" ||
        fail "tcm_loop port $TCM_PORTS for LUN $1"
    TCM_PORTS=$((TCM_PORTS + 1))
}
# registered LUN: the target's registrations of LIO LUN (configfs)
registered() { cat "$TCM/core/iblock_$1/lab_lun$1/pr/res_pr_registered_i_pts"; }
# prkey_is KEY: the daemon ($_bin) answers KEY to `getprkey` for mpatha; prhold_is likewise
prkey_is() { [ "$("$_bin" getprkey map mpatha 2> /dev/null)" = "$1" ]; }
prhold_is() { [ "$("$_bin" getprhold map mpatha 2> /dev/null)" = "$1" ]; }

# start_daemon: $_bin in the background ($_pid), mpatha with the LUN's usable paths
start_daemon() {
    "$_bin" -d -v3 >> "$LAB_TMP/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: mpatha with $1 paths" 60 map_paths "$1"
    for _d in $(lun_sds "$_lun"); do wait_for "$_l: $_d active" 30 dm_state_is "$_d" A; done
    wait_for "$_l: udev made /dev/mapper/mpatha" 30 test -b /dev/mapper/mpatha
    # answered once its start-up is over: a path that appears during it is another story
    # (Debian's 0.9.4 registers no path at start-up, upstream's 0.14.3 and ours do)
    wait_for "$_l: the daemon answers" 30 sh -c "'$_bin' show daemon | grep -q pid"
}
# a_third_port: a new port to the LUN; its path joins mpatha ($_new), the keys after it
a_third_port() {
    step "$_l: a third port appears"
    _before=" $(lun_sds "$_lun" | tr '\n' ' ')"
    add_port "$_lun"
    wait_for "$_l: a third sd of LUN $_lun" 30 sh -c "[ \$(grep -l lab-lun-$(printf %04d "$_lun") /sys/block/sd*/device/vpd_pg80 2> /dev/null | grep -c .) = 3 ]"
    _new=$(lun_sds "$_lun" | while read -r _d; do case $_before in *" $_d "*) ;; *) echo "$_d" ;; esac; done)
    echo "third path: $_new"
    wait_for "$_l: mpatha with 3 paths" 60 map_paths 3
    wait_for "$_l: $_new active" 30 dm_state_is "$_new" A
    soft_wait 20 keys_are 3
    echo "keys_after_new_path=$(keys)" >> "$_v"
}

# story BIN LABEL conf|file: a LUN of its own, the daemon, the registrations at each step in
# LABEL.values.  conf: the key in multipath.conf; a new path, a path that comes back.  file:
# `reservation_key file`, mpathpersist gives the daemon the key (setprkey), the daemon
# restarts and must find it in the prkeys file for a new path.
story() {
    _bin=$1 _l=$2 _v=$LAB_OUT/$2.values
    : > "$_v"
    step "$_l: a LIO LUN behind 2 tcm_loop ports"
    topo_tcm_loop 1 2
    _lun=$((TCM_LUNS - 1))
    udevadm settle -t 30
    step "$_l: start the daemon"
    start_daemon 2
    echo "keys_at_start=$(keys)" >> "$_v"
    /sbin/mpathpersist --in -k /dev/mapper/mpatha

    step "$_l: mpathpersist registers $KEY through the map"
    run /sbin/mpathpersist --out --register --param-sark=$KEY /dev/mapper/mpatha
    echo "mpathpersist_register=$?" >> "$_v"
    soft_wait 10 keys_are 2
    echo "keys_registered=$(keys)" >> "$_v"
    # 0.9.4 answers 0/1, upstream and ours unset/set: shown, not compared
    echo "$_l: getprstatus: $("$_bin" getprstatus map mpatha 2>&1 | tail -1)" | tee -a "$LAB_OUT/prstatus.txt"

    if [ "$3" = file ]; then
        echo "prkeys_key=$(awk '!/^#/ { print $1 }' /etc/multipath/prkeys 2> /dev/null)" >> "$_v"
        step "$_l: mpathpersist reserves the LUN with $KEY (write exclusive, registrants only)"
        run /sbin/mpathpersist --out --reserve --param-rk=$KEY --prout-type=5 /dev/mapper/mpatha
        echo "mpathpersist_reserve=$?" >> "$_v"
        /sbin/mpathpersist --in -r /dev/mapper/mpatha
        step "$_l: the daemon restarts"
        "$_bin" shutdown > /dev/null 2>&1
        wait_for "$_l: the daemon exited" 30 sh -c "! kill -0 $_pid 2> /dev/null"
        start_daemon 2
        if [ "$_bin" = "$OURS" ]; then
            soft_wait 20 prhold_is set
            "$_bin" getprhold map mpatha > "$LAB_OUT/ours-prhold.txt" 2>&1
        fi
        a_third_port
        step "$_l: the key edited in the prkeys file, then reconfigure"
        sed -i 's/^0x[0-9a-f]* /0x0000000000000456 /' /etc/multipath/prkeys
        cp /etc/multipath/prkeys "$LAB_OUT/prkeys.$_l.edited"
        run "$_bin" reconfigure
        soft_wait 30 prkey_is 0x456
        echo "getprkey_after_edit=$("$_bin" getprkey map mpatha 2>&1)" >> "$_v"
        daemon_stop_and_flush "$_l" "$_bin" "$_pid"
        rm -f /etc/multipath/prkeys
        cleanup_lun
        return
    fi
    a_third_port

    step "$_l: $_new loses its registration, goes offline and comes back"
    run "$LAB_BIN/prkeys" register "/dev/$_new" 0
    soft_wait 10 keys_are 2
    echo "keys_after_unregister=$(keys)" >> "$_v"
    path_offline "$_new"
    wait_for "$_l: $_new failed in DM" 30 dm_state_is "$_new" F
    path_online "$_new"
    wait_for "$_l: $_new reinstated in DM" 30 dm_state_is "$_new" A
    echo "keys_after_reinstate=$(keys)" >> "$_v"
    artifact "$_l.registered" registered "$_lun"
    echo "target_registrations=$(grep -ci 'key' "$LAB_OUT/$_l.registered")" >> "$_v"
    grep -iE 'reservation|prflag|prkey|prstatus|registration' "$LAB_TMP/$_l.log" | sed "s/^/$_l log: /" | tail -20

    daemon_stop_and_flush "$_l" "$_bin" "$_pid"
    cleanup_lun
}
# cleanup_lun: the daemon's log saved, this LUN's paths gone, so the next daemon sees only its own
cleanup_lun() {
    cp "$LAB_TMP/$_l.log" "$LAB_OUT/"
    for _d in $(lun_sds "$_lun"); do path_delete "$_d"; done
    wait_for "$_l: LUN $_lun's paths gone" 30 sh -c "[ -z \"\$(grep -l lab-lun-$(printf %04d "$_lun") /sys/block/sd*/device/vpd_pg80 2> /dev/null)\" ]"
    artifact "$_l.values.txt" cat "$_v"
}

step "configuration and udev"
[ -x /sbin/mpathpersist ] || fail "Debian's mpathpersist is not in the VM image"
# LIO saves the APTPL state of every registration under its db_root, even without APTPL, and
# answers NOT READY (LOGICAL UNIT COMMUNICATION FAILURE) when it cannot, key registered or not
mkdir -p /var/target/pr
mkdir -p /etc/multipath
# conf KEY: multipath.conf with reservation_key KEY
conf() {
    cat > /etc/multipath.conf <<CONF
defaults {
    polling_interval 2
    find_multipaths greedy
    user_friendly_names yes
    reservation_key $1
}
CONF
    cp /etc/multipath.conf "$LAB_OUT/multipath.conf.$1"
}
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin; modprobe scsi_dh_alua
udevd_start

conf "$KEY"
story "$REF" debian conf
story "$OURS" ours conf
conf file
story "$REF" debian-file file
story "$OURS" ours-file file

step "side by side"
# side_by_side A B: the values of runs A and B in two columns
side_by_side() {
    paste -d' ' "$LAB_OUT/$1.values" "$LAB_OUT/$2.values" |
        awk '{ split($1, a, "="); split($2, b, "="); printf "%-24s debian %-20s ours %s\n", a[1], a[2], b[2] }'
}
artifact side_by_side.txt side_by_side debian ours
artifact side_by_side_file.txt side_by_side debian-file ours-file
expect_eq "ours: the keys at each step" "keys_at_start=0 mpathpersist_register=0 keys_registered=2 keys_after_new_path=3 keys_after_unregister=2 keys_after_reinstate=3" \
    "$(grep -v target_registrations "$LAB_OUT/ours.values" | tr '\n' ' ' | sed 's/ $//')"
expect_eq "ours with reservation_key file" "keys_at_start=0 mpathpersist_register=0 keys_registered=2 prkeys_key=0x0000000000123abc mpathpersist_reserve=0 keys_after_new_path=3 getprkey_after_edit=0x456" \
    "$(tr '\n' ' ' < "$LAB_OUT/ours-file.values" | sed 's/ $//')"
expect_eq "ours: the key holds the reservation after the restart (getprhold)" set "$(cat "$LAB_OUT/ours-prhold.txt")"
expect_eq "ours as Debian's" "$(cat "$LAB_OUT/debian.values")" "$(cat "$LAB_OUT/ours.values")"
expect_eq "ours as Debian's (file)" "$(cat "$LAB_OUT/debian-file.values")" "$(cat "$LAB_OUT/ours-file.values")"
