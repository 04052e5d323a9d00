#!/bin/bash
# usage: tests/lab/run.sh SCENARIO
#   SCENARIO: a name from tests/lab/scenarios/ (with or without .sh) or a path to a script.
# Boots one lab VM (qemu, TCG) that runs the scenario and powers off, then prints a summary.
# Results: target/lab/results/<name>/{<name>.out,<name>.rc,dmesg.txt,console.log,...}
# Exit status: the scenario's; 124 on timeout, 125 when the VM did not run the scenario.
# Environment: LAB_TIMEOUT (seconds, default: the scenario's "# lab-timeout: N" line, else 300),
#   LAB_BOOT_LIMIT (seconds for the guest to start the scenario, else it is booted again; 180),
#   LAB_NO_BUILD=1 (skip cargo build), LAB_VERBOSE=1 (print the whole scenario output),
#   LAB_MEM (MiB, default 1024), LAB_SMP (default 2), LAB_PROFILE (debug or release: which
#   build of our binaries the VM gets; default: the scenario's "# lab-profile: P" line, else
#   debug; benchmarks and load tests use release).
set -euo pipefail

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
[ $# -eq 1 ] || { echo "usage: $0 SCENARIO" >&2; exit 2; }

case $1 in
    */*) SCRIPT=$1 ;;
    *) SCRIPT=$LAB/scenarios/${1%.sh}.sh ;;
esac
[ -f "$SCRIPT" ] || { echo "lab: no such scenario: $SCRIPT" >&2; exit 2; }
SCRIPT=$(cd "$(dirname "$SCRIPT")" && pwd)/$(basename "$SCRIPT")
NAME=$(basename "$SCRIPT" .sh)

"$LAB/setup.sh"
# shellcheck disable=SC1091
. "$TARGET/lab-cache/current.env"

PROFILE=${LAB_PROFILE:-$(sed -n 's/^# lab-profile: *\([a-z]*\).*/\1/p' "$SCRIPT" | head -1)}
PROFILE=${PROFILE:-debug}
case $PROFILE in debug|release) ;; *) echo "lab: LAB_PROFILE must be debug or release" >&2; exit 2 ;; esac
if [ "${LAB_NO_BUILD:-0}" != 1 ]; then
    (cd "$REPO" && cargo build --quiet --bins --examples $([ "$PROFILE" = release ] && echo --release)) || { echo "lab: cargo build failed" >&2; exit 125; }
fi

[ -x "$TARGET/$PROFILE/multipathd" ] || { echo "lab: no $PROFILE build of multipathd in $TARGET/$PROFILE" >&2; exit 125; }

