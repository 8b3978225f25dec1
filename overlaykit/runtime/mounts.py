"""A container's bind mounts, volumes and tmpfs mounts: made ready on the host, mounted into its root.

Every destination is resolved inside the container's root (openat2 RESOLVE_IN_ROOT), and every
mount lands on /proc/self/fd/<fd> of that resolved handle, so a symlink in the image (say
/app -> /etc, or -> /proc/1/root/...) can never redirect a mount onto the host.
"""

import errno
import fcntl
import os
import posixpath
import stat
from contextlib import contextmanager
from typing import Iterator, NamedTuple, Sequence

from overlaykit.errors import OverlaykitError
from overlaykit.linux.mount import (MS_BIND, MS_NODEV, MS_RDONLY, MS_REC, mount, remount_bind,
                                    set_propagation)
from overlaykit.linux.mountinfo import mount_containing
from overlaykit.linux.newmount import MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY, mount_setattr
from overlaykit.linux.openat2 import (RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
                                      open_in_root, openat2)
from overlaykit.linux.tree import remove_tree
from overlaykit.runtime.mountspec import MountSpec, inspect_entry
from overlaykit.store import volumes
from overlaykit.store.layout import Layout


class ResolvedMount(NamedTuple):
    """One mount with every name turned into a host path: what the container's child mounts."""

    type: str                  # "bind", "volume" or "tmpfs"
    destination: str           # absolute path inside the container
    source: str = ""           # bind: the host path; volume: its _data directory; tmpfs: ""
    readonly: bool = False
    propagation: str = ""      # bind only ("" for volumes and tmpfs, which stay private)
    copy_up: bool = False      # volume: fill it from the image's content when it is empty
    tmpfs_options: tuple[str, ...] = ()


def create_volumes(layout: Layout, specs: Sequence[MountSpec]) -> list[MountSpec]:
    """Create each named volume that is missing and name each anonymous one (64 hex, as Docker)."""
    named = []
    for spec in specs:
        if spec.type == "volume":
            anonymous = not spec.source
            spec = spec._replace(source=spec.source or volumes.new_anonymous_name())
            volumes.create(layout, spec.source, anonymous=anonymous)
        named.append(spec)
    return named


def record_mounts(layout: Layout, specs: Sequence[MountSpec]) -> list[dict]:
    """The record's "Mounts", as `docker inspect` shows them (volumes named already)."""
    entries = [inspect_entry(spec, layout.volume_data(spec.source) if spec.type == "volume" else "")
               for spec in specs]
    return [entry for entry in entries if entry is not None]


def resolve(layout: Layout, specs: Sequence[MountSpec]) -> list[ResolvedMount]:
    """Host paths for the specs (volumes already created); -v makes a missing bind source, --mount refuses."""
    resolved = []
    for spec in specs:
        if spec.type == "bind":
            if not os.path.lexists(spec.source):
                if not spec.create_source:
                    raise OverlaykitError(f"{spec.option}: bind source path does not exist: {spec.source}")
                os.makedirs(spec.source, mode=0o755)
            check_source_propagation(spec)
            resolved.append(ResolvedMount("bind", spec.destination, spec.source, spec.readonly,
                                          spec.propagation))
        elif spec.type == "volume":
            if not volumes.exists(layout, spec.source):
                raise OverlaykitError(f"{spec.option}: no such volume: {spec.source}")
            resolved.append(ResolvedMount("volume", spec.destination,
                                          layout.volume_data(spec.source), spec.readonly,
                                          copy_up=not spec.nocopy))
        else:
            resolved.append(ResolvedMount("tmpfs", spec.destination, readonly=spec.readonly,
                                          tmpfs_options=spec.tmpfs_options))
    return resolved


def check_source_propagation(spec: MountSpec) -> None:
    """As Docker: a shared bind needs a shared source mount, a slave one a shared or slave one;
    otherwise the container's copy would have no peer or master on the host to hear from."""
    if spec.propagation in ("shared", "rshared"):
        tags, kind = ("shared:",), "a shared"
    elif spec.propagation in ("slave", "rslave"):
        tags, kind = ("shared:", "master:"), "a shared or slave"
    else:
        return
    entry = mount_containing(spec.source)
    if not any(tag.startswith(tags) for tag in entry.propagation.split()):
        raise OverlaykitError(f"{spec.option}: path {spec.source} is mounted on {entry.mount_point} "
                              f"but it is not {kind} mount")


