#!/bin/sh
# Builds the .deb of our multipathd (make deb): BIN is the binary to ship, OUTDIR where the
# package goes. Plain dpkg-deb, no debhelper. The package puts our daemon, its systemd
# units and man pages where Debian's multipath-tools has its own, each of those moved
# aside by dpkg-divert (to NAME.distrib) for as long as the package is installed;
# multipath, kpartx, the udev rules and libraries stay Debian's.
set -eu
BIN=$1
OUTDIR=$2
top=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/Cargo.toml" | head -n1)-1
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT

make -s -C "$top" install-files DESTDIR="$stage" BIN="$BIN" SBINDIR=/sbin PREFIX=/usr
gzip -9n "$stage"/usr/share/man/man*/*
# The files Debian's multipath-tools ships at the same paths (the diversions).
diverted=$(cd "$stage" && find . -type f | sed 's|^\.||' | sort | tr '\n' ' ')

mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: multipathd-rs
Version: $version
Architecture: $arch
Maintainer: multipathd (Rust) developers <root@localhost>
Depends: libc6 (>= 2.34)
Recommends: multipath-tools
Section: admin
Priority: optional
Installed-Size: $(du -sk "$stage" | cut -f1)
Description: drop-in Rust replacement for the multipath-tools daemon
 Replaces /sbin/multipathd of multipath-tools (diverted to /sbin/multipathd.distrib)
 together with its systemd units and man pages; the multipath tool, kpartx and the
 udev rules of multipath-tools keep working with it. Removing the package puts
 Debian's daemon back.
CONTROL

# Maintainer scripts run chrootless under `dpkg --root` too (DPKG_ROOT set; dpkg-divert
# honours it); systemd on the host is only told when the package lands on the host.
cat > "$stage/DEBIAN/preinst" <<SCRIPT
#!/bin/sh
set -e
if [ "\$1" = install ] || [ "\$1" = upgrade ]; then
    for f in $diverted; do
        dpkg-divert --package multipathd-rs --add --rename --divert "\$f.distrib" "\$f"
    done
fi
SCRIPT
cat > "$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl try-restart multipathd.service || true
fi
SCRIPT
cat > "$stage/DEBIAN/postrm" <<SCRIPT
#!/bin/sh
set -e
case "\$1" in
remove|abort-install|abort-upgrade|disappear)
    for f in $diverted; do
        dpkg-divert --package multipathd-rs --remove --rename --divert "\$f.distrib" "\$f"
    done
    if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
    ;;
esac
SCRIPT
chmod 0755 "$stage/DEBIAN/preinst" "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"
mkdir -p "$OUTDIR"
dpkg-deb --root-owner-group --build "$stage" "$OUTDIR/multipathd-rs_${version}_${arch}.deb" >/dev/null
echo "$OUTDIR/multipathd-rs_${version}_${arch}.deb"