# Per-run share (our binaries + a copy of tests/lab) and results directory, so two VMs can run at once.
WORK=$TARGET/lab/work/$NAME
OUT=$TARGET/lab/results/$NAME
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK/share/bin" "$WORK/share/lab/run" "$OUT"
cp -a "$LAB/." "$WORK/share/lab/"
cp "$SCRIPT" "$WORK/share/lab/run/$NAME.sh"
for f in "$TARGET/$PROFILE/multipathd" "$TARGET/$PROFILE"/examples/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    case ${f##*/} in *.*) continue ;; esac                       # .d, .so, .rlib ...
    [[ ${f##*/} =~ -[0-9a-f]{16}$ ]] && continue                 # hashed duplicates of examples
    cp -l "$f" "$WORK/share/bin/" 2>/dev/null || cp "$f" "$WORK/share/bin/"
done

# Upstream 0.14.3's daemon (`make upstream`), when built: its binary, its own libraries and its
# plugins go into the share; `upstream_daemon` (lib.sh) runs it with the guest's Debian libraries.
# Its libraries share their sonames with Debian's 0.9.4 in the guest, so they get a directory of
# their own (LD_LIBRARY_PATH), never the guest's /lib.
UP=$REPO/target/upstream/src
if [ -x "$UP/multipathd/multipathd" ]; then
    mkdir -p "$WORK/share/upstream/lib" "$WORK/share/upstream/multipath"
    cp "$UP/multipathd/multipathd" "$REPO/target/upstream/VERSION" "$WORK/share/upstream/"
    for l in libmultipath libmpathutil libmpathcmd libmpathpersist; do cp "$UP/$l/$l.so.0" "$WORK/share/upstream/lib/"; done
    cp "$UP"/libmultipath/{checkers,prioritizers,foreign}/*.so "$WORK/share/upstream/multipath/"
    # the plugin directory is compiled into libmultipath (plugindir, /lib64/multipath by default)
    grep -ao '/lib[a-z0-9]*/multipath' "$UP/libmultipath/libmultipath.so.0" | sort -u | sed -n 1p > "$WORK/share/upstream/PLUGINDIR"
fi

TIMEOUT=${LAB_TIMEOUT:-$(sed -n 's/^# lab-timeout: *\([0-9][0-9]*\).*/\1/p' "$SCRIPT" | head -1)}
TIMEOUT=${TIMEOUT:-300}

echo "lab: $NAME: booting kernel $KV (TCG, timeout ${TIMEOUT}s)"
start=$(date +%s.%N)
outf=$OUT/$NAME.out
# BOOT_LIMIT: seconds for the guest to reach the scenario (its init starts at an uptime of 2.5
# to 4.3 s in every run kept, a 4,096-path benchmark VM included).  A guest that has not started it by then hung in its firmware or
# kernel boot, before anything of ours ran (seen once in CI: 900 s and no scenario output): it
# is stopped, its console shown, and booted once more; a second hang fails the run.
BOOT_LIMIT=${LAB_BOOT_LIMIT:-180}
# KVM is not usable on these machines (the guest hangs in its decompressor): TCG only.
# no_timer_check: on a loaded host the guest's early check of the timer interrupt can miss
# its ticks under TCG and panic ("IO-APIC + timer doesn't work"), before any scenario runs.
# log_buf_len: the kernel log holds a run's every line (4,096 paths log some 40,000 at boot
# and several thousand in a storm; Debian's default 256 KiB kept the last 2,049), so that
# dmesg.txt is whole and the benchmark can time each path from DM's lines.
boot_vm() {
    timeout -k 10 "$1" qemu-system-x86_64 -accel tcg -cpu max -m "${LAB_MEM:-1024}" -smp "${LAB_SMP:-2}" \
        -nographic -no-reboot -nic none \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "console=ttyS0 panic=-1 no_timer_check quiet loglevel=4 log_buf_len=8M lab_script=run/$NAME.sh" \
        -virtfs local,path="$WORK/share",mount_tag=share,security_model=none,id=share,readonly=on \
        -virtfs local,path="$OUT",mount_tag=results,security_model=none,id=results \
        < /dev/null > "$OUT/console.log" 2>&1 &
    local pid=$! waited=0
    while [ ! -e "$outf" ] && kill -0 "$pid" 2> /dev/null; do
        if [ "$waited" -ge "$BOOT_LIMIT" ]; then
            kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null
            return 200
        fi
        sleep 1; waited=$((waited + 1))
    done
    wait "$pid"
}
set +e
boot_vm "$TIMEOUT"; qrc=$?
if [ $qrc -eq 200 ]; then
    mv "$OUT/console.log" "$OUT/console-boot-hang.log"
    echo "lab: $NAME: !!! the guest did not start the scenario within ${BOOT_LIMIT}s (a hang in its boot); its console's last lines:"
    tail -15 "$OUT/console-boot-hang.log" | sed 's/^/    /'
    echo "lab: $NAME: !!! booting it once more"
    boot_vm "$TIMEOUT"; qrc=$?
    [ $qrc -ne 200 ] || boot_hung=1
fi
set -e
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "$secs" > "$OUT/seconds"

# never fails (pipefail and set -e would end the harness before it shows the console)
last_step() { { grep '^### ' "$outf" 2>/dev/null || true; } | tail -1 | sed 's/^### //'; }
if [ -f "$OUT/$NAME.rc" ]; then
    rc=$(cat "$OUT/$NAME.rc")
    verdict=$([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)")
    # a scenario that could not check what it is for says why in `skipped` (lib.sh)
    [ "$rc" != 0 ] || [ ! -f "$OUT/skipped" ] || verdict="SKIPPED: $(cat "$OUT/skipped")"
elif [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
    rc=124
    verdict="TIMEOUT after ${TIMEOUT}s, last step: $(last_step)"
elif [ "${boot_hung:-0}" = 1 ]; then
    rc=125
    verdict="the guest hung in its boot twice (${BOOT_LIMIT}s each): see console.log below"
else
    rc=125
    verdict="VM did not finish the scenario (qemu exit $qrc): see console.log below"
fi

echo "==== lab: $NAME: $verdict in ${secs}s ===="
if [ "${LAB_VERBOSE:-0}" = 1 ] || [ "$rc" != 0 ]; then
    if [ -s "$outf" ]; then
        if [ "${LAB_VERBOSE:-0}" = 1 ]; then cat "$outf"; else
            echo "---- steps:"; grep '^### ' "$outf" || true
            echo "---- last 60 lines of $NAME.out:"; tail -60 "$outf"
        fi
    else
        echo "---- no scenario output; last 40 lines of the serial console:"
        tail -40 "$OUT/console.log"
    fi
    if [ "$rc" = 124 ]; then
        echo "---- last 15 lines of the serial console:"
        tail -15 "$OUT/console.log"
    fi
    if [ "$rc" != 0 ] && [ -f "$OUT/dmesg.txt" ]; then
        kmsg=$(grep -E 'device-mapper|I/O error|Call Trace|BUG:|WARNING:|Oops|Kernel panic|critical' "$OUT/dmesg.txt" | tail -15 || true)
        if [ -n "$kmsg" ]; then
            echo "---- last device-mapper and error lines of the kernel log (dmesg.txt):"
            echo "$kmsg"
        fi
    fi
else
    grep '^### ' "$outf" | sed 's/^/    /' || true
fi
echo "==== results: $OUT"
exit "$rc"
