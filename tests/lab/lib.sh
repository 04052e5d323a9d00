# Helpers for lab scenarios.  A scenario sources this file first:   . "$LAB_DIR/lib.sh"
# It runs inside the VM under busybox sh (POSIX sh, busybox applets).  See README.md here.
#
# Environment set by the guest init:
#   LAB_SCENARIO  name of the running scenario (file name without .sh)
#   LAB_DIR       this directory (read-only copy of tests/lab)
#   LAB_BIN       our binaries (target/debug/multipathd and the cargo examples), first in PATH
#   LAB_OUT       the results directory on the host (target/lab/results/<scenario>/): artifacts go here
# Debian's tools are at their usual places: /sbin/multipathd, /sbin/multipath, /sbin/dmsetup.

LAB_STEP="(before the first step)"
# Without udevd nobody makes /dev/mapper nodes: let libdevmapper do it (udevd_start undoes this).
export DM_DISABLE_UDEV=1
LAB_TMP=${LAB_TMP:-/tmp/lab}
mkdir -p "$LAB_TMP"

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# step TEXT: start a new step; failures name the step they happened in.
step() {
    LAB_STEP="$*"
    echo
    echo "### [$(uptime_s)] $*"
}

# fail TEXT: stop the scenario with a readable failure.
fail() {
    echo "FAIL [$(uptime_s)] in step \"$LAB_STEP\": $*"
    exit 1
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then
        echo "ok: $1 = '$3'"
    else
        fail "$1: expected '$2', got '$3'"
    fi
}

# expect_match WHAT EXTENDED_REGEX TEXT
expect_match() {
    if printf '%s\n' "$3" | grep -qE -- "$2"; then
        echo "ok: $1 matches /$2/"
    else
        fail "$1: expected a match for /$2/, got:
$3"
    fi
}

# expect_ok WHAT CMD...: the command must exit 0 (its output is shown).
expect_ok() {
    _what=$1; shift
    if "$@"; then echo "ok: $_what"; else fail "$_what: '$*' exited $?"; fi
}

# run CMD...: show the command line, then run it; returns its exit status.
run() {
    echo "+ $*"
    "$@"
}

# artifact FILE CMD...: run CMD, save its stdout+stderr as $LAB_OUT/FILE and show it too.
artifact() {
    _file=$1; shift
    echo "+ $* > \$LAB_OUT/$_file"
    "$@" > "$LAB_OUT/$_file" 2>&1
    _rc=$?
    cat "$LAB_OUT/$_file"
    return $_rc
}

# wait_for WHAT SECONDS CMD...: poll CMD every 0.2 s until it succeeds; fail after SECONDS.
wait_for() {
    _what=$1 _secs=$2; shift 2
    _tries=$((_secs * 5))
    while ! "$@" > /dev/null 2>&1; do
        _tries=$((_tries - 1))
        [ "$_tries" -gt 0 ] || fail "timed out after ${_secs}s waiting for: $_what"
        sleep 0.2
    done
    echo "ok: $_what"
}

# ---- devices ----------------------------------------------------------------------------------

devt() { cat "/sys/class/block/$1/dev"; }                 # sdX or dm-N -> MAJ:MIN
sd_devices() { ls /sys/block | grep '^sd' | sort; }      # all SCSI disks, one a line
sd_count() { sd_devices | wc -l; }
wwid() { cat "/sys/block/$1/device/wwid"; }
path_state() { cat "/sys/block/$1/device/state"; }
path_host() { basename "$(readlink -f "/sys/block/$1/device/../..")"; }   # sdX -> hostN

# read_direct DEV [COUNT]: COUNT 4 KiB O_DIRECT reads from the start of DEV; dd's status line.
read_direct() {
    dd if="$1" of=/dev/null bs=4k count="${2:-256}" iflag=direct 2>&1 | tail -1
}

# ---- topologies ------------------------------------------------------------------------------

# topo_scsi_debug LUNS PATHS [SIZE_MB [TARGETS]]: LUNS scsi_debug disks, each seen through PATHS
# SCSI hosts, so LUNS*PATHS sd devices with LUNS distinct WWIDs.  Fails if that is not what
# appears.  The LUNs are spread over TARGETS targets (default 1) of each host: scsi_debug
# numbers a disk's WWID target * 1000 + LUN, so LUNS / TARGETS must stay below 1000.
topo_scsi_debug() {
    _luns=$1 _paths=$2 _mb=${3:-16} _tgts=${4:-1}
    [ $((_luns % _tgts)) -eq 0 ] || fail "topo_scsi_debug: $_luns LUNs do not divide into $_tgts targets"
    modprobe sd_mod; modprobe sg
    run modprobe scsi_debug add_host="$_paths" num_tgts="$_tgts" max_luns=$((_luns / _tgts)) dev_size_mb="$_mb" \
        vpd_use_hostno=0 delay=0 || fail "modprobe scsi_debug failed"
    _want=$((_luns * _paths))
    wait_for "$_want sd devices" $((20 + _want)) sh -c "[ \$(ls /sys/block | grep -c '^sd') -ge $_want ]"
    # the disks' block nodes are created by devtmpfs; wait until the last one is there too
    for _d in $(sd_devices); do wait_for "/dev/$_d" 10 test -b "/dev/$_d" > /dev/null; done
    expect_eq "sd device count" "$_want" "$(sd_count)"
    expect_eq "distinct WWIDs" "$_luns" "$(for _d in $(sd_devices); do wwid "$_d"; done | sort -u | wc -l)"
}

