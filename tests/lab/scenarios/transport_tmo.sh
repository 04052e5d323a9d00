# eh_deadline and max_sectors_kb from multipath.conf reach sysfs when a map is created: the
# SCSI hosts' eh_deadline and the paths' queue/max_sectors_kb.  One scsi_debug disk and one
# LIO LUN, two paths each; Debian's daemon, then ours, on the same config; the values under
# each are printed side by side (values.txt) and ours must equal Debian's.  eh_deadline takes
# only on a host whose driver has a host reset (scsi_debug); tcm_loop refuses it (EINVAL) under
# both daemons.
# lab-timeout: 240
. "$LAB_DIR/lib.sh"

REF=/sbin/multipathd
OURS=$LAB_BIN/multipathd
EH=15 KB=64

# maps_ready: 2 multipath maps of 2 paths each in DM
maps_ready() {
    dmsetup table --target multipath | awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:[0-9]+$/) n++
        if (n == 2) c++ } END { exit c != 2 }'
}
# values: "sdX hostN eh_deadline max_sectors_kb" for every path
values() {
    for _d in $PATHS; do
        _h=$(path_host "$_d")
        echo "$_d $_h $(cat "/sys/class/scsi_host/$_h/eh_deadline") $(cat "/sys/block/$_d/queue/max_sectors_kb")"
    done
}
# reset: the values the kernel started with
reset_values() {
    while read -r _d _h _eh _kb; do
        echo "$_eh" > "/sys/class/scsi_host/$_h/eh_deadline" 2> /dev/null
        echo "$_kb" > "/sys/block/$_d/queue/max_sectors_kb"
    done < "$LAB_OUT/kernel.values"
}

# story BIN LABEL: start the daemon, wait for both maps, save the values, stop, flush
story() {
    _bin=$1 _l=$2
    step "$_l: start the daemon"
    "$_bin" -d -v3 > "$LAB_OUT/$_l.log" 2>&1 &
    _pid=$!
    wait_for "$_l: 2 maps of 2 paths in DM" 60 maps_ready
    artifact "$_l.values" values
    grep -E 'eh_deadline|max_sectors_kb|scsi timeouts' "$LAB_OUT/$_l.log" | sed "s/^/$_l log: /"
    step "$_l: stop the daemon, flush the maps"
    "$_bin" shutdown > /dev/null 2>&1
    _k=0
    while kill -0 "$_pid" 2> /dev/null && [ $_k -lt 40 ]; do _k=$((_k + 1)); sleep 0.5; done
    kill -0 "$_pid" 2> /dev/null && { echo "$_l: did not exit: killed"; kill -9 "$_pid"; }
    for _m in $(dmsetup ls --target multipath | grep -v '^No devices' | cut -f1); do
        run dmsetup remove --retry "$_m"
    done
    expect_eq "$_l: maps left after the flush" 0 "$(map_count)"
    rm -f /etc/multipath/bindings /etc/multipath/wwids
    reset_values
}

step "configuration, udev, scsi_debug 1x2 and LIO 1x2"
mkdir -p /etc/multipath
# overrides: the LIO-ORG hardware entry must not shadow the values under test
cat > /etc/multipath.conf <<CONF
defaults {
    polling_interval 2
    find_multipaths greedy
    user_friendly_names yes
}
overrides {
    eh_deadline $EH
    max_sectors_kb $KB
}
CONF
cp /etc/multipath.conf "$LAB_OUT/multipath.conf"
modprobe dm-multipath; modprobe dm-service-time; modprobe dm-round-robin; modprobe scsi_dh_alua
udevd_start
topo_scsi_debug_2paths
topo_tcm_loop 1 2
udevadm settle -t 30
PATHS=$(sd_devices | tr '\n' ' ')
artifact kernel.values values

story "$REF" debian
expect_eq "values back to the kernel's" "$(cat "$LAB_OUT/kernel.values")" "$(values)"
story "$OURS" ours

step "Debian vs ours"
{
    echo "transport_tmo: overrides eh_deadline $EH, max_sectors_kb $KB; sda/sdb scsi_debug, sdc/sdd tcm_loop"
    echo "path host | kernel eh_deadline max_sectors_kb | Debian | ours"
    paste -d' ' "$LAB_OUT/kernel.values" "$LAB_OUT/debian.values" "$LAB_OUT/ours.values" |
        awk '{ printf "%s %s | %s %s | %s %s | %s %s\n", $1, $2, $3, $4, $7, $8, $11, $12 }'
} > "$LAB_OUT/values.txt"
cat "$LAB_OUT/values.txt"
expect_eq "ours equals Debian" "$(cat "$LAB_OUT/debian.values")" "$(cat "$LAB_OUT/ours.values")"
for _d in $PATHS; do
    expect_eq "$_d max_sectors_kb (ours)" "$KB" "$(awk -v d="$_d" '$1 == d { print $4 }' "$LAB_OUT/ours.values")"
done
for _d in sda sdb; do
    expect_eq "$_d host eh_deadline (ours, scsi_debug)" "$EH" "$(awk -v d="$_d" '$1 == d { print $3 }' "$LAB_OUT/ours.values")"
done
