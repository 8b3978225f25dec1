"""Unpack one layer tar into a layer's diff directory, as Docker's overlay2 driver does.

OCI whiteouts become overlay ones: `dir/.wh.NAME` -> a 0:0 character device NAME, and
`dir/.wh..wh..opq` -> trusted.overlay.opaque=y on dir. Modes (setuid too), numeric owners,
times, symlinks, hard links, fifos, device nodes and PAX xattrs are kept; trusted.overlay.*
xattrs carried by the tar are dropped, since they would forge whiteouts and redirects.

Nothing is ever written outside diff_dir, whatever the tar says:
- names are cleaned lexically like Docker's filepath.Clean: a leading "/" is dropped (names
  are relative to the layer root) and `a/../b` becomes `b`; a name whose `..` climbs above
  the root is refused ("path escapes the layer"), as is a hard link target that does;
- every parent directory is opened with openat2(RESOLVE_IN_ROOT), so symlinks met on the way,
  from this layer or any earlier entry, resolve inside diff_dir as they would in the
  container, and the last component is acted on through that directory fd without ever
  following a link (an entry over a symlink replaces the link, never its target);
- fifos and device nodes are made with mknod and never opened, so no entry can block us;
- every entry is made exclusively (O_EXCL, mkdir, symlink, mknod, link): what is found at its
  name is removed first, and a name this unpack has provably not made yet is not looked up
  (_Layer): a wrong guess could only fail with EEXIST.

Within one layer, whiteouts only hide what lower layers hold (OCI image spec): an entry of
the same layer stays whether it comes before or after its whiteout, and a directory that
meets a whiteout of its own name in the same layer becomes opaque, in either order.
"""

import errno
import os
import stat
import typing
from dataclasses import dataclass

from overlaykit.errors import OverlaykitError
from overlaykit.image import whiteout
from overlaykit.image.filewriter import INLINE_LIMIT, FileWriter, NewFile
from overlaykit.linux.openat2 import (RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
                                      open_in_root, openat2)
from overlaykit.linux.tree import remove_tree

CHUNK = 1 << 20
_XATTR_KEY = "SCHILY.xattr."
_IGNORED_XATTR_ERRORS = (errno.EPERM, errno.ENOTSUP)  # as Docker: user.* on symlinks, fs without xattrs


@dataclass(frozen=True)
class UnpackStats:
    """What one unpack did: tar entries read, regular-file bytes written, overlay markers made."""

    entries: int
    bytes: int
    whiteouts: int
    opaque_dirs: int