def mount_bind(root_fd: int, destination: str, source: str, readonly: bool = False,
               propagation: str = "rprivate", copy_up: bool = False, nodev: bool = True) -> None:
    """Bind source (a host path, or a volume's _data) on destination inside the root.

    Called in the container's own mount namespace, before pivot_root. A volume that is still
    empty is filled from what the image has at destination first, as Docker does.
    """
    target = make_target(root_fd, destination, is_file=not os.path.isdir(source))
    beneath = _mount_id(target)
    try:
        if copy_up:
            copy_up_into(target, source)
        mount(source, _proc_fd(target), None, MS_BIND | MS_REC)
    finally:
        os.close(target)
    mounted = _reopen_mounted(root_fd, destination, beneath)
    try:
        restrict(mounted, readonly, nodev)
        set_propagation(_proc_fd(mounted), propagation or "rprivate")
    finally:
        os.close(mounted)


@contextmanager
def target_in_root(root_fd: int, path: str, directory: bool = True) -> Iterator[str]:
    """A /proc/self/fd path naming `path` as resolved inside the root (made if missing), to mount on."""
    fd = make_target(root_fd, path, is_file=not directory)
    try:
        yield _proc_fd(fd)
    finally:
        os.close(fd)


def _proc_fd(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def make_target(root_fd: int, destination: str, is_file: bool, links_left: int = 40) -> int:
    """An O_PATH fd for destination inside root, creating it (and its parents) there if missing.

    A dangling symlink on the way is followed the way the container would see it: what it
    points to is made inside root, as runc does.
    """
    try:
        return open_in_root(root_fd, destination)
    except FileNotFoundError:
        pass
    parent = make_dirs(root_fd, posixpath.dirname(destination), links_left)
    name = posixpath.basename(destination)
    try:
        if is_file:
            # runc's choice of mode for the empty file a file bind is mounted over
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o755, dir_fd=parent))
        else:
            os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        os.close(make_target(root_fd, _link_target(parent, name, destination, links_left),
                             is_file, links_left - 1))
    finally:
        os.close(parent)
    return open_in_root(root_fd, destination)