# topo_scsi_debug_2paths: one 16 MiB disk seen through two hosts (sda, sdb, same WWID).
topo_scsi_debug_2paths() { topo_scsi_debug 1 2; }

# topo_flakey: one scsi_debug disk (sda) and two device-mapper paths over it:
#   lab_p0 (dm-linear, always healthy) and lab_p1 (dm-flakey, healthy until flakey_set).
# Exports FLAKEY_P0 and FLAKEY_P1 (MAJ:MIN).  Multipath maps over them need `queue_mode bio`
# (mpath_create does that for device-mapper paths).
topo_flakey() {
    topo_scsi_debug 1 1
    modprobe dm-mod; modprobe dm-flakey
    _sz=$(cat /sys/block/sda/size)
    run dmsetup create lab_p0 --table "0 $_sz linear $(devt sda) 0" || fail "dmsetup create lab_p0"
    run dmsetup create lab_p1 --table "0 $_sz flakey $(devt sda) 0 3600 0" || fail "dmsetup create lab_p1"
    FLAKEY_P0=$(dmsetup info -c --noheadings -o major,minor --separator : lab_p0)
    FLAKEY_P1=$(dmsetup info -c --noheadings -o major,minor --separator : lab_p1)
    echo "FLAKEY_P0=$FLAKEY_P0 (linear) FLAKEY_P1=$FLAKEY_P1 (flakey)"
}

# flakey_set NAME UP DOWN: reload the dm-flakey device NAME so that it works for UP seconds,
# then fails all IO for DOWN seconds, repeatedly (UP=0: always failing; DOWN=0: always healthy).
flakey_set() {
    _t=$(dmsetup table "$1") || fail "no dm device $1"
    # table: 0 SIZE flakey DEV OFFSET UP DOWN
    set -- "$1" "$2" "$3" $_t
    run dmsetup suspend --noflush "$1" &&
        run dmsetup reload "$1" --table "$4 $5 $6 $7 $8 $2 $3" &&
        run dmsetup resume "$1" || fail "could not reload dm-flakey device $1"
}

# mpath_create NAME DEV... : a dm-multipath map over the given paths (sdX, dm-N or MAJ:MIN),
# one round-robin path group, no hardware handler.  Uses queue_mode bio when a path is itself
# a device-mapper device (request-based multipath cannot stack on those).
mpath_create() {
    _name=$1; shift
    modprobe dm-multipath; modprobe dm-round-robin
    _feat="0" _devs="" _n=0 _sz=""
    for _p in "$@"; do
        case $_p in *:*) _dt=$_p ;; *) _dt=$(devt "$_p") ;; esac
        [ -n "$_sz" ] || _sz=$(cat "/sys/dev/block/$_dt/size")
        [ -e "/sys/dev/block/$_dt/dm" ] && _feat="2 queue_mode bio"
        _devs="$_devs $_dt 1"; _n=$((_n + 1))
    done
    run dmsetup create "$_name" --table "0 $_sz multipath $_feat 0 1 1 round-robin 0 $_n 1$_devs" ||
        fail "dmsetup create $_name failed"
}

# ---- LIO (tcm_loop) targets ---------------------------------------------------------------------
# A real SCSI target in the kernel: LUN N (0, 1, ...) is an iblock backstore over the dm-linear
# device lab_lunN (a slice of a loop device on tmpfs), exported through tcm_loop ports (one
# SCSI host each).  lun_hang suspends lab_lunN without flushing: the target stops answering
# (commands wait in dm, no error) until lun_resume, as a controller that hangs does.
TCM=/sys/kernel/config/target
TCM_LUNS=0 TCM_PORTS=0

# topo_tcm_loop LUNS PORTS [SIZE_MB [alua]]: LUNS new LUNs, each exported through the same PORTS
# new tcm_loop ports, so LUNS*PORTS new sd devices with LUNS new WWIDs (vpd_unit_serial
# lab-lun-000N).  Call it again for LUNs behind other ports (other SCSI hosts).
# With "alua" (or topo_tcm_loop_alua), each port of a new LUN is in an ALUA target port group
# of its own, lab_pgP (id P+1), implicit ALUA only: the target alone changes states, as an
# array's controllers do (with explicit ALUA, scsi_dh_alua sends an STPG when DM activates a
# non-optimized group, and the target would switch).  All groups start active/optimized;
# alua_set changes one.
topo_tcm_loop() {
    _luns=$1 _ports=$2 _alua=${4:-}
    [ -z "$_alua" ] || modprobe scsi_dh_alua || fail "modprobe scsi_dh_alua failed"
    modprobe tcm_loop || fail "modprobe tcm_loop failed"
    _sd0=$(sd_count)
    _tcm_backstores "$_luns" "${3:-16}"
    if [ -n "$_alua" ]; then
        # (the default group too: a port is in it when its sd is scanned, and the TPGS bits of
        # that first INQUIRY are the ones scsi_dh_alua keeps)
        _n=$TCM_FIRST
        while [ "$_n" -lt "$TCM_LUNS" ]; do
            _tcm_alua_groups "$TCM/core/iblock_$_n/lab_lun$_n" "$TCM_PORTS" $((TCM_PORTS + _ports))
            _n=$((_n + 1))
        done
    fi
    _p=$TCM_PORTS
    while [ "$_p" -lt $((TCM_PORTS + _ports)) ]; do
        _t=$(tcm_port "$_p")
        mkdir -p "$_t" && echo "naa.$(printf '500140510000%04x' "$_p")" > "$_t/nexus" ||
            fail "tcm_loop port $_p"
        _tcm_link_luns "$_t"
        if [ -n "$_alua" ]; then
            _n=$TCM_FIRST
            while [ "$_n" -lt "$TCM_LUNS" ]; do
                echo "lab_pg$_p" > "$_t/lun/lun_$((_n - TCM_FIRST))/alua_tg_pt_gp" ||
                    fail "tcm_loop port $_p: LUN $_n in ALUA group lab_pg$_p"
                _n=$((_n + 1))
            done
        fi
        _p=$((_p + 1))
    done
    TCM_PORTS=$((TCM_PORTS + _ports))
    _tcm_check "$_sd0" "$_ports"
    if [ -n "$_alua" ]; then
        # the sd read its port group (VPD page 0x83) when it appeared, in the default group: a
        # rescan makes scsi_dh_alua read it again
        _n=$TCM_FIRST
        while [ "$_n" -lt "$TCM_LUNS" ]; do
            for _d in $(lun_sds "$_n"); do echo 1 > "/sys/block/$_d/device/rescan"; done
            _n=$((_n + 1))
        done
    fi
}
topo_tcm_loop_alua() { topo_tcm_loop "$1" "$2" "${3:-16}" alua; }

