"""tar-split: what a layer tar held besides its files' contents, so the exact tar can be made again.

The store keeps a layer unpacked; the tar it came in is gone. Packing diff/ again gives
another tar (entry order, sub-second times, owner names, padding differ between tools), so
another diff ID and, on save, another image ID. Docker keeps beside each layer a record of
the original tar (layerdb/sha256/<chain-id>/tar-split.json.gz, made with vbatts/tar-split)
and rebuilds the tar from it and the layer's files. This module does the same, its own way:

* `Recorder` wraps the uncompressed stream on its way into the unpacker and follows the tar
  structure as the bytes go by. It keeps every byte that is not file content (headers, PAX
  and GNU long-name blocks, padding, the end-of-archive blocks and whatever follows them);
  of a regular file's content only the file's name and size, never a byte of it.
* `assembled_size` and `open_assembled` rebuild the tar: the kept bytes, with each file's
  content read from diff/<name> resolved inside the diff dir (openat2 RESOLVE_IN_ROOT: the
  names came from a foreign archive) and checked against the recorded size. The stream hands
  out its last bytes only after their sha256 proved to be the expected diff ID, so a changed
  diff dir can never pass for the original layer.

The record is gzip'd JSON, one object a line: {"raw": "<base64>"} for kept bytes, with
"file": "<name>" and "size": <bytes> added when a file's content follows them. Names are
cleaned as the unpacker cleans them (relative, no `.` or `..`), so they name the very file
it wrote. The unpacker reads front to back through one stream, so the recorder sees every
byte once and, between files, only the few bytes of headers and padding.

Some tars cannot be rebuilt from their unpacked files: a content that a later entry of the
same tar replaced (the same name again, or a parent directory replaced by a file), content
written through a symlink of the same tar (another name for a file named elsewhere),
content under a `.wh.` name (whiteouts become devices; the content is dropped), sparse
files. The recorder notices these as they go by and gives up; the caller then keeps no
record and the layer is packed again when it is saved.
"""

import base64
import hashlib
import json
import os
import stat
from typing import BinaryIO, Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.image.digest import mismatch
from overlaykit.linux.openat2 import open_in_root

CHUNK = 1 << 20
_BLOCK = 512
_ZEROS = bytes(_BLOCK)
_KEEP_LIMIT = 1 << 20  # kept bytes held in memory before they go to the record
_WHITEOUT = ".wh."

# What the recorder expects next (besides file content, which it counts and skips).
_HEADER, _EXTENDED, _PADDING, _TAIL = range(4)


