#!/bin/sh
# Build the guest that scripts/vm/run.sh boots: a Debian 12 minbase root disk with the
# packages of provision.sh and a venv holding the project's Python dependencies (installed
# here, with the host's network, so the guest needs none), Debian's kernel (as the bzImage and
# as the uncompressed ELF that qemu boots directly) and a small busybox initramfs.
#
# Cached under $OVERLAYKIT_VM_CACHE (default /var/cache/overlaykit-vm, which outlives
# checkouts and `make clean`) by the hash of the files that shape the image; rebuilt only when
# one of them changes. Prints the image directory, and only that, on stdout: callers take it
# with IMAGE=$(build-image.sh), so every tool's own output goes to stderr (fd 3 is the real
# stdout).
set -eu
exec 3>&1 1>&2
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH LC_ALL=C.UTF-8

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${OVERLAYKIT_VM_CACHE:-/var/cache/overlaykit-vm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
MODULES="virtio_pci virtio_blk crc32c_generic ext4 9p 9pnet_virtio overlay"
VENV=/opt/overlaykit-venv

HASH=$(cat "$HERE/build-image.sh" "$HERE/provision.sh" "$HERE/kernel.py" "$HERE/initramfs-init" \
           "$HERE/guest-init" "$REPO/pyproject.toml" | sha256sum | cut -c1-16)
OUT=$CACHE/$HASH
if [ -f "$OUT/done" ]; then
    echo "$OUT" >&3
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "build-image.sh: run as root (debootstrap, chroot)" >&2; exit 1; }
for tool in debootstrap mkfs.ext4 cpio python3; do
    command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (make vm-deps)" >&2; exit 1; }
done

log() { echo "build-image.sh: $*"; }
TMP=$CACHE/tmp-$HASH
ROOT=$TMP/rootfs
cleanup() {
    for m in "$ROOT/dev" "$ROOT/proc"; do
        if mountpoint -q "$m" 2>/dev/null; then umount -l "$m"; fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$TMP"
mkdir -p "$TMP"

log "debootstrap $SUITE minbase into $ROOT"
PACKAGES=$("$HERE/provision.sh" --packages | tr ' ' ',')
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 \
    || { tail -20 "$TMP/debootstrap.log" >&2; exit 1; }

mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

# Debian's kernel, unpacked rather than installed: installing it would run initramfs-tools,
# and this image brings its own initramfs.
log "kernel"
chroot "$ROOT" apt-get update -q >/dev/null
KPKG=$(chroot "$ROOT" apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
(cd "$ROOT/tmp" && chroot "$ROOT" sh -c "cd /tmp && apt-get download -q $KPKG" >/dev/null)
# tar, not dpkg-deb -x, which would replace the merged-/usr symlink /lib with a directory
dpkg-deb --fsys-tarfile "$ROOT"/tmp/"$KPKG"_*.deb | tar -x --keep-directory-symlink -C "$ROOT"
KVER=${KPKG#linux-image-}
chroot "$ROOT" depmod "$KVER"

log "python dependencies into $VENV"
DEPS=$(python3 -c 'import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(" ".join(p["dependencies"] + p["optional-dependencies"]["test"]))' "$REPO/pyproject.toml")
chroot "$ROOT" python3 -m venv "$VENV"
# Wheels fetched by the host's pip (its index and certificates are set up; the chroot's are
# not), installed in the chroot from that directory only. Host and guest are both Debian 12.
PIP=${PIP:-$REPO/.venv/bin/pip}
[ -x "$PIP" ] || PIP="python3 -m pip"
$PIP download -q --only-binary=:all: -d "$ROOT/tmp/wheels" $DEPS
env -u PIP_FIND_LINKS chroot "$ROOT" "$VENV/bin/pip" install -q --no-index --find-links /tmp/wheels $DEPS
# The project itself is the guest's /src (the checkout, overlaid): a .pth, not an install.
SITE=$(chroot "$ROOT" "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo /src > "$ROOT$SITE/overlaykit-src.pth"
printf '#!%s/bin/python\nfrom overlaykit.cli.main import main\nmain()\n' "$VENV" > "$ROOT/usr/local/bin/overlaykit"
chmod 755 "$ROOT/usr/local/bin/overlaykit"
install -m 755 "$HERE/guest-init" "$ROOT/usr/local/sbin/overlaykit-guest"

umount "$ROOT/dev" "$ROOT/proc"
echo overlaykit-vm > "$ROOT/etc/hostname"
rm -rf "$ROOT"/tmp/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
       "$ROOT"/usr/share/locale/*
: > "$ROOT/etc/resolv.conf"

log "kernel $KVER: vmlinuz, vmlinux, initramfs"
mkdir -p "$TMP/image" "$TMP/initramfs/bin" "$TMP/initramfs/lib/modules"
cp "$ROOT/boot/vmlinuz-$KVER" "$TMP/image/vmlinuz"
python3 "$HERE/kernel.py" vmlinux "$TMP/image/vmlinuz" "$TMP/image/vmlinux" || log "no ELF kernel inside vmlinuz; run.sh boots the bzImage"
cp "$ROOT/bin/busybox" "$TMP/initramfs/bin/busybox"
install -m 755 "$HERE/initramfs-init" "$TMP/initramfs/init"
MODDIR=$ROOT/lib/modules/$KVER
for ko in $(python3 "$HERE/kernel.py" modules "$MODDIR" $MODULES); do
    name=$(basename "$ko")
    case "$name" in
        *.ko.xz) xz -dc "$MODDIR/$ko" > "$TMP/initramfs/lib/modules/${name%.xz}"; name=${name%.xz} ;;
        *.ko.zst) zstd -qdc "$MODDIR/$ko" > "$TMP/initramfs/lib/modules/${name%.zst}"; name=${name%.zst} ;;
        *) cp "$MODDIR/$ko" "$TMP/initramfs/lib/modules/$name" ;;
    esac
    echo "$name" >> "$TMP/initramfs/modules.order"
done
(cd "$TMP/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) > "$TMP/image/initramfs.gz"

log "root disk"
SIZE_MB=$(( $(du -sm "$ROOT" | cut -f1) * 13 / 10 + 4096 ))  # sparse: room for /tmp
mkfs.ext4 -q -L overlaykit-root -E root_owner=0:0 -d "$ROOT" "$TMP/image/root.img" "${SIZE_MB}M"
echo "$KVER" > "$TMP/image/kernel-version"
touch "$TMP/image/done"

# Only the newest image is kept.
for old in "$CACHE"/*/done; do
    [ -e "$old" ] && rm -rf "$(dirname "$old")"
done
mv "$TMP/image" "$OUT"
log "built $OUT"
echo "$OUT" >&3
