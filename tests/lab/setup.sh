#!/bin/bash
# Prepare everything the lab VM needs, idempotently:
#   1. host tools (qemu under TCG, cpio, kmod, file, groff-base), installed with apt only when missing;
#   2. the Debian kernel named by linux-image-amd64 and the guest userland debs, downloaded once;
#   3. the base initramfs, rebuilt only when its inputs change.
# Everything lands in target/lab-cache/<kernel version>/ (never in git).
# On success prints nothing but a one-line summary and writes target/lab-cache/current.env,
# which run.sh sources (KERNEL, INITRD, KV).
set -euo pipefail

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB/../.." && pwd)
CACHE=${LAB_CACHE:-$REPO/target/lab-cache}
export DEBIAN_FRONTEND=noninteractive

log() { echo "lab-setup: $*" >&2; }
die() { echo "lab-setup: ERROR: $*" >&2; exit 1; }

mkdir -p "$CACHE"
# Two VMs may be started at once; only one of them may download or build.
exec 9>"$CACHE/.setup.lock"
flock 9

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# `apt-get update` is slow and needs the network: run it at most once, and only when
# something could not be found or downloaded with the lists we have.
APT_UPDATED=
apt_update_once() {
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        $SUDO apt-get update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
}
apt_install() {
    log "apt-get install $*"
    if ! $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2; then
        apt_update_once
        $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
    fi
}

# ---- 1. host tools --------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
command -v depmod >/dev/null || [ -x /sbin/depmod ] || missing+=(kmod)
command -v file >/dev/null || missing+=(file)
command -v groff >/dev/null || missing+=(groff-base)
if [ ${#missing[@]} -gt 0 ]; then
    had_qemu_img=$(command -v qemu-img || true)
    apt_install "${missing[@]}"
    # qemu-system-x86 from the main archive conflicts with a backports qemu-utils and removes it;
    # put a matching qemu-img back so other users of this machine keep it.
    if [ -n "$had_qemu_img" ] && ! command -v qemu-img >/dev/null; then apt_install qemu-utils; fi
fi
export PATH=$PATH:/sbin:/usr/sbin

# ---- 2. kernel and guest userland -------------------------------------------------------------
kernel_pkg() {
    apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
        sed -n 's/^Depends: *\(linux-image-[^ ,]*\).*/\1/p' | head -1
}
# Guest userland: busybox for the shell and tools, device-mapper tools, Debian's multipathd
# (the reference daemon) with udev, kpartx and lvm2 (with their udev rules, as on a real
# host: 55-dm, 56-dm-mpath, 60-kpartx, 69-lvm, 95-dm-notify ...), and the shared libraries
# their binaries link to that a fresh host may lack.  glibc and libgcc_s always come from the
# host (same Debian release).
USERLAND="busybox-static dmsetup libdevmapper1.02.1 multipath-tools kpartx libaio1 liburcu8
 libudev1 libsystemd0 libjson-c5 libreadline8 libinih1 udev libedit2 libbsd0 libmd0
 libtinfo6 libkmod2 libacl1 libblkid1 libcap2 libselinux1 libpcre2-8-0 libgcrypt20
 libgpg-error0 liblzma5 libzstd1 liblz4-1 libssl3
 open-iscsi libopeniscsiusr libisns0 libmount1 lvm2 libdevmapper-event1.02.1"

# Sets KV and DIR from the candidate of linux-image-amd64, then downloads what DIR/debs lacks.
# Returns nonzero when a download fails (typically: the package lists are stale).
resolve_and_download() {
    local kpkg need=() p
    kpkg=$(kernel_pkg)
    [ -n "$kpkg" ] || return 1
    KV=${kpkg#linux-image-}
    DIR=$CACHE/$KV
    mkdir -p "$DIR/debs"
    for p in "$kpkg" $USERLAND; do
        compgen -G "$DIR/debs/${p}_*.deb" >/dev/null || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    log "apt-get download (into $DIR/debs) ${need[*]}"
    local rc=0
    (cd "$DIR/debs" && apt-get download -qq "${need[@]}") > "$DIR/download.log" 2>&1 || rc=1
    # apt warns that root downloads outside its sandbox user: expected here, not worth showing
    grep -v 'Download is performed unsandboxed' "$DIR/download.log" >&2 || true
    return $rc
}
if ! resolve_and_download; then
    apt_update_once
    resolve_and_download || die "cannot download the kernel (linux-image-amd64) and guest packages"
fi

# ---- 3. base initramfs ---------------------------------------------------------------------------
# Rebuild when the build script, the guest init or the set of debs changes.
stamp=$( { cat "$LAB/build-initrd.sh" "$LAB/init"; (cd "$DIR/debs" && ls); } | sha256sum | cut -c1-16)
if [ ! -f "$DIR/initrd.img" ] || [ ! -f "$DIR/vmlinuz" ] || [ "$(cat "$DIR/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building initramfs for $KV"
    "$LAB/build-initrd.sh" "$DIR" "$KV" >&2
    echo "$stamp" > "$DIR/initrd.stamp"
fi

cat > "$CACHE/current.env.tmp" <<ENV
KV=$KV
KERNEL=$DIR/vmlinuz
INITRD=$DIR/initrd.img
ENV
mv "$CACHE/current.env.tmp" "$CACHE/current.env"
# Caches of kernels that are no longer the candidate are dead weight (about 90 MB each).
for old in "$CACHE"/*/; do
    [ "${old%/}" = "$DIR" ] || [ ! -f "$old/initrd.stamp" ] || rm -rf "${old%/}"
done
log "ready: kernel $KV, initrd $(du -h "$DIR/initrd.img" | cut -f1) ($DIR)"