def _blocks(size: int) -> int:
    """size rounded up to whole 512-byte blocks, as tar stores data."""
    return -(-size // _BLOCK) * _BLOCK


def _clean(name: str) -> str | None:
    """A tar name as unpack cleans it ('./a//b/../c' -> 'a/c'); None if `..` climbs out."""
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


class Recorder:
    """A stream reading through to the tar stream, recording its tar-split to out as it goes.

    Hand it to the unpacker in place of the stream; afterwards call drain() (the end blocks
    and anything after them belong to the tar too) and finish(). out gets the gzip'd record.
    """

    def __init__(self, stream: BinaryIO, out: BinaryIO):
        import gzip
        import tarfile
        self._tarfile = tarfile
        self._stream = stream
        self._gzip = gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0)
        self._kept = bytearray()  # kept bytes not written to the record yet
        self._state = _HEADER
        self._unit = _BLOCK  # length of the kept unit being collected, from _unit_start in _kept
        self._unit_start = 0
        self._skip = 0  # bytes of file content still to go by
        self._extended_type = b""  # the type of the extended header whose data is being collected
        self._name: str | None = None  # set by the extended headers before a member (first wins)
        self._size: int | None = None
        self._contents: set[str] = set()  # names whose content is in the record
        self._content_dirs: set[str] = set()  # and their parent directories
        self._symlinks: set[str] = set()
        self.entries = 0
        self.unusable: str | None = None  # why the record cannot rebuild the tar

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data and self.unusable is None:
            if self._skip >= len(data):  # file content, the bulk of a layer: only counted
                self._skip -= len(data)
            else:
                self._feed(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read the rest of the stream: the end blocks and anything after them are kept too."""
        while self.read(CHUNK):
            pass

    def finish(self, entries: int) -> str | None:
        """Write the last kept bytes and close the record (not out); returns why the record
        cannot rebuild the tar, or None. entries: the members the unpacker saw, which must be
        the ones the recorder saw."""
        if self.unusable is None and entries != self.entries:
            self.unusable = f"the unpacker read {entries} entries, the recorder {self.entries}"
        if self.unusable is None:
            self._write()
        self._gzip.close()
        return self.unusable

    # -- following the tar -----------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        view, pos, end = memoryview(data), 0, len(data)
        while pos < end and self.unusable is None:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
            elif self._state == _TAIL:
                self._kept += view[pos:]
                pos = end
                if len(self._kept) > _KEEP_LIMIT:
                    self._write()
            else:
                step = min(self._unit_start + self._unit - len(self._kept), end - pos)
                self._kept += view[pos:pos + step]
                pos += step
                if len(self._kept) == self._unit_start + self._unit:
                    self._unit_done(bytes(self._kept[self._unit_start:]))

    def _expect(self, state: int, size: int) -> None:
        if len(self._kept) > _KEEP_LIMIT:
            self._write()
        self._state, self._unit, self._unit_start = state, size, len(self._kept)

    def _unit_done(self, unit: bytes) -> None:
        if self._state == _HEADER:
            self._header(unit)
        elif self._state == _EXTENDED:
            self._extended(unit)  # whole blocks, padding too, as tarfile parses them
        else:
            self._expect(_HEADER, _BLOCK)

    def _header(self, block: bytes) -> None:
        tarfile = self._tarfile
        if block == _ZEROS:  # the end of the archive, as tarfile reads it: the rest is kept as is
            self._expect(_TAIL, 0)
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            self._give_up("a header the unpacker does not read")
            return
        if info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.XGLTYPE,
                         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            self._extended_type = info.type
            if info.size < 0:
                self._give_up("an extended header of negative size")
            elif info.size == 0:
                self._extended(b"")
            else:
                self._expect(_EXTENDED, _blocks(info.size))
            return
        if info.type == tarfile.GNUTYPE_SPARSE:
            self._give_up(f"{info.name}: a sparse file")
            return
        name = self._name if self._name is not None else info.name
        size = self._size if self._size is not None else info.size
        self._name = self._size = None
        self.entries += 1
        # As tarfile: only regular files (and types it does not know) have data after the header.
        has_data = info.type in tarfile.REGULAR_TYPES or info.type not in tarfile.SUPPORTED_TYPES
        if has_data and size < 0:
            self._give_up(f"{name}: negative size")
            return
        content = size if has_data else 0
        self._check(name, info, content)
        if self.unusable is not None:
            return
        if content:
            self._write(_clean(name), content)
            self._skip = content
            padding = _blocks(content) - content
            self._expect(_PADDING if padding else _HEADER, padding or _BLOCK)
        else:
            self._expect(_HEADER, _BLOCK)

    def _extended(self, data: bytes) -> None:
        """A PAX header's records or a GNU long name: what tarfile makes of them for the next member."""
        tarfile = self._tarfile
        if self._extended_type == tarfile.GNUTYPE_LONGNAME:
            if self._name is None:
                self._name = tarfile.nts(data, "utf-8", "surrogateescape")
        elif self._extended_type != tarfile.GNUTYPE_LONGLINK:
            records = _pax_records(data)
            if records is None:
                self._give_up("a PAX header the unpacker does not read")
                return
            if any(key.startswith(b"GNU.sparse.") for key in records):
                self._give_up("a sparse file")
                return
            if self._extended_type == tarfile.XGLTYPE:
                if b"path" in records or b"size" in records:  # would apply to every later member
                    self._give_up("a global PAX header with a path or size")
                    return
            else:
                if self._name is None and b"path" in records:
                    self._name = records[b"path"].decode("utf-8", "surrogateescape").rstrip("/")
                if self._size is None and b"size" in records:
                    try:
                        self._size = int(records[b"size"].decode("utf-8", "surrogateescape"))
                    except ValueError:
                        self._size = 0  # as tarfile
        self._expect(_HEADER, _BLOCK)

    def _check(self, name: str, info, content: int) -> None:
        """Give up when this entry means some recorded content will not be in diff/ as it was."""
        path = _clean(name)
        if path is None or (content and not path):
            self._give_up(f"{name}: not a name inside the layer")
            return
        if path in self._contents:
            self._give_up(f"{path}: named again after its content")
            return
        if self._symlinks:
            slash = path.find("/")
            while slash > 0:
                if path[:slash] in self._symlinks:
                    self._give_up(f"{path}: under a symlink of the same layer")
                    return
                slash = path.find("/", slash + 1)
        if not info.isdir() and path in self._content_dirs:
            self._give_up(f"{path}: replaces a directory with recorded content")
            return
        if info.issym():
            self._symlinks.add(path)
        if content:
            if path.startswith(_WHITEOUT) or "/" + _WHITEOUT in path:
                self._give_up(f"{path}: content under a whiteout name")
                return
            self._contents.add(path)
            parent = path.rpartition("/")[0]
            while parent and parent not in self._content_dirs:
                self._content_dirs.add(parent)
                parent = parent.rpartition("/")[0]

    def _give_up(self, why: str) -> None:
        self.unusable = why
        self._kept.clear()

    def _write(self, name: str | None = None, size: int = 0) -> None:
        """One line: the kept bytes so far, then (if name) a file's content by reference."""
        line = {"raw": base64.b64encode(self._kept).decode()}
        if name is not None:
            line["file"], line["size"] = name, size
        self._gzip.write(json.dumps(line).encode() + b"\n")  # lone surrogates (raw name bytes) escaped
        self._kept.clear()
        self._unit_start = 0


def _pax_records(data: bytes) -> dict[bytes, bytes] | None:
    """'<length> <key>=<value>\\n' records (later ones win, as in tarfile); None if malformed."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        digits = data[pos:space]
        if space < 0 or not digits.isdigit() or len(digits) > 20:
            return None
        length = int(digits)
        end = pos + length - 1  # the newline
        if length < 5 or pos + length > len(data) or data[end] != 0x0A:
            return None
        key, equals, value = data[space + 1:end].partition(b"=")
        if not key or not equals:
            return None
        records[key] = value
        pos += length
    return records


# -- rebuilding ----------------------------------------------------------------------------

def assembled_size(record: str, what: str) -> int:
    """Bytes of the tar the record at path `record` rebuilds (the record is read and checked once)."""
    return sum(len(kept) + size for kept, _, size in _lines(record, what))


def open_assembled(record: str, diff_dir: str, digest: str, size: int, what: str) -> BinaryIO:
    """The tar rebuilt from the record and diff_dir, to read; it must be size bytes with digest.

    Anything else raises OverlaykitError before the last bytes are handed out. Close it (or
    use it as a context manager) to release the files it has open.
    """
    return _Verified(_assemble(record, diff_dir, what), digest, size, what)


def _lines(record: str, what: str) -> Iterator[tuple[bytes, str | None, int]]:
    """(kept bytes, file name or None, file size) for each line of the record."""
    import gzip
    import zlib
    try:
        with gzip.open(record, "rb") as f:
            for number, line in enumerate(f, 1):
                yield _parse(line, what, number)
    except (gzip.BadGzipFile, EOFError, zlib.error, ValueError) as e:  # bad JSON, base64, UTF-8
        raise OverlaykitError(f"{what}: tar-split record {record} is corrupt ({e})") from None


def _parse(line: bytes, what: str, number: int) -> tuple[bytes, str | None, int]:
    value = json.loads(line)
    where = f"{what}: tar-split record line {number}"
    if not isinstance(value, dict) or not isinstance(value.get("raw"), str):
        raise OverlaykitError(f"{where}: not a tar-split record line")
    kept = base64.b64decode(value["raw"], validate=True)
    if set(value) == {"raw"}:
        return kept, None, 0
    name, size = value.get("file"), value.get("size")
    if set(value) != {"raw", "file", "size"} or not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise OverlaykitError(f"{where}: not a tar-split record line")
    if not isinstance(name, str) or not name or "\0" in name or _clean(name) != name:
        raise OverlaykitError(f"{where}: {name!r} is not a name inside the layer")
    return kept, name, size


def _assemble(record: str, diff_dir: str, what: str) -> Iterator[bytes]:
    root = os.open(diff_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for kept, name, size in _lines(record, what):
            if kept:
                yield kept
            if name is not None:
                yield from _content(root, name, size, what)
    finally:
        os.close(root)


def _content(root: int, name: str, size: int, what: str) -> Iterator[bytes]:
    """The content of diff/<name>, resolved inside diff/; a symlink, device or fifo is never opened."""
    try:
        found = open_in_root(root, name, os.O_PATH | os.O_NOFOLLOW)
    except OSError as e:
        raise OverlaykitError(f"{what}: {name}: {e.strerror} in the layer's diff dir") from None
    try:
        st = os.fstat(found)
        if not stat.S_ISREG(st.st_mode):
            raise OverlaykitError(f"{what}: {name}: not a regular file in the layer's diff dir")
        if st.st_size != size:
            raise OverlaykitError(f"{what}: {name}: {st.st_size} bytes in the layer's diff dir, "
                                  f"{size} in its tar-split record")
        fd = os.open(f"/proc/self/fd/{found}", os.O_RDONLY | os.O_CLOEXEC)  # the inode checked above
    finally:
        os.close(found)
    try:
        left = size
        while left:
            data = os.read(fd, min(CHUNK, left))
            if not data:
                raise OverlaykitError(f"{what}: {name}: shorter than its {size} bytes while read")
            left -= len(data)
            yield data
    finally:
        os.close(fd)


class _Verified:
    """Chunks read as a file; the chunk that completes size bytes is handed out only if the
    whole has the expected digest, so no reader ever gets a complete tar that is not it."""

    def __init__(self, chunks: Iterator[bytes], digest: str, size: int, what: str):
        self._chunks, self._digest, self._size, self._what = chunks, digest, size, what
        self._hash = hashlib.sha256()
        self._done = 0
        self._buffer, self._offset = b"", 0

    def read(self, size: int = -1) -> bytes:
        if self._offset == len(self._buffer):
            self._buffer, self._offset = self._next(), 0
        end = len(self._buffer) if size is None or size < 0 else self._offset + size
        data = self._buffer[self._offset:end]
        self._offset += len(data)
        return data

    def _next(self) -> bytes:
        chunk = next(self._chunks, None)
        if chunk is None:
            if self._done != self._size:
                raise OverlaykitError(f"{self._what}: rebuilt tar has {self._done} bytes, "
                                      f"expected {self._size}")
            return b""
        self._hash.update(chunk)
        self._done += len(chunk)
        if self._done > self._size:
            raise OverlaykitError(f"{self._what}: rebuilt tar is longer than {self._size} bytes")
        if self._done == self._size:
            digest = "sha256:" + self._hash.hexdigest()
            if digest != self._digest:
                raise OverlaykitError(mismatch(self._what, digest, self._digest)
                                      + " (the layer's files changed after it was stored)")
        return chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._chunks.close()

    def __enter__(self) -> "_Verified":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