# _tcm_backstores LUNS SIZE_MB: LUNs $TCM_FIRST.. (lab_lunN over a loop device, iblock_N/lab_lunN)
_tcm_backstores() {
    modprobe sd_mod; modprobe sg; modprobe dm-mod; modprobe loop
    modprobe target_core_iblock || fail "modprobe target_core_iblock failed"
    [ -d "$TCM/core" ] || mount -t configfs configfs /sys/kernel/config
    [ -d "$TCM/core" ] || fail "no $TCM/core (configfs)"
    TCM_FIRST=$TCM_LUNS
    dd if=/dev/zero of="$LAB_TMP/tcm$TCM_FIRST.img" bs=1M count=0 seek=$(($1 * $2)) 2> /dev/null
    _loop=$(losetup -f) && losetup "$_loop" "$LAB_TMP/tcm$TCM_FIRST.img" || fail "losetup $LAB_TMP/tcm$TCM_FIRST.img"
    _sects=$(($2 * 2048)) _n=$TCM_FIRST
    while [ "$_n" -lt $((TCM_FIRST + $1)) ]; do
        dmsetup create "lab_lun$_n" --table "0 $_sects linear $(devt "${_loop#/dev/}") $(( (_n - TCM_FIRST) * _sects ))" ||
            fail "dmsetup create lab_lun$_n"
        _b=$TCM/core/iblock_$_n/lab_lun$_n
        mkdir -p "$_b" &&
            echo "udev_path=/dev/dm-$(dmsetup info -c --noheadings -o minor "lab_lun$_n")" > "$_b/control" &&
            echo "lab-lun-$(printf %04d "$_n")" > "$_b/wwn/vpd_unit_serial" &&
            echo 1 > "$_b/enable" || fail "LIO backstore iblock_$_n/lab_lun$_n"
        _n=$((_n + 1))
    done
    TCM_LUNS=$((TCM_FIRST + $1))
}

# _tcm_link_luns TPG_DIR: export the LUNs of the last _tcm_backstores as lun_0, lun_1, ... of TPG_DIR
_tcm_link_luns() {
    _n=$TCM_FIRST
    while [ "$_n" -lt "$TCM_LUNS" ]; do
        mkdir -p "$1/lun/lun_$((_n - TCM_FIRST))" &&
            ln -s "$TCM/core/iblock_$_n/lab_lun$_n" "$1/lun/lun_$((_n - TCM_FIRST))/lab_lun$_n" ||
            fail "$1: LUN $_n"
        _n=$((_n + 1))
    done
}

# _tcm_check SD_BEFORE PATHS: the LUNs of the last _tcm_backstores appeared, PATHS sd each, one WWID
_tcm_check() {
    _want=$(($1 + (TCM_LUNS - TCM_FIRST) * $2))
    wait_for "$_want sd devices" $((20 + _want)) sh -c "[ \$(ls /sys/block | grep -c '^sd') -ge $_want ]"
    for _d in $(sd_devices); do wait_for "/dev/$_d" 10 test -b "/dev/$_d" > /dev/null; done
    expect_eq "sd device count" "$_want" "$(sd_count)"
    # one pass over all sd devices (two greps), not one per LUN: 64 LUNs x 2 paths took a
    # minute of forks under TCG that way.  "LUN PATHS WWIDS" of each new LUN.
    _per_lun=$( { grep -aoH 'lab-lun-[0-9]*' /sys/block/sd*/device/vpd_pg80; grep -H . /sys/block/sd*/device/wwid; } 2> /dev/null |
        awk -F: -v first="$TCM_FIRST" -v end="$TCM_LUNS" '
            { split($1, f, "/"); d = f[4] }
            $1 ~ /vpd_pg80$/ { sub(/^lab-lun-0*/, "", $2); lun[d] = $2 + 0; next }
            { wwid[d] = $2 }
            END { for (d in lun) { n[lun[d]]++; if (!((lun[d], wwid[d]) in seen)) { seen[lun[d], wwid[d]] = 1; w[lun[d]]++ } }
                  for (i = first; i < end; i++) printf "%d %d %d\n", i, n[i], w[i] }')
    _n=$TCM_FIRST
    while [ "$_n" -lt "$TCM_LUNS" ]; do
        _row=$(printf '%s\n' "$_per_lun" | grep "^$_n ")
        expect_eq "LUN $_n: paths, WWIDs" "$_n $2 1" "$_row"
        _n=$((_n + 1))
    done
}

# _tcm_alua_groups BACKSTORE FIRST_PORT END_PORT: implicit ALUA, a group per port
_tcm_alua_groups() {
    echo 1 > "$1/alua/default_tg_pt_gp/alua_access_type" || fail "$1: implicit ALUA"
    _q=$2
    while [ "$_q" -lt "$3" ]; do
        mkdir "$1/alua/lab_pg$_q" && echo $((_q + 1)) > "$1/alua/lab_pg$_q/tg_pt_gp_id" &&
            echo 1 > "$1/alua/lab_pg$_q/alua_access_type" || fail "$1: ALUA group lab_pg$_q"
        _q=$((_q + 1))
    done
}

# alua_set LUN PORT STATE: the target puts PORT's ALUA group of LUN in STATE: optimized,
# non-optimized, standby or unavailable (topo_tcm_loop_alua).  The initiator learns it from
# the unit attention its next command through that group gets (scsi_dh_alua then asks the
# target for every group's state, and access_state in sysfs follows).
alua_set() {
    case $3 in
        optimized) _s=0 ;; non-optimized) _s=1 ;; standby) _s=2 ;; unavailable) _s=3 ;;
        *) fail "alua_set: unknown state '$3'" ;;
    esac
    echo "+ alua_set $*"
    echo "$_s" > "$TCM/core/iblock_$1/lab_lun$1/alua/lab_pg$2/alua_access_state" ||
        fail "alua_set $*: the target refused the state"
}

