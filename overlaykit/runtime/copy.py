"""`cp`: files between a container and the host, or a tar stream, as `docker cp` copies them.

Every container path is resolved inside the container's root with openat2(RESOLVE_IN_ROOT),
like a mount destination: a symlink in the image (/evil -> ../../../etc) leads to the
container's own /etc, never the host's, and the tar in between is extracted with the layer
unpacker's checks (image/unpack.extract), so no name in it climbs out of the destination.

A running container is reached through /proc/<pid>/root, so its volumes, binds and tmpfs
mounts are part of what cp sees, as Docker mounts them for cp; its pseudo filesystems
(/proc, /sys, cgroups, /dev/pts, /dev/mqueue) are neither read nor written: a write there
would be the host's root writing kernel settings. A stopped container gets its overlay
mounted in a mount namespace of this process alone (gone when it exits, whatever happens),
under the container's supervisor lock so it cannot start meanwhile, with its binds and
volumes mounted in it; what is copied in lands in its writable layer (or its volume).

Docker's rules for names: a relative container path is relative to "/"; SRC ending in "/"
must be a directory; SRC ending in "/." copies the directory's contents, not the directory;
a DEST that exists as a directory receives SRC under SRC's name; a DEST that does not exist
is created with SRC's content (its parent must exist; ending in "/" it must exist); a
directory never replaces a file. Without -a the copies belong to root (the container's, or
the caller of cp on the host); with -a they keep SRC's owners. -L follows SRC if it is a link.
"""

import fcntl
import os
import posixpath
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.image.pack import open_walked
from overlaykit.linux.openat2 import (RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS,
                                      RESOLVE_NO_SYMLINKS, openat2)
from overlaykit.runtime.userns import as_containers_root, of_record
from overlaykit.store import containers
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout

# Filesystems whose files are the kernel's own: copying out of them means nothing (sizes of 0),
# copying into them would set the host's kernel parameters.
PSEUDO_FILESYSTEMS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue",
                                "securityfs", "debugfs", "tracefs", "bpf", "configfs",
                                "fusectl", "pstore", "binfmt_misc", "autofs"})
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_XATTR_KEY = "SCHILY.xattr."


def split_argument(arg: str) -> tuple[str | None, str]:
    """Docker's splitCpArg: CONTAINER:PATH, unless arg is absolute or starts with '.'."""
    if arg.startswith("/"):
        return None, arg
    name, sep, path = arg.partition(":")
    if not sep or name.startswith("."):
        return None, arg
    return name, path


@dataclass(frozen=True)
class Root:
    """The container's "/" as an fd to resolve in, and the st_dev of its pseudo filesystems."""

    fd: int
    pseudo: frozenset[int]


@dataclass(frozen=True)
class Source:
    """SRC opened once, so the path is resolved a single time and what is copied cannot be swapped."""

    fd: int               # O_PATH fd of what is copied (a symlink itself unless followed)
    st: os.stat_result
    name: str             # the name it has in the tar; "" copies a directory's contents
    shown: str            # how the user wrote it, for messages


# --- the container's root ---

@contextmanager
def container_root(layout: Layout, container: Container) -> Iterator[Root]:
    """The root of a running container (its view, mounts included) or of a stopped one."""
    if containers.is_running(container.state):
        with _running_root(container) as root:
            yield root
        return
    lock = _try_supervisor_lock(layout, container.id)
    if lock is None:  # it started since it was read, or is starting now
        container = containers.load(layout, container.id)
        if not containers.is_running(container.state):
            raise OverlaykitError(f"cp: container {container.name} is starting; try again")
        with _running_root(container) as root:
            yield root
        return
    try:
        with _stopped_root(layout, containers.load(layout, container.id)) as root:
            yield root
    finally:
        os.close(lock)