def make_dirs(root_fd: int, path: str, links_left: int = 40) -> int:
    """An O_PATH fd for directory path inside root, each missing component made with mkdirat."""
    fd = os.dup(root_fd)
    done = ""
    try:
        for name in [p for p in path.split("/") if p]:
            done += "/" + name
            try:
                next_fd = open_in_root(root_fd, done, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    os.close(make_dirs(root_fd, _link_target(fd, name, done, links_left),
                                       links_left - 1))
                next_fd = open_in_root(root_fd, done, os.O_PATH | os.O_DIRECTORY)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _link_target(dir_fd: int, name: str, path: str, links_left: int) -> str:
    """Where the dangling symlink name (at path, inside root) points, as a path inside root."""
    if links_left <= 0:
        raise OverlaykitError(f"mount destination {path}: too many levels of symbolic links")
    target = os.readlink(name, dir_fd=dir_fd)
    return target if target.startswith("/") else posixpath.dirname(path) + "/" + target


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return int(next(line.split()[1] for line in f if line.startswith("mnt_id:")))


def _reopen_mounted(root_fd: int, destination: str, beneath: int) -> int:
    """An O_PATH fd for the mount just made: the old handle still names the directory beneath it."""
    fd = open_in_root(root_fd, destination)
    if _mount_id(fd) == beneath:
        os.close(fd)
        raise OverlaykitError(f"mount destination {destination}: changed while it was being mounted")
    return fd


def restrict(fd: int, readonly: bool, nodev: bool = True) -> None:
    """nodev, and ro if asked, for the mount and every mount under it (mount_setattr, 5.12+; the top alone before).

    nodev unless --privileged: a device node in a bind or volume, or one the container makes
    there (Docker's default capabilities include MKNOD), must not open the host's device.
    Docker's device cgroup refuses the same opens.
    """
    attrs = (MOUNT_ATTR_NODEV if nodev else 0) | (MOUNT_ATTR_RDONLY if readonly else 0)
    if not attrs:
        return
    try:
        mount_setattr(fd, attr_set=attrs, recursive=True, what=f"nodev {_proc_fd(fd)}")
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        remount_bind(_proc_fd(fd), (MS_NODEV if nodev else 0) | (MS_RDONLY if readonly else 0))


COPYING = ".copying"  # beside a volume's _data while a copy-up fills it: a crash half way shows


def copy_up_into(target: int, volume_dir: str) -> None:
    """Copy what the image has at the destination into an empty volume, as Docker does on first use.

    Under the volume's lock (an flock on volumes/<name>/, the directory holding _data): a
    container starting beside this one waits for the whole copy, then finds the volume full
    and copies nothing. A copy a crash cut short left its marker: it is emptied and done again.
    """
    if not os.path.isdir(_proc_fd(target)):
        return
    holder = os.path.dirname(volume_dir)
    lock = os.open(holder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        dst = os.open(volume_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            interrupted = COPYING in os.listdir(lock)
            if os.listdir(dst) and not interrupted:
                return
            os.close(os.open(COPYING, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=lock))
            for name in os.listdir(dst):
                remove_tree(name, dir_fd=dst)
            src = os.open(_proc_fd(target), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                copy_tree(src, dst)
            finally:
                os.close(src)
            os.unlink(COPYING, dir_fd=lock)
        finally:
            os.close(dst)
    finally:
        os.close(lock)


def _open_dir_beneath(root: int, rel: str) -> int:
    """Directory rel below root, reached without following any symlink (a swapped-in link fails)."""
    return openat2(root, rel or ".", os.O_RDONLY | os.O_DIRECTORY,
                   resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)


def copy_tree(src_root: int, dst_root: int) -> None:
    """Copy the tree at src_root into dst_root by fd: modes, owners, times, xattrs, symlinks, hard links.

    No recursion and one directory open at a time, so an image's 2000-deep directory chain
    costs neither stack nor file descriptors; directories get their attributes last, deepest
    first, once nothing more is made in them. A symlink is copied as a link, never followed;
    a FIFO or device is made with mknod, never opened.
    """
    links: dict[tuple[int, int], str] = {}
    pending = [""]                                 # directories to fill, relative to the roots
    finish: list[tuple[str, os.stat_result]] = [("", os.fstat(src_root))]
    while pending:
        rel = pending.pop()
        src, dst = _open_dir_beneath(src_root, rel), _open_dir_beneath(dst_root, rel)
        try:
            for name in sorted(os.listdir(src)):
                path = f"{rel}/{name}".lstrip("/")
                st = os.stat(name, dir_fd=src, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(name, 0o700, dir_fd=dst)
                    pending.append(path)
                    finish.append((path, st))
                else:
                    _copy_entry(src, dst, dst_root, name, path, st, links)
        finally:
            os.close(src)
            os.close(dst)
    for rel, st in reversed(finish):
        src, dst = _open_dir_beneath(src_root, rel), _open_dir_beneath(dst_root, rel)
        try:
            _copy_attributes(src, dst, st)
        finally:
            os.close(src)
            os.close(dst)


def _copy_entry(src: int, dst: int, dst_root: int, name: str, path: str, st: os.stat_result,
                links: dict[tuple[int, int], str]) -> None:
    """Copy one non-directory; one met again by inode becomes a hard link to the first copy."""
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links:
        os.link(links[key], name, src_dir_fd=dst_root, dst_dir_fd=dst, follow_symlinks=False)
        return
    if stat.S_ISREG(st.st_mode):
        s_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src)
        d_fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600, dir_fd=dst)
        try:
            while os.sendfile(d_fd, s_fd, None, 1 << 30):
                pass
            _copy_attributes(s_fd, d_fd, st)
        finally:
            os.close(s_fd)
            os.close(d_fd)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        d_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
        try:
            os.chown(_proc_fd(d_fd), st.st_uid, st.st_gid)
            os.chmod(_proc_fd(d_fd), stat.S_IMODE(st.st_mode))
            os.utime(_proc_fd(d_fd), ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(d_fd)
    else:
        return  # a socket means nothing without its listener; Docker skips it too
    if st.st_nlink > 1:
        links[key] = path


def _copy_attributes(src: int, dst: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then xattrs, then times (everything else bumps them)."""
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    for attr in os.listxattr(src):
        try:
            os.setxattr(dst, attr, os.getxattr(src, attr))
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
