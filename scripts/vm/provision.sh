#!/bin/sh
# What a fresh Debian 12 machine (a Vagrant box, a cloud VM, the image of build-image.sh)
# needs to run `make test`: the Debian packages below, then the Makefile's own deps step.
#
#   provision.sh [SRC]      install the packages, then `make -C SRC deps` (SRC: /vagrant, the checkout)
#   provision.sh --packages print the package list (build-image.sh bakes it into the image)
set -eu

# Keep in step with APT_PKGS in the Makefile; make, ca-certificates for pip, kmod for modprobe.
PACKAGES="make ca-certificates kmod python3 python3-venv busybox-static iproute2 util-linux attr zstd"

if [ "${1:-}" = "--packages" ]; then
    echo "$PACKAGES"
    exit 0
fi

SRC=${1:-/vagrant}
[ "$(id -u)" -eq 0 ] || { echo "provision.sh: run as root" >&2; exit 1; }

missing=""
for p in $PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# overlayfs is a module on Debian's kernels; load it now so the first test does not race udev.
modprobe overlay 2>/dev/null || true

make -C "$SRC" deps
