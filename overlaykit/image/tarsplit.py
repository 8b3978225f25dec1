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
from json.encoder import encode_basestring_ascii as _json_string
import os
import re
import stat
from typing import BinaryIO, Iterator

from overlaykit.errors import OverlaykitError
from overlaykit.image.digest import mismatch
from overlaykit.image.unpack import clean_name
from overlaykit.linux.openat2 import open_in_root

CHUNK = 1 << 20
_BLOCK = 512
_ZEROS = bytes(_BLOCK)
_KEEP_LIMIT = 1 << 20  # kept bytes held in memory before they go to the record
_WHITEOUT = ".wh."

_DIRECTORY, _SYMLINK = b"5", b"2"  # tarfile.DIRTYPE and SYMTYPE (tarfile is imported late)
# Headers whose data describes the next member: PAX (x, X, global g), GNU long name and link.
_EXTENDED_TYPES = (b"x", b"X", b"g", b"L", b"K")
# The PAX keys that change where a file's content lies or which file it is; most PAX
# headers (times, xattrs, owners) have none and are not parsed.
_MAY_MATTER = re.compile(rb"path=|size=|GNU\.sparse")
_LINES_LIMIT = 1 << 18  # record lines gathered before they are compressed


def _blocks(size: int) -> int:
    """size rounded up to whole 512-byte blocks, as tar stores data."""
    return -(-size // _BLOCK) * _BLOCK


class Recorder:
    """A stream reading through to the tar stream, recording its tar-split to out as it goes.

    Hand it to the unpacker in place of the stream; afterwards call drain() (the end blocks
    and anything after them belong to the tar too) and finish(). out gets the gzip'd record.
    Each header is read once it is whole, as tarfile reads it (its checksum is tarfile's to
    check: a bad one fails the unpack, and the record with it).
    """

    def __init__(self, stream: BinaryIO, out: BinaryIO):
        import gzip
        import tarfile
        self._tarfile = tarfile
        self._stream = stream
        self._gzip = gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=1, mtime=0)
        self._lines: list[bytes] = []  # record lines not compressed yet
        self._lines_size = 0
        self._kept = bytearray()  # kept bytes not in a record line yet
        self._next = 0  # where in _kept the next header starts
        self._skip = 0  # bytes of file content still to go by
        self._tail = False  # past the end of the archive: the rest is kept as it is
        self._extended: list[tuple[bytes, int, int]] = []  # (type, start in _kept, size) before a member
        self._contents: set[str] = set()  # names whose content is in the record
        self._content_dirs: set[str] = set()  # and their parent directories
        self._symlinks: set[str] = set()
        self.entries = 0
        self.unusable: str | None = None  # why the record cannot rebuild the tar

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if not data or self.unusable is not None:
            return data
        if self._skip >= len(data):  # file content, the bulk of a layer: only counted
            self._skip -= len(data)
            return data
        if self._skip:
            self._kept += memoryview(data)[self._skip:]
            self._skip = 0
        else:
            self._kept += data
        if not self._tail:
            while len(self._kept) >= self._next + _BLOCK and not self._tail and self.unusable is None:
                self._header(self._next)
        elif len(self._kept) > _KEEP_LIMIT:
            self._write(len(self._kept))
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
            self._write(len(self._kept))
            self._gzip.write(b"".join(self._lines))
        self._gzip.close()
        return self.unusable

    # -- following the tar -----------------------------------------------------------------

    def _header(self, at: int) -> None:
        """The header block at _kept[at:]: an extended header, the end, or a member."""
        block = bytes(self._kept[at:at + _BLOCK])
        if block == _ZEROS:  # the end of the archive, as tarfile reads it
            self._tail = True
            return
        kind = block[156:157]
        size = self._number(block[124:136])
        if size is None or size < 0:
            self._give_up("a header the unpacker does not read")
            return
        if kind in _EXTENDED_TYPES:  # its data describes the member after it
            self._extended.append((kind, at + _BLOCK, size))
            self._next = at + _BLOCK + _blocks(size)
            return
        if kind == b"S":
            self._give_up("a sparse file")
            return
        name = _string(block[0:100])
        if kind == b"\0" and name.endswith("/"):  # old tars' directories, as tarfile
            kind = _DIRECTORY
        if block[345]:
            name = _string(block[345:500]) + "/" + name  # a ustar name prefix
        if self._extended:
            name, size = self._apply_extended(name, size)
            if self.unusable is not None:
                return
        self.entries += 1
        # As tarfile: only regular files (and types it does not know) have data after the header.
        has_data = kind in self._tarfile.REGULAR_TYPES or kind not in self._tarfile.SUPPORTED_TYPES
        content = size if has_data else 0
        path = self._check(name, kind, content)
        if path is None:
            return
        start = at + _BLOCK
        if not content:
            self._next = start
            if start > _KEEP_LIMIT:
                self._write(start)
                self._next = 0
            return
        arrived = len(self._kept) - start  # content bytes read with the header
        self._write(start, path, content)
        if arrived >= content:
            del self._kept[:content]
        else:
            self._kept.clear()
            self._skip = content - arrived
        self._next = _blocks(content) - content  # after the padding

    def _number(self, field: bytes) -> int | None:
        """A numeric header field as tarfile.nti reads it; None where tarfile would fail."""
        if field[0] in (0o200, 0o377):  # base-256, for big sizes
            try:
                return self._tarfile.nti(field)
            except self._tarfile.HeaderError:
                return None
        try:
            return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            return None

    def _apply_extended(self, name: str, size: int) -> tuple[str, int]:
        """name and size after the extended headers before this member: PAX path and size,
        GNU long names. tarfile lets the first header that sets one win."""
        tarfile = self._tarfile
        new_name: str | None = None
        new_size: int | None = None
        for kind, start, length in self._extended:
            data = bytes(self._kept[start:start + _blocks(length)])  # padding too, as tarfile parses it
            if kind == tarfile.GNUTYPE_LONGNAME:
                if new_name is None:
                    new_name = _string(data)
            elif kind == tarfile.GNUTYPE_LONGLINK or not _MAY_MATTER.search(data):
                continue
            else:
                records = _pax_records(data)
                if records is None or any(key.startswith(b"GNU.sparse.") for key in records):
                    self._give_up("a sparse file or a PAX header the unpacker does not read")
                    break
                if kind == tarfile.XGLTYPE:
                    if b"path" in records or b"size" in records:  # would apply to every later member
                        self._give_up("a global PAX header with a path or size")
                        break
                    continue
                if new_name is None and b"path" in records:
                    new_name = _string(records[b"path"]).rstrip("/")
                if new_size is None and b"size" in records:
                    try:
                        new_size = int(_string(records[b"size"]))
                    except ValueError:
                        new_size = 0  # as tarfile
        self._extended.clear()
        return (name if new_name is None else new_name), (size if new_size is None else new_size)

    def _check(self, name: str, kind: bytes, content: int) -> str | None:
        """The entry's cleaned name; None (and the record given up) when this entry means that
        some recorded content will not be in diff/ as it was."""
        path = clean_name(name)
        if path is None or (content and not path):
            return self._give_up(f"{name}: not a name inside the layer")
        if path in self._contents:
            return self._give_up(f"{path}: named again after its content")
        if self._symlinks:
            slash = path.find("/")
            while slash > 0:
                if path[:slash] in self._symlinks:
                    return self._give_up(f"{path}: under a symlink of the same layer")
                slash = path.find("/", slash + 1)
        if kind != _DIRECTORY and path in self._content_dirs:  # a directory merges
            return self._give_up(f"{path}: replaces a directory with recorded content")
        if kind == _SYMLINK:
            self._symlinks.add(path)
        if content:
            if path.startswith(_WHITEOUT) or "/" + _WHITEOUT in path:
                return self._give_up(f"{path}: content under a whiteout name")
            self._contents.add(path)
            parent = path.rpartition("/")[0]
            while parent and parent not in self._content_dirs:
                self._content_dirs.add(parent)
                parent = parent.rpartition("/")[0]
        return path

    def _give_up(self, why: str) -> None:
        self.unusable = why
        self._kept.clear()
        self._lines.clear()

    def _write(self, end: int, name: str | None = None, size: int = 0) -> None:
        """One record line: _kept[:end] (then dropped), and if name, that file's content by reference."""
        raw = base64.b64encode(self._kept[:end])
        del self._kept[:end]
        if name is None:
            line = b'{"raw":"%s"}\n' % raw
        else:  # the name as a JSON string, ASCII only: lone surrogates (raw name bytes) escaped
            line = b'{"raw":"%s","file":%s,"size":%d}\n' % (raw, _json_string(name).encode(), size)
        self._lines.append(line)
        self._lines_size += len(line)
        if self._lines_size > _LINES_LIMIT:
            self._gzip.write(b"".join(self._lines))
            self._lines.clear()
            self._lines_size = 0


def _string(field: bytes) -> str:
    """A NUL-terminated header string, decoded as the unpacker's tarfile decodes names."""
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


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
    if not isinstance(name, str) or not name or "\0" in name or clean_name(name) != name:
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