# tcm_port P: the configfs directory of tcm_loop port P (0, 1, ...: numbered across calls)
tcm_port() { echo "$TCM/loopback/naa.$(printf '500140500000%04x' "$1")/tpgt_1"; }

# lun_sds N: the sd devices of LIO LUN N, one a line (matched by the unit serial, VPD page 0x80)
lun_sds() {
    for _d in $(sd_devices); do
        grep -q "lab-lun-$(printf %04d "$1")" "/sys/block/$_d/device/vpd_pg80" 2> /dev/null && echo "$_d"
    done
}
# lun_port_sd N P: the sd device of LIO LUN N behind tcm_loop port P (VPD page 0x83 names the
# target port: "naa.500140500000000P,t,0x0001")
lun_port_sd() {
    _w=$(basename "$(dirname "$(tcm_port "$2")")")
    for _d in $(lun_sds "$1"); do
        tr -c 'A-Za-z0-9.,' ' ' < "/sys/block/$_d/device/vpd_pg83" | grep -q "$_w," && echo "$_d"
    done
}
# lun_unmap N / lun_map N: LIO LUN N leaves every tcm_loop port (its sd devices go away, as
# when an array unmaps a volume) / comes back (new sd devices, one a port; the kernel adds them
# directly: a host scan would not find them, tcm_loop hosts announce no LUN above 0).  A LUN
# that comes back is in each port's default ALUA group (optimized), not its lab_pgP group.
lun_unmap() {
    for _l in "$TCM"/loopback/*/tpgt_1/lun/lun_*/"lab_lun$1"; do
        [ -L "$_l" ] || continue
        echo "$_l" >> "$LAB_TMP/unmapped$1"
        rm "$_l" || fail "lun_unmap $1: $_l"
    done
    wait_for "LUN $1 has no sd device" 30 sh -c ". $LAB_DIR/lib.sh; [ -z \"\$(lun_sds $1)\" ]"
}
lun_map() {
    _c=0
    while read -r _l; do
        ln -s "$TCM/core/iblock_$1/lab_lun$1" "$_l" || fail "lun_map $1: $_l"
        _c=$((_c + 1))
    done < "$LAB_TMP/unmapped$1"
    rm -f "$LAB_TMP/unmapped$1"
    wait_for "LUN $1 has $_c sd devices" 60 sh -c ". $LAB_DIR/lib.sh; [ \$(lun_sds $1 | wc -l) -eq $_c ]"
}
# lun_resize N SIZE_MB: LIO LUN N's backstore becomes SIZE_MB (as an array grows a volume): lab_lunN
# is reloaded with its first slice (at most its size at creation) followed, beyond that, by a
# slice of a file of its own.  The target reports the new capacity in the next READ CAPACITY;
# the initiator sees it after a rescan of each path (device/rescan).
lun_resize() {
    _t0=$LAB_TMP/lab_lun$1.table0
    [ -f "$_t0" ] || dmsetup table "lab_lun$1" > "$_t0" || fail "lun_resize: no lab_lun$1"
    # the table at creation: "0 SECTORS linear MAJ:MIN OFFSET"
    read -r _ _s0 _ _dev0 _off0 < "$_t0"
    _want=$(($2 * 2048))
    if [ "$_want" -le "$_s0" ]; then
        _tab="0 $_want linear $_dev0 $_off0"
    else
        if [ ! -f "$LAB_TMP/lab_lun$1.grow" ]; then
            dd if=/dev/zero of="$LAB_TMP/lun$1-grow.img" bs=1M count=0 seek=1024 2> /dev/null
            losetup -f > "$LAB_TMP/lab_lun$1.grow" && losetup "$(cat "$LAB_TMP/lab_lun$1.grow")" "$LAB_TMP/lun$1-grow.img" ||
                fail "lun_resize: losetup"
        fi
        _gl=$(cat "$LAB_TMP/lab_lun$1.grow")
        _tab="0 $_s0 linear $_dev0 $_off0
$_s0 $((_want - _s0)) linear $(devt "${_gl#/dev/}") 0"
    fi
    echo "+ lun_resize $1 $2 (lab_lun$1: $(printf '%s' "$_tab" | tr '\n' ';'))"
    printf '%s\n' "$_tab" | dmsetup reload "lab_lun$1" && dmsetup resume "lab_lun$1" || fail "lun_resize $1 $2: reload of lab_lun$1"
    expect_eq "lab_lun$1 size (sectors)" "$_want" "$(cat "/sys/block/dm-$(dmsetup info -c --noheadings -o minor "lab_lun$1")/size")"
}