def unpack(stream: typing.BinaryIO, diff_dir: str, *, what: str = "layer") -> UnpackStats:
    """Unpack the uncompressed tar read sequentially from stream into the empty diff_dir.

    Raises OverlaykitError("<what>: <entry>: <problem>") for hostile or broken archives; the
    caller removes diff_dir then, so partial output is left as it is.
    """
    root_fd = os.open(diff_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(root_fd) as listing:
            empty = next(listing, None) is None  # as it should be; if not, every name is looked up
        return _apply_all(stream, _Layer(root_fd, what, empty_root=empty))
    finally:
        os.close(root_fd)


def extract(stream: typing.BinaryIO, dir_fd: int, *, what: str,
            owner: tuple[int, int] | None = None) -> UnpackStats:
    """Unpack a plain tar (not a layer) into the existing directory dir_fd, as `docker cp` does:
    `.wh.` names are files like any other, an entry never replaces a directory, and owner, when
    given, owns every entry (cp without -a). Names resolve inside dir_fd as in unpack."""
    return _apply_all(stream, _Layer(dir_fd, what, layer=False, owner=owner))


def _apply_all(stream: typing.BinaryIO, layer: "_Layer") -> UnpackStats:
    import tarfile

    what = layer.what
    try:
        tar = _open_tar(stream, what)
        while (member := tar.next()) is not None:
            tar.members.clear()  # stream mode keeps every TarInfo otherwise: memory grows per entry
            layer.apply(tar, member)
        if tar.bad_end is not None:
            raise OverlaykitError(_bad_end_message(what, layer.name, tar.bad_end))
        layer.settle()
        layer.set_directory_times()
    except tarfile.ReadError as e:
        if str(e) == "unexpected end of data":
            raise OverlaykitError(f"{what}: {layer.name}: truncated tar archive") from None
        raise OverlaykitError(f"{what}: corrupt tar archive after {layer.name} ({e})") from None
    except OSError as e:
        raise OverlaykitError(f"{what}: {layer.name}: {e.strerror or e}") from e
    finally:
        layer.close()
        layer.stop_writing()
    return layer.stats()


def _open_tar(stream: typing.BinaryIO, what: str):
    """A TarFile reading stream front to back that remembers why the archive ended
    (tarfile is imported late, to keep start-up cheap, so its subclasses are made here)."""
    import tarfile

    class StrictTarInfo(tarfile.TarInfo):
        """tarfile ends an archive silently at a truncated or garbled header after the first
        member; remember that so a cut or corrupt tar is refused instead of half-applied."""

        @classmethod
        def fromtarfile(cls, tar):
            try:
                return super().fromtarfile(tar)
            except (tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as e:
                tar.bad_end = e
                raise

    class StrictTarFile(tarfile.TarFile):
        tarinfo = StrictTarInfo
        bad_end = None

    try:
        return StrictTarFile.open(fileobj=_Sequential(stream), mode="r:")
    except tarfile.ReadError as e:
        if str(e) == "empty file":
            raise OverlaykitError(f"{what}: empty stream, not a tar archive") from None
        raise OverlaykitError(f"{what}: not a tar archive") from None


class _Sequential:
    """The caller's stream as a file tarfile's plain reader accepts: read ahead CHUNK at a
    time, exact sizes served, seeks only forward.

    tarfile asks for every 512-byte header and every file on its own; passed down, each ask
    went through the whole chain below (tar-split recorder, digest, decompressor, archive):
    36,000 reads and sha256 updates for a 200 MB layer. Read ahead, the chain sees ~200, and
    sha256 hashes megabytes at a time. Faster than tarfile's own stream mode too, which
    re-joins its whole buffer on every read.
    """

    def __init__(self, stream: typing.BinaryIO):
        self.stream = stream
        self.position = 0
        self._ahead = b""  # read from stream, not yet by tarfile
        self._at = 0       # where in _ahead tarfile's next read starts

    def read(self, size: int = -1) -> bytes:
        at = self._at
        if size is not None and 0 <= size <= len(self._ahead) - at:  # most reads: all read ahead already
            self._at = at + size
            self.position += size
            return self._ahead[at:at + size]
        if size is None or size < 0:
            data = self._ahead[self._at:] + self.stream.read()
            self._ahead, self._at = b"", 0
        else:
            data = self._exactly(size)
        self.position += len(data)
        return data

    def _exactly(self, size: int) -> bytes:
        """size bytes, fewer only at the end of the stream (short reads are filled)."""
        parts = []
        while size:
            if self._at == len(self._ahead):
                if size >= CHUNK:  # a big file goes straight through
                    more = self.stream.read(size)
                    if not more:
                        break
                    parts.append(more)
                    size -= len(more)
                    continue
                self._ahead, self._at = self.stream.read(CHUNK), 0
                if not self._ahead:
                    break
            piece = self._ahead[self._at:self._at + size]
            self._at += len(piece)
            parts.append(piece)
            size -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return True  # forward only; what tarfile needs to step over data it did not read

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self.position
        elif whence != os.SEEK_SET:
            raise OSError(errno.ESPIPE, "the layer stream has no end to seek from")
        if offset < self.position:
            raise OSError(errno.ESPIPE, "the layer stream is read once, front to back")
        if offset - self.position <= len(self._ahead) - self._at:  # within what was read ahead: no copy
            self._at += offset - self.position
            self.position = offset
            return offset
        while offset > self.position and self.read(min(CHUNK, offset - self.position)):
            pass
        return self.position


class _Content:
    """A regular file's content, read straight from the layer stream where tarfile found it.

    tarfile.extractfile wraps every member in two objects of its own and copies its bytes
    twice on the way (a BufferedReader joining what its raw reader returned): for a layer of
    small files that was a quarter of the unpacker's time. tarfile still parses every header
    and says where the content lies (offset_data, size); this only reads those bytes.
    """

    __slots__ = ("stream", "left")

    def __init__(self, stream: _Sequential, member):
        stream.seek(member.offset_data)
        self.stream, self.left = stream, member.size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(size)
        if len(data) < size:
            import tarfile
            raise tarfile.ReadError("unexpected end of data")  # as tarfile's own reader says it
        self.left -= size
        return data


def _content(tar, member):
    """A reader of member's content: ours, or tarfile's for a sparse file (whose holes it fills)."""
    return tar.extractfile(member) if member.sparse is not None else _Content(tar.fileobj, member)


def _bad_end_message(what: str, last: str | None, error: Exception) -> str:
    import tarfile
    if isinstance(error, tarfile.TruncatedHeaderError):
        return f"{what}: truncated tar archive after {last}"
    return f"{what}: corrupt tar header after {last} ({error})"


def clean_name(name: str) -> str | None:
    """A tar name cleaned like Go's filepath.Clean, relative to the layer root ('./a//b/../c/'
    -> 'a/c', '/' -> ''); None if `..` climbs out. The name tarsplit records for a file."""
    plain = name.strip("/")
    if "//" not in plain and "/." not in plain and not plain.startswith("."):
        return plain  # no empty, `.` or `..` part: nothing to clean (most names)
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _parts(name: str) -> list[str] | None:
    """The components of a cleaned tar name ([] for the layer root); None if it climbs out."""
    path = clean_name(name)
    return None if path is None else path.split("/") if path else []


def _ns(pax_value: str | None, fallback: float) -> int:
    """A PAX time ("1700000000.123456789") in exact nanoseconds; tarfile's float loses them."""
    if pax_value:
        sec, _, frac = pax_value.partition(".")
        try:
            whole = int(sec) * 1_000_000_000
            part = int((frac + "000000000")[:9]) if frac else 0
        except ValueError:
            pass
        else:
            return whole - part if sec.startswith("-") else whole + part
    return int(fallback * 1_000_000_000)


def _times(member) -> tuple[int, int]:
    """(atime, mtime) in ns; atime never before mtime, as Docker does."""
    mtime = _ns(member.pax_headers.get("mtime"), member.mtime)
    atime = _ns(member.pax_headers.get("atime"), 0)
    return max(atime, mtime), mtime


def _xattrs(member) -> list[tuple[str, bytes]]:
    """The PAX xattrs of an entry, minus the trusted.overlay.* ones only we may set."""
    found = []
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR_KEY):
            name = key[len(_XATTR_KEY):]
            if not name.startswith(whiteout.OVERLAY_XATTR_PREFIX):
                found.append((name, value.encode("utf-8", "surrogateescape")))
    return found


def _set_xattr(target: int | str, name: str, value: bytes) -> None:
    try:
        # A path's last component must not be followed; an fd is the entry itself.
        os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))
    except OSError as e:
        if e.errno not in _IGNORED_XATTR_ERRORS:
            raise