def _try_supervisor_lock(layout: Layout, container_id: str) -> int | None:
    """The container's supervisor lock (see containers.supervising), if nobody holds it."""
    fd = os.open(layout.container_dir(container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def _running_root(container: Container) -> Iterator[Root]:
    from overlaykit.linux.mountinfo import mounts
    pid = container.state["Pid"]
    fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pseudo = frozenset(os.makedev(*map(int, m.device.split(":")))
                           for m in mounts(pid) if m.fstype in PSEUDO_FILESYSTEMS)
        if not containers.is_running(container.state):  # the pid was reused meanwhile
            raise OverlaykitError(f"cp: container {container.name} is not running")
        yield Root(fd, pseudo)
    finally:
        os.close(fd)


@contextmanager
def _stopped_root(layout: Layout, container: Container) -> Iterator[Root]:
    """Its overlay (init layer, image, writable layer on top) at its merged/, seen only here,
    with its binds and volumes mounted in it as Docker mounts them for cp (no copy-up, no
    tmpfs: those exist only while it runs); --read-only makes the overlay itself read-only."""
    from overlaykit.linux.mount import MS_NODEV, MS_RDONLY, remount_bind, set_propagation
    from overlaykit.linux.namespaces import CLONE_NEWNS, unshare
    from overlaykit.runtime.mounts import mount_bind, resolve
    from overlaykit.runtime.mountspec import specs_from_record
    from overlaykit.runtime.rootfs import mounted_rootfs
    rw = container.config.get("RWLayer")
    if not rw:
        raise OverlaykitError(f"cp: {container.name}: the container has no writable layer")
    mounts = [m for m in resolve(layout, specs_from_record(container.config)) if m.type != "tmpfs"]
    unshare(CLONE_NEWNS)
    set_propagation("/", "rprivate")
    with mounted_rootfs(layout, rw) as rootfs:
        for m in sorted(mounts, key=lambda m: m.destination.count("/")):
            mount_bind(rootfs.fd, m.destination, m.source, readonly=m.readonly, nodev=True)
        if container.config["HostConfig"].get("ReadonlyRootfs"):
            remount_bind(rootfs.path, MS_RDONLY | MS_NODEV)
        yield Root(rootfs.fd, frozenset())


# --- sources ---

def _open(root: Root | None, path: str, flags: int) -> int:
    """path in the container (inside root) or on the host (root None)."""
    if root is None:
        return os.open(path, flags | os.O_CLOEXEC)
    return openat2(root.fd, path.lstrip("/") or ".", flags,
                   resolve=RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def _where(root: Root | None, container: str | None) -> str:
    return f" in container {container}" if root is not None else ""


def open_source(root: Root | None, path: str, follow: bool, container: str | None = None) -> Source:
    """What SRC names; its name in the tar by Docker's rules ("" for "dir/." and "/")."""
    contents = path.endswith("/.") or path in ("/", ".") or posixpath.normpath(path) == "/"
    trailing = path.endswith("/")
    flags = os.O_PATH | (0 if follow or trailing or contents else os.O_NOFOLLOW)
    try:
        fd = _open(root, path, flags)
    except FileNotFoundError:
        if root is not None:
            raise OverlaykitError(f"cp: Could not find the file {path} in container {container}") from None
        raise OverlaykitError(f"cp: {path}: no such file or directory") from None
    except NotADirectoryError:
        raise OverlaykitError(f"cp: {path}: not a directory{_where(root, container)}") from None
    st = os.fstat(fd)
    if root is not None and st.st_dev in root.pseudo:
        os.close(fd)
        raise OverlaykitError(f"cp: {path}: is on a pseudo filesystem (/proc, /sys, ...), "
                              f"which cp does not copy")
    if contents and not stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise OverlaykitError(f"cp: {path}: not a directory{_where(root, container)}")
    name = "" if contents else posixpath.basename(path.rstrip("/"))
    return Source(fd, st, name, path)


# --- the tar in between ---

def write_tar(source: Source, top: str, out: BinaryIO, pseudo: frozenset[int] = frozenset()) -> None:
    """source as a tar whose names start with top ("" : a directory's contents only).

    Walked by directory fds with no symlink followed; a regular file is opened beneath its
    directory, non-blocking, and must be the inode the walk saw (a running container can swap
    it for a link or a FIFO meanwhile); sockets and pseudo filesystems are left out.
    """
    import tarfile

    seen: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 20) as tar:
        if not stat.S_ISDIR(source.st.st_mode):
            _add(tar, tarfile, top, source.st, f"/proc/self/fd/{source.fd}", (source.fd, ""), seen)
            return
        top_fd = os.open(f"/proc/self/fd/{source.fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if top:
                _add(tar, tarfile, top, source.st, f"/proc/self/fd/{top_fd}", (top_fd, ""), seen)
            pending = [""]
            while pending:
                rel = pending.pop()
                fd = openat2(top_fd, rel or ".", os.O_RDONLY | os.O_DIRECTORY, resolve=_BENEATH)
                try:
                    subdirs = []
                    for name in sorted(os.listdir(fd)):
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        if st.st_dev in pseudo or stat.S_ISSOCK(st.st_mode):
                            continue
                        path = f"{rel}/{name}".lstrip("/")
                        _add(tar, tarfile, f"{top}/{path}".lstrip("/"), st,
                             f"/proc/self/fd/{fd}/{name}", (fd, name), seen)
                        if stat.S_ISDIR(st.st_mode):
                            subdirs.append(path)
                    pending += reversed(subdirs)
                finally:
                    os.close(fd)
        finally:
            os.close(top_fd)


def _add(tar, tarfile, name: str, st: os.stat_result, path: str, at: tuple[int, str],
         seen: dict) -> None:
    """One entry; path names it for xattrs, at is (its directory's fd, its name) or (its own
    O_PATH fd, "") for SRC itself."""
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 10**9
    if not stat.S_ISLNK(st.st_mode):
        info.pax_headers = _xattrs(path)
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        first = seen.setdefault((st.st_dev, st.st_ino), name)
        if first != name:
            info.type, info.linkname = tarfile.LNKTYPE, first
            tar.addfile(info)
            return
    if stat.S_ISREG(st.st_mode):
        fd = open_walked(at[0], at[1], st)
        if fd is None:  # gone or swapped meanwhile
            return
        info.size = st.st_size
        with open(fd, "rb") as f:
            tar.addfile(info, f)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(at[1], dir_fd=at[0])
        tar.addfile(info)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    records = {}
    for key in sorted(names):
        if key.startswith("trusted.overlay."):
            continue
        try:
            records[_XATTR_KEY + key] = os.getxattr(path, key, follow_symlinks=False) \
                .decode("utf-8", "surrogateescape")
        except OSError:
            continue
    return records


# --- destinations ---

@dataclass(frozen=True)
class Destination:
    """Where the tar goes: a directory already open, and the name SRC takes inside it."""

    dir_fd: int   # the directory the tar is extracted into (O_RDONLY)
    top: str      # the name SRC gets there ("" : its contents go straight in)


def open_destination(root: Root | None, path: str, source: Source | None,
                     container: str | None = None) -> Destination:
    """Where SRC goes, by Docker's rules; source None is a tar on stdin (DEST: a directory)."""
    where = _where(root, container)
    try:
        fd = _open(root, path, os.O_RDONLY | os.O_DIRECTORY)
        target_is_dir = True
    except NotADirectoryError:
        fd, target_is_dir = -1, False
    except FileNotFoundError:
        fd, target_is_dir = -1, None
    if target_is_dir:
        _check_writable(root, fd, path)
        return Destination(fd, "" if source is None or not source.name else source.name)
    if source is None:
        raise OverlaykitError(f"cp: destination {path}{where} must be a directory")
    if path.endswith("/") or path.endswith("/."):
        what = "is not a directory" if target_is_dir is False else "does not exist"
        raise OverlaykitError(f"cp: destination directory {path}{where} {what}")
    if target_is_dir is False and stat.S_ISDIR(source.st.st_mode):
        raise OverlaykitError(f"cp: cannot copy directory {source.shown} over the file {path}{where}")
    parent = posixpath.dirname(path.rstrip("/")) or ("/" if path.startswith("/") else ".")
    try:
        fd = _open(root, parent, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        raise OverlaykitError(f"cp: the parent directory of {path}{where} does not exist") from None
    _check_writable(root, fd, path)
    return Destination(fd, posixpath.basename(path.rstrip("/")))


def _check_writable(root: Root | None, fd: int, path: str) -> None:
    if root is None:
        return
    if os.fstat(fd).st_dev in root.pseudo:
        os.close(fd)
        raise OverlaykitError(f"cp: cannot copy into {path}: it is on a pseudo filesystem "
                              f"(/proc, /sys, ...)")


def extract_into(destination: Destination, stream: BinaryIO, owner: tuple[int, int] | None) -> None:
    from overlaykit.image.unpack import extract
    extract(stream, destination.dir_fd, what="cp", owner=owner)


# --- the four ways ---

def copy(layout: Layout, src: str, dest: str, follow: bool, archive: bool,
         stdin: BinaryIO, stdout: BinaryIO) -> None:
    """docker cp SRC DEST, where one of them is CONTAINER:PATH and either may be '-'."""
    src_container, src_path = split_argument(src) if src != "-" else (None, "-")
    dest_container, dest_path = split_argument(dest) if dest != "-" else (None, "-")
    if src_container is not None and dest_container is not None:
        raise OverlaykitError("cp: copying between containers is not supported")
    if src_container is None and dest_container is None:
        raise OverlaykitError("cp: must specify at least one container source "
                              "(CONTAINER:PATH on one side)")
    if not (src_path if src_container is None else dest_path) and dest_path != "-":
        raise OverlaykitError("cp: the local path must not be empty")
    name = src_container or dest_container
    try:
        container = containers.find(layout, name)
        with container_root(layout, container) as root:
            if src_container is not None:
                _from_container(root, src_path or "/", dest_path, name, follow, archive, stdout)
            else:
                remapped = (of_record(container.config["HostConfig"])
                            and containers.is_running(container.state))
                _into_container(root, src_path, dest_path or "/", name, follow, archive, stdin,
                                container.state["Pid"] if remapped else None)
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            raise
        where = f"{e.filename}: " if e.filename else ""
        raise OverlaykitError(f"cp: {where}{e.strerror or e}") from e
    except OverlaykitError as e:
        raise e if str(e).startswith("cp: ") else OverlaykitError(f"cp: {e}") from e


def _from_container(root: Root, path: str, dest: str, name: str, follow: bool, archive: bool,
                    stdout: BinaryIO) -> None:
    source = open_source(root, path, follow, name)
    try:
        if dest == "-":
            write_tar(source, source.name or ".", stdout, root.pseudo)
            return
        destination = open_destination(None, dest, source)
        try:
            _pipe(source, destination, root.pseudo,
                  None if archive else (os.getuid(), os.getgid()))
        finally:
            os.close(destination.dir_fd)
    finally:
        os.close(source.fd)


def _into_container(root: Root, src: str, path: str, name: str, follow: bool, archive: bool,
                    stdin: BinaryIO, remapped_pid: int | None = None) -> None:
    """remapped_pid: a running --userns-remap container's PID 1, whose user namespace the
    extraction runs in (runtime/userns.as_containers_root), the files read on the host side."""
    owner = None if archive else (0, 0)
    if src == "-":
        destination = open_destination(root, path, None, name)
        try:
            if remapped_pid is None:
                extract_into(destination, stdin, owner)
            else:
                as_containers_root(remapped_pid, lambda _: extract_into(destination, stdin, owner))
        finally:
            os.close(destination.dir_fd)
        return
    source = open_source(None, src, follow)
    try:
        destination = open_destination(root, path, source, name)
        try:
            if remapped_pid is None:
                _pipe(source, destination, frozenset(), owner)
            else:
                as_containers_root(remapped_pid,
                                   lambda stream: extract_into(destination, stream, owner),
                                   lambda out: write_tar(source, destination.top, out, frozenset()))
        finally:
            os.close(destination.dir_fd)
    finally:
        os.close(source.fd)


def _pipe(source: Source, destination: Destination, pseudo: frozenset[int],
          owner: tuple[int, int] | None) -> None:
    """Pack source (named as the destination wants) and extract it there, streamed."""
    from overlaykit.image.pack import reading
    with reading(lambda out: write_tar(source, destination.top, out, pseudo)) as stream:
        extract_into(destination, stream, owner)