# lun_hang N...: the LUNs stop answering: their commands wait in the suspended lab_lunN, no
# error.  All at once (in parallel: one dmsetup takes a second or more under TCG).
lun_hang() { _tcm_dm "suspend --noflush" "$@"; }
# lun_resume N...: the LUNs answer again; the commands that waited complete
lun_resume() { _tcm_dm resume "$@"; }
_tcm_dm() {
    _op=$1 _pids=""; shift
    for _n in "$@"; do
        echo "+ dmsetup $_op lab_lun$_n"
        dmsetup $_op "lab_lun$_n" &
        _pids="$_pids $!"
    done
    for _p in $_pids; do wait "$_p" || fail "dmsetup $_op failed (LUNs $*)"; done
}

# ---- LIO iSCSI target and the open-iscsi initiator, over loopback ----------------------------------
# The guest has only `lo`; every 127.0.0.0/8 address is local, so portal P (0, 1, ...) is
# 127.0.0.(P+2):3260, TPG tpgt_(P+1) of one target IQN, and the initiator (iscsid, source
# address 127.0.0.1) logs in to each portal as os-brick does: one session, one SCSI host per
# portal, so a LUN has one sd path per portal.  portal_hang routes the portal's address into a
# blackhole: what the initiator sends there is dropped, the target's answers stop (see README).
ISCSI_IQN=iqn.2003-01.org.linux-iscsi.lab:target
ISCSI_PORTALS=0
# node.session.timeo.replacement_timeout in iscsid.conf: how long a session stays in recovery
# (its SCSI devices blocked, commands waiting) before they fail; set it before topo_iscsi
ISCSI_REPLACEMENT_TIMEOUT=${ISCSI_REPLACEMENT_TIMEOUT:-15}

portal_addr() { echo "127.0.0.$(($1 + 2))"; }

# topo_iscsi LUNS PORTALS [SIZE_MB]: LUNS new LUNs (backstores as in topo_tcm_loop) behind
# PORTALS new portals (TPGs) of the LIO iSCSI target; the initiator discovers them through the
# first portal and logs in to each one.  LUNS*PORTALS new sd devices, one WWID per LUN.
topo_iscsi() {
    _sd0=$(sd_count)
    iscsi_target "$@"
    run iscsiadm -m discovery -t st -p "$(portal_addr "$_first_portal"):3260" || fail "iSCSI discovery"
    _p=$_first_portal
    while [ "$_p" -lt "$ISCSI_PORTALS" ]; do
        run iscsiadm -m node -T "$ISCSI_IQN" -p "$(portal_addr "$_p"):3260" --login || fail "iSCSI login to portal $_p"
        _p=$((_p + 1))
    done
    _tcm_check "$_sd0" "$2"
}

# iscsi_target LUNS PORTALS [SIZE_MB]: the target side of topo_iscsi and iscsid, no discovery,
# no login (for a scenario that logs in itself, as os-brick does)
iscsi_target() {
    _luns=$1 _ports=$2
    # (crc32c: LIO allocates it at every login, for digests, and refuses the login without it)
    modprobe crc32c_generic && modprobe iscsi_target_mod && modprobe iscsi_tcp || fail "modprobe of the iSCSI modules failed"
    run ip link set lo up || fail "ip link set lo up"
    _tcm_backstores "$_luns" "${3:-16}"
    _p=$ISCSI_PORTALS _first_portal=$ISCSI_PORTALS
    while [ "$_p" -lt $((ISCSI_PORTALS + _ports)) ]; do
        _t=$TCM/iscsi/$ISCSI_IQN/tpgt_$((_p + 1))
        # no CHAP, an ACL made on login for any initiator, writable LUNs
        mkdir -p "$_t/np/$(portal_addr "$_p"):3260" &&
            echo 0 > "$_t/attrib/authentication" && echo 1 > "$_t/attrib/generate_node_acls" &&
            echo 1 > "$_t/attrib/cache_dynamic_acls" && echo 0 > "$_t/attrib/demo_mode_write_protect" ||
            fail "iSCSI TPG $_t"
        _tcm_link_luns "$_t"
        echo 1 > "$_t/enable" || fail "enable $_t"
        _p=$((_p + 1))
    done
    ISCSI_PORTALS=$((ISCSI_PORTALS + _ports))
    _iscsid_start
}

