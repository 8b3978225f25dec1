#!/bin/sh
# Boot a throwaway qemu guest from build-image.sh's image and run CMD as root in /src: a
# snapshot of the checkout, shared read-only over 9p and made writable inside by an overlay
# with a tmpfs upper. Its output is shown as it comes and its exit code is run.sh's (125: the
# guest never said, and its serial console is shown). Nothing is left running: qemu has a
# timeout and is killed on any exit. The guest has no network device at all.
#
#   run.sh [--out DIR] [--timeout SECONDS] CMD...
#
#   --out DIR   a directory the guest sees as $OVERLAYKIT_VM_OUT (/mnt/out), for results
#   VM_CPUS (2), VM_MEMORY (2048, MiB), VM_ACCEL (kvm|tcg, default: probe once per image)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=""
TIMEOUT=${VM_TIMEOUT:-3600}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --) shift; break ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: run.sh [--out DIR] [--timeout SECONDS] CMD..." >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "run.sh: qemu-system-x86_64 is missing (make vm-deps)" >&2; exit 1; }

IMAGE=$("$HERE/build-image.sh")
KERNEL=$IMAGE/vmlinux
[ -f "$KERNEL" ] || KERNEL=$IMAGE/vmlinuz

RUN=$(mktemp -d "${TMPDIR:-/tmp}/overlaykit-vm.XXXXXX")
QEMU_PID=""
cleanup() {
    if [ -n "$QEMU_PID" ]; then
        kill -TERM "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A snapshot of the checkout (what git tracks or would track, as it is on disk now), so edits
# made on the host while the guest runs cannot change files under the guest's overlay.
mkdir "$RUN/src"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$REPO" ls-files -z -co --exclude-standard \
        | tar -C "$REPO" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$RUN/src" -xf -
else
    tar -C "$REPO" --exclude=./.venv --exclude=./build --exclude=./.git -cf - . | tar -C "$RUN/src" -xf -
fi

SHARE=${OUT:-$RUN/out}
mkdir -p "$SHARE"
SHARE=$(cd "$SHARE" && pwd)
rm -f "$SHARE/rc"
printf '%s\n' "$*" > "$SHARE/cmd"
: > "$SHARE/output"

# qemu SECONDS ACCEL LOG APPEND [qemu args...]: one guest (run it with &), killed after SECONDS,
# its serial console in LOG.
qemu() {
    seconds=$1 accel=$2 log=$3 append=$4
    shift 4
    if [ "$accel" = kvm ]; then cpu=host; else cpu=max; fi
    exec timeout -k 5 "$seconds" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" \
        -m "${VM_MEMORY:-2048}" -smp "${VM_CPUS:-2}" \
        -nodefaults -display none -no-reboot -monitor none -serial "file:$log" -nic none \
        -kernel "$KERNEL" -initrd "$IMAGE/initramfs.gz" \
        -append "console=ttyS0 quiet panic=-1 $append" "$@" </dev/null
}

# /dev/kvm may exist yet refuse to run a stock kernel: boot the initramfs once and see.
probe_kvm() {
    [ -w /dev/kvm ] || return 1
    qemu 20 kvm "$RUN/probe.log" overlaykit.probe >/dev/null 2>&1 &
    QEMU_PID=$!
    found=1
    for _ in $(seq 1 40); do
        if grep -q OVERLAYKIT-PROBE-OK "$RUN/probe.log" 2>/dev/null; then found=0; break; fi
        kill -0 "$QEMU_PID" 2>/dev/null || break
        sleep 0.5
    done
    kill -TERM "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=""
    return $found
}

ACCEL=${VM_ACCEL:-}
if [ -z "$ACCEL" ]; then
    cached=$IMAGE/accel.$(uname -r)
    if [ ! -f "$cached" ]; then
        if probe_kvm; then echo kvm; else echo tcg; fi > "$cached"
    fi
    ACCEL=$(cat "$cached")
fi

# /tmp for the guest: a fresh sparse ext4 disk, written without caring for crashes.
truncate -s 16G "$RUN/scratch.img"
mkfs.ext4 -q -F -O ^has_journal -E lazy_itable_init=1 "$RUN/scratch.img"

echo "run.sh: booting $(cat "$IMAGE/kernel-version") ($ACCEL) for: $*" >&2
: > "$RUN/console.log"
qemu "$TIMEOUT" "$ACCEL" "$RUN/console.log" "" \
    -drive "file=$IMAGE/root.img,format=raw,if=virtio,snapshot=on,cache=unsafe" \
    -drive "file=$RUN/scratch.img,format=raw,if=virtio,cache=unsafe" \
    -virtfs "local,path=$RUN/src,mount_tag=src,security_model=none,readonly=on" \
    -virtfs "local,path=$SHARE,mount_tag=out,security_model=none" &
QEMU_PID=$!
# Show the output as it comes; tail stops when qemu (or its timeout) does.
tail -n +1 -f --pid="$QEMU_PID" "$SHARE/output"
wait "$QEMU_PID" || true
QEMU_PID=""

if [ ! -f "$SHARE/rc" ]; then
    tr -d '\r' < "$RUN/console.log" >&2
    echo "run.sh: the guest reported no exit code (crash, or the ${TIMEOUT}s timeout); its console is above" >&2
    exit 125
fi
exit "$(cat "$SHARE/rc")"
