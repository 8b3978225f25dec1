#!/usr/bin/env bash
# `make demo`: Docker's storage path, step by step, with overlaykit and the project's test image.
#
#   sudo scripts/demo.sh IMAGE.tar        (IMAGE.tar from scripts/build-test-image.py)
#
# Every step prints the commands it runs ($ ...) and what they left on disk, so the store can
# be read beside /var/lib/docker. To add a step: `step "title"`, then `run` commands and
# `show` directories. The store is $DEMO_ROOT (default /var/lib/overlaykit-demo), wiped first.
set -euo pipefail

IMAGE=${1:?usage: scripts/demo.sh IMAGE.tar}
ROOT=${DEMO_ROOT:-/var/lib/overlaykit-demo}
TAG=overlaykit-demo:1
STORE=$ROOT/image/overlay2

die() { echo "demo: $*" >&2; exit 1; }

STEP=0
step() {  # step TITLE: start the next numbered step
    STEP=$((STEP + 1))
    printf '\n\033[1m== %d. %s\033[0m\n' "$STEP" "$*"
}

run() {  # run CMD...: print the command as a user would type it (quoted where needed), then run it
    local word line=
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then line+=" $word"; else line+=" '${word//\'/\'\\\'\'}'"; fi
    done
    printf '$%s\n' "$line"
    "$@"
}

ok() {  # ok ARGS...: run overlaykit on the demo store
    run overlaykit --root "$ROOT" "$@"
}

show() {  # show DIR [DEPTH]: what is on disk under DIR, like ls -l, with small text files' content
    local dir=${1%/} depth=${2:-2} path extra
    echo "$dir/"
    find "$dir" -mindepth 1 -maxdepth "$depth" | LC_ALL=C sort | while IFS= read -r path; do
        extra=
        case $(stat -c %F "$path") in
            "symbolic link") extra=" -> $(readlink "$path")" ;;
            "character special file") extra="  (char device $(stat -c '%Hr:%Lr' "$path"): a whiteout)" ;;
            directory)
                extra=/
                if [ "$(getfattr --only-values -n trusted.overlay.opaque "$path" 2>/dev/null)" = y ]; then
                    extra="/  (trusted.overlay.opaque=y)"
                fi ;;
            "regular file"*)
                if [ "$(stat -c %s "$path")" -le 200 ] && grep -Iq . "$path"; then
                    extra="  = $(paste -sd ' ' "$path")"
                fi ;;
        esac
        printf '  %s %s%s\n' "$(stat -c '%A %4u:%-4g %8s' "$path")" "${path#"$dir"/}" "$extra"
    done
}

top_cache_id() {  # the cache-id of the top layer: the chain ID no other chain names as its parent
    local chain
    for chain in "$STORE"/layerdb/sha256/*; do
        if ! grep -qs "${chain##*/}" "$STORE"/layerdb/sha256/*/parent; then
            cat "$chain/cache-id"
            return
        fi
    done
}

wipe_store() {  # unmount what a previous demo left mounted under ROOT, then remove it
    local entry
    [ -e "$ROOT" ] || return 0
    for entry in $(ls -A "$ROOT"); do
        case $entry in
            overlay2 | image | containers | volumes | tmp | lock) ;;
            *) die "$ROOT: holds $entry, so it is not an overlaykit store; refusing to wipe it (set DEMO_ROOT)" ;;
        esac
    done
    awk -v root="$ROOT" '$5 == root || index($5, root "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while IFS= read -r mnt; do umount -l "$mnt"; done
    rm -rf "$ROOT"
}

[ "$(id -u)" = 0 ] || die "run as root (or with sudo: sudo make demo): overlaykit mounts filesystems"
command -v overlaykit >/dev/null || die "overlaykit is not on PATH; run make deps"
command -v getfattr >/dev/null || die "getfattr is missing; run make deps (Debian's attr package)"
[ -f "$IMAGE" ] || die "$IMAGE: no such file; build it with scripts/build-test-image.py $IMAGE"
IMAGE=$(realpath "$IMAGE")
UNION=$(mktemp -d /tmp/overlaykit-demo-union.XXXXXX)
trap 'mountpoint -q "$UNION" && umount "$UNION"; rmdir "$UNION"' EXIT

step "A fresh store at $ROOT"
wipe_store
echo "(removed any previous demo store)"

step "The archive: an OCI image layout plus Docker's manifest.json"
run tar -tvf "$IMAGE"
run tar -xOf "$IMAGE" manifest.json; echo

step "Load it: every blob's digest is checked, every layer unpacked into overlay2/"
ok load "$IMAGE"

step "Layer directories: overlay2/<cache-id>/{diff,link,lower} and the short links in overlay2/l/"
show "$ROOT/overlay2" 2

TOP=$(top_cache_id)
step "The top layer's diff/: whiteouts are 0:0 character devices, an opaque directory has an xattr"
show "$ROOT/overlay2/$TOP/diff" 9