# _iscsid_start: configuration, then iscsid in the foreground as a background job (once)
_iscsid_start() {
    [ -n "${ISCSID_PID:-}" ] && return 0
    mkdir -p /etc/iscsi /run/lock/iscsi /var/lib/iscsi
    echo "InitiatorName=iqn.2003-01.org.linux-iscsi.lab:initiator" > /etc/iscsi/initiatorname.iscsi
    # Debian's iscsid.conf with two changes: iscsiadm must not try to start iscsid through
    # systemd, and the replacement timeout.  (node.* settings go into the node records at
    # discovery.  Its NOP-Out ping, every 5 s and answered within 5 s, is how the initiator
    # notices a portal that went silent.)
    sed -i -e 's|^iscsid.startup = .*|iscsid.startup = /bin/false|' \
        -e "s|^node.session.timeo.replacement_timeout = .*|node.session.timeo.replacement_timeout = $ISCSI_REPLACEMENT_TIMEOUT|" \
        /etc/iscsi/iscsid.conf || fail "no /etc/iscsi/iscsid.conf"
    iscsid -f > "$LAB_TMP/iscsid.log" 2>&1 &
    ISCSID_PID=$!
    wait_for "iscsid listens" 20 grep -q ISCSIADM_ABSTRACT_NAMESPACE /proc/net/unix
}

# portal_sds P: the sd devices reached through portal P, one a line (those of the session whose
# connection goes to the portal's address)
portal_sds() {
    for _c in /sys/class/iscsi_connection/connection*; do
        [ "$(cat "$_c/persistent_address" 2> /dev/null)" = "$(portal_addr "$1")" ] || continue
        _s=${_c##*/connection}
        for _b in /sys/class/iscsi_session/session${_s%%:*}/device/target*/*/block/sd*; do
            [ -e "$_b" ] && echo "${_b##*/}"
        done
    done | sort
}
# portal_hang P...: the portals stop answering: their addresses are routed into a blackhole, so
# what the initiator sends there (commands, NOP-Out pings, new connections) is dropped without
# an error on the wire; nothing is closed, the initiator has to notice the silence itself.
portal_hang() {
    for _p in "$@"; do run ip route add blackhole "$(portal_addr "$_p")/32" table local || fail "portal_hang $_p"; done
}
# portal_resume P...: the portals answer again; the initiator reconnects on its next attempt
portal_resume() {
    for _p in "$@"; do run ip route del blackhole "$(portal_addr "$_p")/32" table local || fail "portal_resume $_p"; done
}

# ---- NVMe over TCP (the kernel's nvmet target) over loopback ----------------------------------------
# One subsystem $NVME_NQN; namespace N (1, 2, ...) is a file on tmpfs (buffered IO: tmpfs has
# no O_DIRECT), in ANA group ((N-1) % GROUPS) + 1; port P (0, 1, ...) is nvmet port P+1 on
# 127.0.0.1:(4420+P), the host connects to each one (one controller per port), and with
# nvme_core's multipath=N every controller has its own nvmeCnM block device per namespace,
# so a namespace has one path per port for dm-multipath.  Each port has its own state for every
# ANA group (ports/P+1/ana_groups/G/ana_state); ana_set changes one.  The host, without native
# multipath, does not follow ANA: it learns nothing of a change, and IO through an
# inaccessible group fails (an NVMe path error), as a SCSI LUN in ALUA standby does.
NVMET=/sys/kernel/config/nvmet
NVME_NQN=nqn.2014-08.org.lab:nvme-ana
NVME_NS=0 NVME_PORTS=0 NVME_GROUPS=1

