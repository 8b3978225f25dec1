#!/bin/sh
# Turn build-image.sh's image into a local libvirt box, so `vagrant up` needs no download:
# the same Debian 12 disk plus systemd, sshd, sudo and the vagrant user with Vagrant's
# well-known insecure key (Vagrant replaces it on first boot), DHCP through systemd-networkd
# on the one interface vagrant-libvirt gives it; booted from the image's kernel and initramfs.
#
#   vagrant-box.sh [BOX]    default build/vagrant/overlaykit-local.box
#   vagrant box add --name overlaykit/bookworm build/vagrant/overlaykit-local.box
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH LC_ALL=C.UTF-8

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BOX=${1:-$REPO/build/vagrant/overlaykit-local.box}
KEY=${VAGRANT_INSECURE_KEY:-$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1)}
[ -n "$KEY" ] && [ -f "$KEY" ] || { echo "vagrant-box.sh: Vagrant's insecure vagrant.pub not found (install vagrant or set VAGRANT_INSECURE_KEY)" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "vagrant-box.sh: qemu-img is missing (make vm-deps)" >&2; exit 1; }

IMAGE=$("$HERE/build-image.sh")
WORK=$(mktemp -d /var/tmp/overlaykit-box.XXXXXX)
MNT=$WORK/mnt
cleanup() {
    for m in "$MNT/dev" "$MNT/proc" "$MNT"; do
        if mountpoint -q "$m" 2>/dev/null; then umount "$m" || umount -l "$m"; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$MNT" "$WORK/box"
cp --sparse=always "$IMAGE/root.img" "$WORK/root.raw"
mount -o loop "$WORK/root.raw" "$MNT"
mount -t proc proc "$MNT/proc"
mount --bind /dev "$MNT/dev"
cp /etc/resolv.conf "$MNT/etc/resolv.conf"

chroot "$MNT" apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive chroot "$MNT" apt-get install -y -q --no-install-recommends \
    systemd-sysv openssh-server sudo >/dev/null
chroot "$MNT" useradd -m -s /bin/bash vagrant
echo "vagrant:vagrant" | chroot "$MNT" chpasswd
echo "vagrant ALL=(ALL) NOPASSWD:ALL" > "$MNT/etc/sudoers.d/vagrant"
chmod 440 "$MNT/etc/sudoers.d/vagrant"
install -d -m 700 "$MNT/home/vagrant/.ssh"
install -m 600 "$KEY" "$MNT/home/vagrant/.ssh/authorized_keys"
chroot "$MNT" chown -R vagrant:vagrant /home/vagrant/.ssh
printf '[Match]\nName=e*\n\n[Network]\nDHCP=yes\n' > "$MNT/etc/systemd/network/80-dhcp.network"
chroot "$MNT" systemctl enable systemd-networkd >/dev/null 2>&1
echo "/dev/vda / ext4 defaults 0 1" > "$MNT/etc/fstab"
rm -rf "$MNT"/var/lib/apt/lists/* "$MNT"/var/cache/apt/*.bin "$MNT"/var/cache/apt/archives/*.deb
: > "$MNT/etc/resolv.conf"
umount "$MNT/dev" "$MNT/proc" "$MNT"

qemu-img convert -c -O qcow2 "$WORK/root.raw" "$WORK/box/box.img"
cp "$IMAGE/vmlinuz" "$IMAGE/initramfs.gz" "$WORK/box/"
GB=$(( ($(stat -c %s "$WORK/root.raw") + 1073741823) / 1073741824 ))
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$GB" > "$WORK/box/metadata.json"
cat > "$WORK/box/Vagrantfile" <<'VAGRANTFILE'
# The box's own defaults: boot the kernel and initramfs that came in the box.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.join(File.dirname(__FILE__), "vmlinuz")
    libvirt.initrd = File.join(File.dirname(__FILE__), "initramfs.gz")
    libvirt.cmd_line = "console=ttyS0 net.ifnames=0 overlaykit.init=/sbin/init"
  end
end
VAGRANTFILE
mkdir -p "$(dirname "$BOX")"
tar -C "$WORK/box" -cf "$BOX.tmp" metadata.json Vagrantfile box.img vmlinuz initramfs.gz
mv "$BOX.tmp" "$BOX"
echo "$BOX"