step "Layer metadata: layerdb/sha256/<chain-id>/{diff,cache-id,parent,size}"
show "$STORE/layerdb/sha256" 2

step "Image metadata: imagedb/content/sha256/<image-id> is the config; repositories.json the tags"
show "$STORE/imagedb" 4
run cat "$STORE/repositories.json"

step "overlaykit images"
ok images

step "overlaykit inspect $TAG"
ok inspect "$TAG"

step "The layers as one filesystem: overlayfs with the l/ names from the top layer's link and lower files"
LOWERS="l/$(cat "$ROOT/overlay2/$TOP/link")"
if [ -f "$ROOT/overlay2/$TOP/lower" ]; then LOWERS="$LOWERS:$(cat "$ROOT/overlay2/$TOP/lower")"; fi
run cd "$ROOT/overlay2"
run mount -t overlay overlay -o "ro,index=off,lowerdir=$LOWERS" "$UNION"
cd /
run ls -l "$UNION/opt" "$UNION/opt/app" "$UNION/opt/app/sub" "$UNION/var/cache/junk"
run cat "$UNION/etc/passwd"
run chroot "$UNION" /bin/sh -c 'cat /opt/app/b.sym; stat -c "%A %U %n" /opt/app/b /home/app'
run umount "$UNION"

# --- persistent and non-persistent storage: the container layer, binds, volumes, tmpfs ---
graph_dir() {  # graph_dir NAME KEY: the container's GraphDriver.Data KEY (UpperDir, MergedDir)
    overlaykit --root "$ROOT" inspect "$1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["GraphDriver"]["Data"][sys.argv[1]])' "$2"
}
HOST=$(mktemp -d /tmp/overlaykit-demo-host.XXXXXX)

step "Run a container that touches /newfile: it lands in the writable layer's diff/; merged/ is the union"
ok run -d --name seed "$TAG" sh -c 'touch /newfile; exec sleep 600'
UPPER=$(graph_dir seed UpperDir)
MERGED=$(graph_dir seed MergedDir)
while [ ! -e "$UPPER/newfile" ]; do sleep 0.1; done
show "$UPPER" 1
run ls "$MERGED"
run grep " $MERGED " /proc/self/mountinfo

step "Remove the container: its layer (diff/, merged/) is gone, the image's layers are untouched"
ok rm -f -v seed
[ -e "$UPPER" ] || echo "(${UPPER%/diff} is gone)"
show "$ROOT/overlay2" 1

step "A bind mount, -v $HOST:/app/local: what the container writes is on the host after rm"
ok run --name bind -v "$HOST:/app/local" "$TAG" sh -c 'echo written in the container > /app/local/note'
ok rm -v bind
show "$HOST" 1

step "A named volume: create it, write to it, remove the container; a new container sees the data"
ok volume create myvol
ok run --name writer -v myvol:/app/code "$TAG" sh -c 'echo version 1 > /app/code/main.sh'
ok rm -v writer   # -v: the anonymous /data volume goes; a named one never does
show "$ROOT/volumes" 3
ok run --rm -v myvol:/app/code "$TAG" cat /app/code/main.sh

step "tmpfs: --tmpfs /scratch is in the container's mountinfo, and nothing of it is left after"
ok run --name scratch --tmpfs /scratch:size=64m "$TAG" sh -c 'echo lost > /scratch/f; grep " /scratch " /proc/self/mountinfo'
show "$(graph_dir scratch UpperDir)" 2
echo "mounts left under $ROOT: $(grep -c " $ROOT/" /proc/self/mountinfo || true)"
ok rm -v scratch

# --- changes out: what a container changed, as a layer, as an image, as an archive ---
step "What a container changed: diff/ holds whiteouts for deletions; overlaykit diff prints A/C/D as docker diff does"
ok run --name changer "$TAG" sh -c 'touch /newfile; rm /etc/motd; echo x >> /opt/app/b; rm -rf /var/cache/junk; mv /opt/app/sub /opt/app/moved'
show "$(graph_dir changer UpperDir)" 4
ok diff changer

step "Commit it: the upper dir becomes a layer (whiteouts back to .wh. files), stored like any loaded layer"
ok commit -m "demo changes" -c 'CMD ["cat", "/opt/app/b"]' changer overlaykit-demo:2
ok history overlaykit-demo:2
ok run --rm overlaykit-demo:2

step "Save it: an archive docker load and skopeo read; the new layer's .wh. entries are in it"
SAVED=$HOST/demo2.tar
ok save -o "$SAVED" overlaykit-demo:2
run tar -tf "$SAVED"
LAST=$(tar -xOf "$SAVED" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Layers"][-1])')
run sh -c "tar -xOf '$SAVED' $LAST | tar -tvf -"
ok rm -v changer