# topo_nvme_tcp NAMESPACES PORTS [GROUPS [SIZE_MB]]: the subsystem, its namespaces in GROUPS ANA
# groups, PORTS ports with every group optimized, the host connected to each port; checks that
# NAMESPACES*PORTS nvme block devices appear, PORTS per WWID.  Once per scenario.
topo_nvme_tcp() {
    _ns=$1 _ports=$2 NVME_GROUPS=${3:-1} _mb=${4:-16}
    # nvme_core first and by hand: multipath is read-only once loaded, and nvmet (its
    # passthrough part) would load it with the default, Y
    run modprobe nvme_core multipath=N || fail "modprobe nvme_core multipath=N"
    expect_eq "nvme_core multipath" N "$(cat /sys/module/nvme_core/parameters/multipath)"
    modprobe nvmet && modprobe nvmet-tcp && modprobe nvme-tcp || fail "modprobe of the NVMe/TCP modules failed"
    run ip link set lo up || fail "ip link set lo up"
    [ -d "$NVMET" ] || mount -t configfs configfs /sys/kernel/config
    [ -d "$NVMET/subsystems" ] || fail "no $NVMET (configfs)"
    _s=$NVMET/subsystems/$NVME_NQN
    mkdir "$_s" && echo 1 > "$_s/attr_allow_any_host" || fail "nvmet subsystem $NVME_NQN"
    _n=1
    while [ "$_n" -le "$_ns" ]; do
        dd if=/dev/zero of="$LAB_TMP/nvme-ns$_n.img" bs=1M count=0 seek="$_mb" 2> /dev/null
        mkdir "$_s/namespaces/$_n" &&
            echo -n "$LAB_TMP/nvme-ns$_n.img" > "$_s/namespaces/$_n/device_path" &&
            echo 1 > "$_s/namespaces/$_n/buffered_io" &&
            echo "$(printf '6c616200-0000-4000-8000-%012d' "$_n")" > "$_s/namespaces/$_n/device_uuid" &&
            echo $(( (_n - 1) % NVME_GROUPS + 1 )) > "$_s/namespaces/$_n/ana_grpid" &&
            echo 1 > "$_s/namespaces/$_n/enable" || fail "nvmet namespace $_n"
        _n=$((_n + 1))
    done
    NVME_NS=$_ns
    _p=0
    while [ "$_p" -lt "$_ports" ]; do
        _d=$NVMET/ports/$((_p + 1))
        mkdir "$_d" && echo tcp > "$_d/addr_trtype" && echo ipv4 > "$_d/addr_adrfam" &&
            echo 127.0.0.1 > "$_d/addr_traddr" && echo $((4420 + _p)) > "$_d/addr_trsvcid" || fail "nvmet port $_p"
        _g=2
        while [ "$_g" -le "$NVME_GROUPS" ]; do mkdir "$_d/ana_groups/$_g" || fail "port $_p: ANA group $_g"; _g=$((_g + 1)); done
        _g=1
        while [ "$_g" -le "$NVME_GROUPS" ]; do ana_set "$_p" "$_g" optimized > /dev/null; _g=$((_g + 1)); done
        ln -s "$_s" "$_d/subsystems/$NVME_NQN" || fail "nvmet port $_p: link the subsystem"
        _p=$((_p + 1))
    done
    NVME_PORTS=$_ports
    _p=0
    while [ "$_p" -lt "$_ports" ]; do
        run sh -c "echo transport=tcp,traddr=127.0.0.1,trsvcid=$((4420 + _p)),nqn=$NVME_NQN > /dev/nvme-fabrics" ||
            fail "connect to port $_p"
        _p=$((_p + 1))
    done
    _want=$((_ns * _ports))
    wait_for "$_want nvme block devices" 30 sh -c "[ \$(ls /sys/block | grep -c '^nvme[0-9]*n[0-9]*\$') -ge $_want ]"
    for _d in $(nvme_devices); do wait_for "/dev/$_d" 10 test -b "/dev/$_d" > /dev/null; done
    expect_eq "nvme block devices" "$_want" "$(nvme_devices | wc -l)"
    expect_eq "paths per WWID" "$_ports" "$(for _d in $(nvme_devices); do cat "/sys/block/$_d/wwid"; done | sort | uniq -c | awk '{ print $1 }' | sort -u)"
}

# nvme_devices: the namespace block devices (paths), one a line
nvme_devices() { ls /sys/block | grep '^nvme[0-9]*n[0-9]*$' | sort; }
# nvme_port_ctrl P: the host's controller (nvmeC) connected to port P
nvme_port_ctrl() {
    for _c in /sys/class/nvme/nvme*; do
        grep -q "trsvcid=$((4420 + $1))" "$_c/address" 2> /dev/null && basename "$_c"
    done
}
# nvme_ns_dev N P: the block device of namespace N through port P
nvme_ns_dev() {
    _c=$(nvme_port_ctrl "$2")
    for _d in $(nvme_devices); do
        [ "$(basename "$(readlink -f "/sys/block/$_d/device")")" = "$_c" ] &&
            [ "$(cat "/sys/block/$_d/nsid")" = "$1" ] && echo "$_d"
    done
}

# ana_set PORT GROUP STATE: the target reports ANA group GROUP through port PORT as STATE:
# optimized, non-optimized, inaccessible, persistent-loss or change (topo_nvme_tcp).
ana_set() {
    echo "+ ana_set $*"
    case $3 in optimized | non-optimized | inaccessible | persistent-loss | change) ;; *) fail "ana_set: unknown state '$3'" ;; esac
    echo "$3" > "$NVMET/ports/$(($1 + 1))/ana_groups/$2/ana_state" || fail "ana_set $*: the target refused the state"
}
# ana_state PORT GROUP: the state the target reports
ana_state() { cat "$NVMET/ports/$(($1 + 1))/ana_groups/$2/ana_state"; }

# ---- daemons -------------------------------------------------------------------------------------

