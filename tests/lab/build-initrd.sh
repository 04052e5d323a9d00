#!/bin/bash
# usage: build-initrd.sh DIR KV
# Build DIR/initrd.img and DIR/vmlinuz from the debs in DIR/debs (kernel KV + guest userland).
# Called by setup.sh; the unpacked trees are temporary, only the two boot files are kept.
set -euo pipefail
DIR=$1 KV=$2
LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH=$PATH:/sbin:/usr/sbin
B=$DIR/build
rm -rf "$B"; mkdir -p "$B/kroot" "$B/sysroot"
trap 'rm -rf "$B"' EXIT

dpkg-deb -x "$DIR"/debs/linux-image-"$KV"_*.deb "$B/kroot"
for d in "$DIR"/debs/*.deb; do
    case $d in */linux-image-*) ;; *) dpkg-deb -x "$d" "$B/sysroot" ;; esac
done
depmod -b "$B/kroot" "$KV"     # the kernel .deb ships no modules.dep

R=$B/initrd
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,run,tmp,mnt,results,var,root}
ln -s ../run "$R/var/run"

# 1. kernel modules with their dependency closure, resolved by modprobe against the unpacked kernel
MODS="dm-mod dm-multipath dm-round-robin dm-queue-length dm-service-time dm-zero dm-flakey dm-delay
 scsi_debug sd_mod sg scsi_dh_alua scsi_dh_emc scsi_dh_rdac loop fuse 9p 9pnet_virtio virtio_pci
 crct10dif_generic crct10dif-pclmul crc64_rocksoft_generic
 target_core_mod target_core_iblock target_core_file tcm_loop iscsi_target_mod iscsi_tcp crc32c_generic
 nvme-tcp nvmet-tcp"
# (the LIO target for topo_tcm_loop: tcm_loop ports in front of iblock/fileio backstores;
#  configfs is a module in Debian's kernel and comes in as their dependency; for topo_iscsi
#  LIO's iSCSI target and the open-iscsi initiator's kernel half, iscsi_tcp, with libiscsi and
#  scsi_transport_iscsi as its dependencies; the target wants the crc32c hash at every login;
#  for topo_nvme_tcp the NVMe/TCP host (nvme-tcp, with nvme-fabrics and nvme-core) and the
#  kernel's NVMe target, nvmet, with its TCP transport)
for m in $MODS; do
    modprobe -d "$B/kroot" -S "$KV" --show-depends "$m" || { echo "module $m not found in $KV" >&2; exit 1; }
done | awk '$1=="insmod"{print $2}' | sort -u | while read -r f; do
    rel=${f#"$B"/kroot/}
    mkdir -p "$R/$(dirname "$rel")"; cp "$f" "$R/$rel"
done
cp "$B"/kroot/lib/modules/"$KV"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KV/"
depmod -b "$R" "$KV"

# 2. guest userland from the debs, without documentation and service files
cp -a "$B/sysroot/." "$R/"
rm -rf "$R"/usr/share/{doc,man,lintian,bug,initramfs-tools,locale,bash-completion} "$R/lib/systemd/system" "$R/etc/init.d"

# 3. shared libraries of every ELF in the tree: from the debs first, then from the host (glibc, libgcc_s)
LP=$B/sysroot/lib:$B/sysroot/lib/x86_64-linux-gnu:$B/sysroot/usr/lib/x86_64-linux-gnu:$B/sysroot/lib/multipath:$B/sysroot/usr/lib/x86_64-linux-gnu/systemd:$B/sysroot/lib/systemd
find "$R" -type f \( -perm -u+x -o -name '*.so*' \) | while read -r f; do
    file -b "$f" | grep -q 'ELF.*dynamic' || continue
    LD_LIBRARY_PATH=$LP ldd "$f" 2>/dev/null | sed "s|^|$f: |"
done > "$B/ldd.txt"
if grep 'not found' "$B/ldd.txt" >&2; then echo "build-initrd: unresolved shared libraries (above)" >&2; exit 1; fi
awk '$3=="=>" && $4 ~ /^\// {print $4} $2 ~ /^\/lib64\// {print $2}' "$B/ldd.txt" | sort -u | while read -r lib; do
    case $lib in "$B"/sysroot/*) continue ;; esac
    mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"
done
mkdir -p "$R/lib64" "$R/lib/x86_64-linux-gnu"
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
# glibc dlopen()s libgcc_s for pthread_cancel; multipathd dies without it and ldd does not list it
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/lib/x86_64-linux-gnu/"

# 4. minimal /etc
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\ntape:x:26:\ncdrom:x:24:\ndialout:x:20:\nkmem:x:15:\ntty:x:5:\naudio:x:29:\nvideo:x:44:\nkvm:x:104:\ninput:x:105:\nrender:x:106:\nsgx:x:107:\n' > "$R/etc/group"
printf '/lib\n/lib/multipath\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' > "$R/etc/ld.so.conf"
ldconfig -r "$R"

# 5. init and the boot files
cp "$LAB/init" "$R/init"; chmod +x "$R/init"
cp "$B"/kroot/boot/vmlinuz-"$KV" "$DIR/vmlinuz"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$DIR/initrd.img.tmp"
mv "$DIR/initrd.img.tmp" "$DIR/initrd.img"
echo "build-initrd: $DIR/initrd.img ($(du -h "$DIR/initrd.img" | cut -f1), $(find "$R/lib/modules" -name '*.ko' | wc -l) modules)"