def _ident(fd: int) -> tuple[int, int]:
    """(st_dev, st_ino) of an open directory: what it is known by, whatever path reached it."""
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


class _Layer:
    """The diff dir being filled: its root fd, the cached parent-dir fd, times still to set,
    and the names this unpack made in the directories it made.

    Those names spare a lookup per entry. A directory this unpack made (or the layer root,
    found empty) started empty, and every name made in it since is noted in `made` under the
    directory's inode, whatever path led there (symlinks of the layer included): a name not
    noted there cannot exist, so the entry is made without an lstat first. The safety never
    rested on that lstat: every entry is made exclusively (O_CREAT | O_EXCL | O_NOFOLLOW,
    mkdir, symlink, mknod, link), so a name the notes missed would fail with EEXIST, never
    replace or follow what is there.
    """

    def __init__(self, root_fd: int, what: str, layer: bool = True,
                 owner: tuple[int, int] | None = None, empty_root: bool = False):
        self.root_fd = root_fd
        self.what = what
        self.layer = layer  # False: a plain tar (cp), no whiteouts, no directory replaced
        self.owner = owner
        self.name = ""  # the entry being applied, for messages
        self.parent_key: str | None = None  # the cached parent, as a cleaned path
        self.parent_fd = -1
        self.dir_times: dict[str, tuple[int, int]] = {}  # set last: children change them
        self.entries = self.bytes = self.whiteouts = self.opaque_dirs = 0
        self.writer: FileWriter | None = None  # small regular files, written side by side
        self.parent_ident: tuple[int, int] | None = None  # the cached parent's, once asked for
        # directory made by this unpack (or the empty root) -> the names made in it since
        self.made: dict[tuple[int, int], set[str]] = {_ident(root_fd): set()} if empty_root else {}

    def stats(self) -> UnpackStats:
        return UnpackStats(self.entries, self.bytes, self.whiteouts, self.opaque_dirs)

    def close(self) -> None:
        if self.parent_fd >= 0:
            os.close(self.parent_fd)
            self.parent_fd = -1

    def wait_for(self, pfd: int, base: str) -> None:
        """Before an entry named base in the cached parent pfd: let a file being written there land."""
        if self.writer is not None and self.writer.busy(self.parent_id(pfd), base):
            self.writer.settle()

    def parent_id(self, pfd: int) -> tuple[int, int]:
        """(st_dev, st_ino) of the cached parent: what the writer and `made` know a directory by."""
        if self.parent_ident is None:
            self.parent_ident = _ident(pfd)
        return self.parent_ident

    def existing(self, pfd: int, base: str) -> os.stat_result | None:
        """What is at base in the cached parent pfd, before an entry is made there (and base
        noted as made). Not looked up where it provably is not (see the class): a name not
        noted is not being written either, the writer only writes names noted first."""
        names = self.made.get(self.parent_id(pfd))
        if names is not None and base not in names:
            names.add(base)
            return None
        self.wait_for(pfd, base)
        return self.lstat(pfd, base)

    def made_dir(self, parent_fd: int, base: str, fd: int) -> None:
        """base, a directory this unpack just made in parent_fd (open as fd): noted, and empty."""
        names = self.made.get(_ident(parent_fd))
        if names is not None:
            names.add(base)
        self.made[_ident(fd)] = set()  # a new inode: any notes of an old one by that number are gone

    def settle(self) -> None:
        if self.writer is not None:
            self.writer.settle()

    def stop_writing(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def refuse(self, problem: str) -> OverlaykitError:
        return OverlaykitError(f"{self.what}: {self.name}: {problem}")

    # -- one entry -------------------------------------------------------------------------

    def apply(self, tar, member) -> None:
        """Apply one tar entry: a whiteout, an opaque marker, or a file of some type."""
        self.entries += 1
        self.name = member.name
        parts = _parts(member.name)
        if parts is None:
            raise self.refuse("path escapes the layer" if self.layer else "path escapes the destination")
        if self.owner is not None:
            member.uid, member.gid = self.owner
        if not self.layer:
            self.apply_plain(tar, member, parts)
            return
        if whiteout.PREFIX in member.name:  # rare, so the component checks run only then
            if any(p.startswith(whiteout.META_PREFIX) for p in parts) and parts[-1] != whiteout.OPAQUE_MARKER:
                return  # AUFS bookkeeping (.wh..wh.plnk/...) in old layers: skipped, as Docker does
            if any(p.startswith(whiteout.PREFIX) for p in parts[:-1]):
                raise self.refuse("a whiteout cannot be a directory")
        if not parts:
            if not member.isdir():
                raise self.refuse("only a directory can be the layer root")
            self.update_root(member)
            return
        parents, base = parts[:-1], parts[-1]
        if base == whiteout.OPAQUE_MARKER:
            self.make_opaque(parents)
        elif base.startswith(whiteout.PREFIX):
            self.make_whiteout(member, parents, base[len(whiteout.PREFIX):])
        else:
            self.apply_plain(tar, member, parts)

    def apply_plain(self, tar, member, parts: list[str]) -> None:
        """A file of some type (any name: whiteouts were dealt with by the caller)."""
        if not parts:  # `./` of a plain tar: the destination stays as it is, as in Docker
            if not member.isdir():
                raise self.refuse("only a directory can be the root")
        elif member.isreg():
            self.write_file(tar, member, parts)
        elif member.isdir():
            self.make_dir(member, parts)
        elif member.issym():
            self.make_symlink(member, parts)
        elif member.islnk():
            self.make_hardlink(member, parts)
        elif member.ischr() or member.isblk() or member.isfifo():
            self.make_node(member, parts)
        else:
            kind = member.type.decode("latin-1")
            raise self.refuse(f"unsupported tar entry type {kind!r}")

    def write_file(self, tar, member, parts: list[str]) -> None:
        pfd, base = self.replace(parts)
        if member.size <= INLINE_LIMIT:  # read now, created by a worker while the next entries are read
            data = _content(tar, member).read()
            self.bytes += len(data)
            self.write_later(pfd, NewFile(member.name, self.parent_id(pfd), base, data, member.uid, member.gid,
                                          member.mode & 0o7777, tuple(_xattrs(member)), _times(member)))
            return
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            source = _content(tar, member)
            while data := source.read(CHUNK):
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                self.bytes += len(data)
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears setuid
            for name, value in _xattrs(member):  # after chown, which clears security.capability
                _set_xattr(fd, name, value)
            os.utime(fd, ns=_times(member))
        finally:
            os.close(fd)

    def make_dir(self, member, parts: list[str]) -> None:
        pfd, base = self.parent(parts[:-1]), parts[-1]
        existing = self.existing(pfd, base)
        replaced_whiteout = False
        new = existing is None or not stat.S_ISDIR(existing.st_mode)
        if new:
            if existing is not None and not self.layer:
                raise self.refuse("cannot overwrite a non-directory with a directory")
            if existing is not None:
                replaced_whiteout = whiteout.is_whiteout_device(existing.st_mode, existing.st_rdev)
                os.unlink(base, dir_fd=pfd)
            os.mkdir(base, 0o700, dir_fd=pfd)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if new:
                self.made[_ident(fd)] = set()
            self.set_dir_metadata(fd, member)
            if replaced_whiteout:  # deleted and re-made in this layer: hide the lower one's entries
                self.set_opaque(fd)
        finally:
            os.close(fd)
        self.dir_times["/".join(parts)] = _times(member)

    def update_root(self, member) -> None:
        """A `./` entry: the layer root takes its owner, mode and times, as in Docker."""
        self.set_dir_metadata(self.root_fd, member)
        self.dir_times[""] = _times(member)

    def set_dir_metadata(self, fd: int, member) -> None:
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        for name, value in _xattrs(member):
            _set_xattr(fd, name, value)

    def make_symlink(self, member, parts: list[str]) -> None:
        """Made by a writer thread, as a small file is: a lookup through it that misses settles
        the writer first (open_dir), like one through a file's name."""
        pfd, base = self.replace(parts)
        self.write_later(pfd, NewFile(member.name, self.parent_id(pfd), base, b"", member.uid, member.gid, 0,
                                      tuple(_xattrs(member)), _times(member), link=member.linkname))

    def write_later(self, pfd: int, new: NewFile) -> None:
        if self.writer is None:
            self.writer = FileWriter(self.what, _set_xattr)
        self.writer.write(pfd, new)

    def make_node(self, member, parts: list[str]) -> None:
        """A fifo or device node: made with mknod, never opened (opening a fifo would block)."""
        kind = stat.S_IFIFO if member.isfifo() else stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        device = 0 if member.isfifo() else os.makedev(member.devmajor, member.devminor)
        pfd, base = self.replace(parts)
        os.mknod(base, kind | 0o600, device, dir_fd=pfd)
        self.set_metadata_at(pfd, base, member, symlink=False)

    def make_hardlink(self, member, parts: list[str]) -> None:
        target = _parts(member.linkname)
        if target is None:
            raise self.refuse(f"hard link target {member.linkname} is outside the layer")
        if not target:
            raise self.refuse(f"hard link target {member.linkname} is the layer root")
        self.settle()  # the target may be a file still being written, by any name
        pfd, base = self.replace(parts)
        missing = self.refuse(f"hard link target {member.linkname} is not in the layer")
        try:
            tfd = open_in_root(self.root_fd, "/".join(target[:-1]), os.O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            raise missing from None
        try:
            # linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
            os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise missing from None
        finally:
            os.close(tfd)
        # Docker and containerd apply the link's header to the (shared) inode too.
        linked = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        self.set_metadata_at(pfd, base, member, symlink=stat.S_ISLNK(linked.st_mode))

    def set_metadata_at(self, pfd: int, base: str, member, symlink: bool) -> None:
        """Owner, mode, xattrs and times of base in pfd, never following base if it is a link."""
        os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        if not symlink:  # a symlink's mode means nothing on Linux
            os.chmod(base, member.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
        xattrs = _xattrs(member)
        if xattrs:
            path = f"/proc/self/fd/{pfd}/{base}"  # lsetxattr has no *at form
            for name, value in xattrs:
                _set_xattr(path, name, value)
        os.utime(base, ns=_times(member), dir_fd=pfd, follow_symlinks=False)

    # -- whiteouts -------------------------------------------------------------------------

    def make_whiteout(self, member, parents: list[str], name: str) -> None:
        """`.wh.NAME`: a 0:0 character device NAME, unless this layer itself has NAME."""
        if name in ("", ".", ".."):
            raise self.refuse("invalid whiteout name")
        self.settle()
        pfd = self.parent(parents)
        existing = self.existing(pfd, name)
        if existing is None:
            os.mknod(name, stat.S_IFCHR, whiteout.WHITEOUT_DEVICE, dir_fd=pfd)
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
            self.whiteouts += 1
        elif stat.S_ISDIR(existing.st_mode):  # the layer's own dir stays, the lower one goes
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                self.set_opaque(fd)
            finally:
                os.close(fd)

    def make_opaque(self, dir_parts: list[str]) -> None:
        """`.wh..wh..opq`: the directory hides lower layers' entries, keeps this layer's own."""
        pfd = self.parent(dir_parts)
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self.set_opaque(fd)
        finally:
            os.close(fd)

    def set_opaque(self, fd: int) -> None:
        os.setxattr(fd, whiteout.OPAQUE_XATTR, whiteout.OPAQUE_VALUE)
        self.opaque_dirs += 1

    # -- paths -----------------------------------------------------------------------------

    def parent(self, parts: list[str]) -> int:
        """An O_PATH fd of the directory parts, resolved inside the root, made if missing.

        One fd is cached: tars list a directory's entries together. It stays right because an
        entry only ever changes a child of its parent, never the parent's own path.
        """
        key = "/".join(parts)
        if key == self.parent_key:
            return self.parent_fd
        fd = self.open_dir(parts, key)
        self.close()
        self.parent_key, self.parent_fd, self.parent_ident = key, fd, None
        return fd

    def open_dir(self, parts: list[str], key: str) -> int:
        try:
            return self.find_dir(key, self.parent_key, self.parent_fd)
        except (FileNotFoundError, NotADirectoryError):
            pass
        self.settle()  # a missing component may be a file or symlink still being made: let it land first
        # Walk it one component at a time, making what is missing (0755, root, as Docker does).
        fd = open_in_root(self.root_fd, "", os.O_PATH | os.O_DIRECTORY)
        try:
            for i, part in enumerate(parts):
                sub = "/".join(parts[:i + 1])
                try:
                    child = open_in_root(self.root_fd, sub, os.O_PATH | os.O_DIRECTORY)
                except NotADirectoryError:
                    raise self.refuse(f"parent {sub} is not a directory") from None
                except FileNotFoundError:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        raise self.refuse(f"parent {sub} is a dangling symlink") from None
                    os.chmod(part, 0o755, dir_fd=fd, follow_symlinks=False)
                    child = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    self.made_dir(fd, part, child)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def find_dir(self, key: str, near_key: str | None, near_fd: int) -> int:
        """An O_PATH fd of the directory key, resolved inside the root. From near_fd (key's
        ancestor near_key, resolved already) when no symlink is on the rest of the way: in a
        deep tree, each entry's parent is then one step, not thousands, from the last one."""
        if near_key is not None and near_fd >= 0 and key.startswith(near_key + "/" if near_key else ""):
            try:
                return openat2(near_fd, key[len(near_key):].lstrip("/") or ".", os.O_PATH | os.O_DIRECTORY,
                               resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.EXDEV):
                    raise
        return open_in_root(self.root_fd, key, os.O_PATH | os.O_DIRECTORY)

    @staticmethod
    def lstat(pfd: int, base: str) -> os.stat_result | None:
        try:
            return os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def replace(self, parts: list[str]) -> tuple[int, str]:
        """The parent fd and name for a new non-directory entry, with whatever was there gone."""
        pfd, base = self.parent(parts[:-1]), parts[-1]
        existing = self.existing(pfd, base)
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode) and not self.layer:
                raise self.refuse("cannot overwrite a directory with a non-directory")
            if stat.S_ISDIR(existing.st_mode):
                self.settle()  # files may still be landing in it
                remove_tree(base, dir_fd=pfd)
            else:
                os.unlink(base, dir_fd=pfd)  # a symlink is replaced itself, never its target
        self.dir_times.pop("/".join(parts), None)
        return pfd, base

    def set_directory_times(self) -> None:
        """Directory times last: creating their children changed them."""
        near_key, near_fd = None, -1
        try:
            for path, times in self.dir_times.items():
                if not path:
                    os.utime(self.root_fd, ns=times)
                    continue
                parent, _, base = path.rpartition("/")
                if parent != near_key:
                    try:
                        pfd = self.find_dir(parent, near_key, near_fd)
                    except (FileNotFoundError, NotADirectoryError):
                        continue  # replaced by a later entry
                    if near_fd >= 0:
                        os.close(near_fd)
                    near_key, near_fd = parent, pfd
                try:
                    os.utime(base, ns=times, dir_fd=near_fd, follow_symlinks=False)
                except FileNotFoundError:
                    pass
        finally:
            if near_fd >= 0:
                os.close(near_fd)
