"""Write a directory tree as a tar stream: an upper dir as an OCI layer, or a whole root filesystem.

`pack_layer` turns a container's upper dir (or any overlay diff dir) into a layer tar the
way Docker's overlay2 driver does: a 0:0 character device becomes an empty regular file
`.wh.NAME`, mode 0600, owned by 0:0 with mtime 0 (Docker copies the device's owner and
mtime, which no unpacker restores; fixed values make the same changes give the same layer,
and a stored layer repack to its diff ID), an opaque directory gets a `.wh..wh..opq` entry
right after its own (mode of the directory, mtime 0), and trusted.overlay.* xattrs are left
out. `pack_tree` writes a merged view as one plain tar, as `docker export` does.

Both keep modes (setuid too), numeric owners, mtimes (whole seconds), xattrs, symlinks,
fifos and device nodes; a file met a second time by inode becomes a hard link to the first
name. Sockets are skipped, as Docker skips them. The output is deterministic: names sorted
bytewise, parents first, PAX format, no atime/ctime, no user or group names; the stream is
written as it is read, one file at a time, so a layer is never held in memory.
"""

import errno
import os
import stat
from typing import BinaryIO, Callable, Collection

from overlaykit.image.changes import entries, is_opaque_at, is_whiteout
from overlaykit.image.whiteout import OPAQUE_MARKER, OVERLAY_XATTR_PREFIX, PREFIX
from overlaykit.linux import tree
from overlaykit.linux.openat2 import (RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
                                      openat2)

_XATTR_KEY = "SCHILY.xattr."
_BUFSIZE = 1 << 20


def pack_layer(upper: str, out: BinaryIO, hidden: Collection[str] = ()) -> None:
    """Write upper as a layer tar to out, overlay whiteouts turned back into `.wh.` entries."""
    _pack(upper, out, hidden, layer=True)


def pack_tree(root: str, out: BinaryIO, hidden: Collection[str] = ()) -> None:
    """Write the tree under root (a merged view) to out as a plain tar, without its root entry."""
    _pack(root, out, hidden, layer=False)


def _pack(root: str, out: BinaryIO, hidden: Collection[str], layer: bool) -> None:
    import tarfile

    seen: dict[tuple[int, int], str] = {}  # (dev, ino) -> first name, for hard links
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_BUFSIZE) as tar:
        for entry in entries(root, hidden):
            st, at = entry.st, (entry.dir_fd, entry.name)
            name = entry.path[1:]
            if layer and is_whiteout(st):
                parent, base = os.path.split(name)
                info = tarfile.TarInfo(os.path.join(parent, PREFIX + base))
                info.mode = 0o600
                tar.addfile(info)
                continue
            info = _info(tarfile, name, st)
            if stat.S_ISSOCK(st.st_mode):
                continue
            info.pax_headers = _xattrs(*at)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                first = seen.setdefault((st.st_dev, st.st_ino), name)
                if first != name:
                    info.type, info.linkname = tarfile.LNKTYPE, first
                    tar.addfile(info)
                    continue
            if stat.S_ISREG(st.st_mode):
                info.type, info.size = tarfile.REGTYPE, st.st_size
                fd = open_walked(*at, st)
                if fd is None:  # deleted or replaced meanwhile in a running container
                    continue
                with open(fd, "rb") as f:
                    tar.addfile(info, f)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                if layer and is_opaque_at(*at):
                    marker = _info(tarfile, os.path.join(name, OPAQUE_MARKER), st)
                    marker.mode, marker.mtime = stat.S_IMODE(st.st_mode) & 0o777, 0
                    tar.addfile(marker)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.name, dir_fd=entry.dir_fd)
                tar.addfile(info)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)


def open_walked(dir_fd: int, name: str, st: os.stat_result) -> int | None:
    """An fd of the regular file the walk saw as name in its directory dir_fd, or None if it
    is no longer there.

    A running container can swap the file for a symlink (to /etc/shadow, say) or a FIFO
    between the walk's lstat and this open: dir_fd is the directory the walk went down to
    with no symlink followed (a directory on the way swapped for a symlink meanwhile does
    not matter), name is resolved beneath it with no symlink followed, non-blocking, and
    checked to be the same inode, so neither a host file nor a hang can get into the tar.
    An empty name means dir_fd is an O_PATH fd of the file itself (cp's SRC), reopened
    for reading through /proc/self/fd.
    """
    try:
        if not name:
            fd = os.open(f"/proc/self/fd/{dir_fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        else:
            fd = openat2(dir_fd, name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY,
                         resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO):
            return None
        raise
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        return None
    return fd


def _info(tarfile, name: str, st: os.stat_result):
    """A header with what every entry carries: mode bits, numeric owner, whole-second mtime."""
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 10**9
    info.type = tarfile.REGTYPE
    info.size = 0
    return info


def _xattrs(dir_fd: int, name: str) -> dict[str, str]:
    """PAX records for the xattrs worth keeping, sorted; raw bytes survive as surrogates."""
    try:
        names = tree.listxattr_at(dir_fd, name)
    except OSError:
        return {}
    records = {}
    for key in sorted(names):
        if key.startswith(OVERLAY_XATTR_PREFIX):
            continue
        try:
            value = tree.getxattr_at(dir_fd, name, key)
        except OSError:
            continue
        records[_XATTR_KEY + key] = value.decode("utf-8", "surrogateescape")
    return records


class _PipeReader:
    """The read end of a pipe a thread writes into; its end raises what the writer raised."""

    def __init__(self, fd: int, thread, errors: list):
        self._file = open(fd, "rb", buffering=0)
        self._thread, self._errors = thread, errors

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(_BUFSIZE if size is None or size < 0 else size)
        if not data:
            self._thread.join()
            if self._errors:
                raise self._errors[0]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Stop reading: the writer ends on a broken pipe, and is waited for."""
        self._file.close()
        self._thread.join()

    def __enter__(self) -> "_PipeReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reading(produce: Callable[[BinaryIO], None]) -> BinaryIO:
    """What produce(out) writes, as a stream to read while it is written (a pipe and a thread).

    Nothing is spooled: the writer waits while the reader does not read. Close the stream (or
    use it as a context manager); a reader that stops early ends the writer on a broken pipe.
    """
    import threading

    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with open(write_fd, "wb", buffering=_BUFSIZE) as out:
                produce(out)
        except BrokenPipeError:
            pass
        except BaseException as e:  # handed to the reader, raised there
            errors.append(e)

    thread = threading.Thread(target=run, name="pack", daemon=True)
    reader = _PipeReader(read_fd, thread, errors)
    thread.start()
    return reader