# io_loop DEV FILE [ERRS]: 4 KiB O_DIRECT reads of DEV, one every 0.2 s, until $LAB_TMP/io.run
# goes; FILE holds "reads errors slowest-read-in-centiseconds" after every read; with ERRS, the
# uptime of each failed read is appended to it.
io_loop() {
    _ok=0 _err=0 _max=0 _i=0
    while [ -e "$LAB_TMP/io.run" ]; do
        read -r _t0 _ < /proc/uptime
        if dd if="$1" of=/dev/null bs=4k count=1 skip=$((_i % 4096)) iflag=direct 2> /dev/null; then
            _ok=$((_ok + 1))
        else
            _err=$((_err + 1))
            [ -z "${3:-}" ] || uptime_s >> "$3"
        fi
        read -r _t1 _ < /proc/uptime
        _cs=$(( ${_t1%.*}${_t1#*.} - ${_t0%.*}${_t0#*.} ))
        [ "$_cs" -gt "$_max" ] && _max=$_cs
        echo "$((_ok + _err)) $_err $_max" > "$2"
        _i=$((_i + 1))
        sleep 0.2
    done
}

# map_count: multipath maps in the kernel
map_count() { dmsetup ls --target multipath | grep -vc '^No devices'; }

# upstream_daemon: sets UPSTREAM_MULTIPATHD to upstream 0.14.3's multipathd (`make upstream` on
# the host, staged by run.sh), ready to run in the guest with Debian's shared libraries; returns 1
# when the host had no such build, after saying so and writing the reason to $LAB_OUT/skipped
# (run.sh and tests/lab.rs report the scenario as skipped, not passed).
# The binary and its own libraries are copied to tmpfs (an exec from the 9p share is slow); the
# plugins (checkers, prioritizers) go where its libmultipath looks for them, a directory Debian's
# 0.9.4 does not use (its plugins are in /lib/multipath).
upstream_daemon() {
    if [ ! -x /mnt/upstream/multipathd ]; then
        echo "upstream 0.14.3's daemon: target/upstream is absent on the host (make upstream builds it)" |
            tee "$LAB_OUT/skipped" | sed 's/^/SKIPPED: /'
        return 1
    fi
    _pd=$(cat /mnt/upstream/PLUGINDIR)
    [ -n "$_pd" ] && [ ! -e "$_pd" ] || fail "upstream's plugin directory '$_pd' is taken or unknown"
    mkdir -p "$LAB_TMP/upstream" "$(dirname "$_pd")"
    cp -a /mnt/upstream/. "$LAB_TMP/upstream/"
    ln -s "$LAB_TMP/upstream/multipath" "$_pd"
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$LAB_TMP/upstream/lib" "$LAB_TMP/upstream/multipathd" \
        > "$LAB_TMP/upstream/run"
    chmod +x "$LAB_TMP/upstream/run"
    UPSTREAM_MULTIPATHD=$LAB_TMP/upstream/run
    echo "upstream daemon: $(cat /mnt/upstream/VERSION), plugins in $_pd"
}

# daemon_stop_and_flush LABEL BIN PID [VALUES_FILE]: `BIN shutdown`, kill -9 after 30 s, then
# flush and remove every multipath map and forget bindings and wwids, so the next daemon
# starts from the same setup.  With VALUES_FILE, appends shutdown=clean|killed to it.
daemon_stop_and_flush() {
    step "$1: stop the daemon, flush the maps"
    "$2" shutdown > /dev/null 2>&1
    _k=0
    while kill -0 "$3" 2> /dev/null && [ $_k -lt 60 ]; do _k=$((_k + 1)); sleep 0.5; done
    _how=clean
    if kill -0 "$3" 2> /dev/null; then
        echo "$1: the daemon did not exit within 30 s of shutdown: killed"
        kill -9 "$3"
        _how=killed
    fi
    [ -z "${4:-}" ] || echo "shutdown=$_how" >> "$4"
    /sbin/multipath -F > /dev/null 2>&1
    udevadm settle -t 30
    for _m in $(dmsetup ls --target multipath | grep -v '^No devices' | cut -f1); do
        run dmsetup remove --retry "$_m"
    done
    expect_eq "$1: maps left after the flush" 0 "$(map_count)"
    rm -f /etc/multipath/bindings /etc/multipath/wwids
}

# ---- per-path faults ---------------------------------------------------------------------------

path_offline() { run sh -c "echo offline > /sys/block/$1/device/state"; }
path_online() { run sh -c "echo running > /sys/block/$1/device/state"; }
# path_delete sdX: remove the SCSI device (as on a hot unplug); remember its host for host_rescan.
path_delete() {
    LAB_DELETED_HOST=$(path_host "$1")
    run sh -c "echo 1 > /sys/block/$1/device/delete"
}
# host_rescan [hostN]: scan a SCSI host again (default: the host of the last path_delete).
host_rescan() {
    run sh -c "echo '- - -' > /sys/class/scsi_host/${1:-$LAB_DELETED_HOST}/scan"
}

# ---- uevents and udev --------------------------------------------------------------------------

# uevents_start: record kernel uevents (all properties) to $LAB_TMP/uevents.log from now on.
uevents_start() {
    udevadm monitor --kernel --property > "$LAB_TMP/uevents.log" 2>&1 &
    LAB_UEVENT_PID=$!
    wait_for "uevent monitor listening" 10 grep -q 'monitor will print' "$LAB_TMP/uevents.log"
}

# uevents_find KEY=VALUE...: print the recorded uevents that carry all the given properties.
uevents_find() {
    awk -v want="$*" 'BEGIN { RS = ""; n = split(want, w, " ") }
        { ok = 1; for (i = 1; i <= n; i++) if (index("\n" $0 "\n", "\n" w[i] "\n") == 0) ok = 0
          if (ok) { print; print "" } }' "$LAB_TMP/uevents.log"
}

# uevents_count KEY=VALUE...: how many recorded uevents carry all the given properties.
uevents_count() {
    uevents_find "$@" | grep -c '^ACTION='
}

# uevents_wait SECONDS KEY=VALUE...: wait until such a uevent was recorded, then print it.
uevents_wait() {
    _secs=$1; shift
    wait_for "uevent with $*" "$_secs" sh -c ". $LAB_DIR/lib.sh; uevents_find $* | grep -q ."
    uevents_find "$@"
}

uevents_stop() {
    [ -n "${LAB_UEVENT_PID:-}" ] && kill "$LAB_UEVENT_PID" 2>/dev/null
    LAB_UEVENT_PID=
}

# udevd_start [SETTLE_SECONDS]: run systemd-udevd (Debian's multipathd needs udev's device
# database), replay the add events of the devices already there, wait for them (default 30 s).
udevd_start() {
    unset DM_DISABLE_UDEV
    run /lib/systemd/systemd-udevd --daemon || fail "systemd-udevd did not start"
    udevadm trigger --action=add
    udevadm settle -t "${1:-30}" || fail "udevadm settle timed out"
}
