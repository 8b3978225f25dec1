"""Build layer tars in memory, including the hostile ones no honest tool writes.

tarfile's writer stores names, link targets and type flags exactly as given (only its
add() cleans paths), so `..`, absolute names and unknown types reach the bytes.
"""

import io
import tarfile
from dataclasses import dataclass, field

MTIME = 1_700_000_000


@dataclass(frozen=True)
class Entry:
    """One tar member: its header fields and, for regular files, its data."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = MTIME
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def file(name: str, data: bytes = b"", mode: int = 0o644, **kw) -> Entry:
    return Entry(name, tarfile.REGTYPE, data, mode, **kw)


def directory(name: str, mode: int = 0o755, **kw) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode, **kw)


def symlink(name: str, target: str, **kw) -> Entry:
    return Entry(name, tarfile.SYMTYPE, mode=0o777, linkname=target, **kw)


def hardlink(name: str, target: str, mode: int = 0o644, **kw) -> Entry:
    return Entry(name, tarfile.LNKTYPE, mode=mode, linkname=target, **kw)


def fifo(name: str, mode: int = 0o644, **kw) -> Entry:
    return Entry(name, tarfile.FIFOTYPE, mode=mode, **kw)


def chardev(name: str, major: int, minor: int, mode: int = 0o666, **kw) -> Entry:
    return Entry(name, tarfile.CHRTYPE, mode=mode, devmajor=major, devminor=minor, **kw)


def blockdev(name: str, major: int, minor: int, mode: int = 0o660, **kw) -> Entry:
    return Entry(name, tarfile.BLKTYPE, mode=mode, devmajor=major, devminor=minor, **kw)


def whiteout(path: str) -> Entry:
    """The OCI whiteout of path: an empty file `dir/.wh.NAME`."""
    parent, _, name = path.rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", mode=0o600)


def opaque(directory_path: str) -> Entry:
    """The OCI marker that makes directory_path opaque."""
    return file(f"{directory_path}/.wh..wh..opq", mode=0o600)


def xattrs(**pairs: bytes | str) -> dict[str, str]:
    """PAX headers carrying xattrs; names use "__" for "." (user__foo -> user.foo)."""
    headers = {}
    for key, value in pairs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        headers["SCHILY.xattr." + key.replace("__", ".")] = value
    return headers


def build(*entries: Entry, end: bool = True) -> bytes:
    """The tar bytes of entries, in order (PAX format); end=False leaves out the end blocks."""
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
    for e in entries:
        info = tarfile.TarInfo(e.name)
        info.type, info.mode, info.uid, info.gid, info.mtime = e.type, e.mode, e.uid, e.gid, e.mtime
        info.linkname, info.devmajor, info.devminor = e.linkname, e.devmajor, e.devminor
        info.pax_headers = dict(e.pax)
        info.size = len(e.data) if e.type == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(e.data) if info.size else None)
    if end:  # close() writes the two zero blocks that end an archive
        tar.close()
    return out.getvalue()


def stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
