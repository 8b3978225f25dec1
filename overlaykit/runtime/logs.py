"""A container's output log in Docker's json-file format: the writer its supervisor feeds, the reader `logs` uses.

containers/<id>/<id>-json.log holds one JSON object a line, as dockerd's json-file driver
writes it: {"log":"hello\\n","stream":"stdout","time":"2026-12-03T06:13:07.123456789Z"}.
The output is cut at each newline, and a line longer than 16 KiB is cut there too (its
pieces carry no newline), as Docker's log copier does; what is left at the end of the
stream is written without one. A container with a terminal (-t) has one stream, stdout,
with the terminal's \\r\\n. Each entry goes out in one append, so a reader sees whole lines
or nothing of a line it can trust (a line without its newline is still being written).

Containers made before this format kept a plain containers/<id>/container.log: `logs`
still prints it (every line stdout, stamped with the file's mtime), and the container's
next start migrates it into the json-file log with those stamps and removes it.
"""

import json
import os
from json.encoder import encode_basestring  # json.dumps(ensure_ascii=False) for one string, in C
import re
import time
from typing import Callable, Iterator, NamedTuple

from overlaykit.runtime.logtime import format_nano, parse_stamp
from overlaykit.store.layout import Layout

MAX_LINE = 16 * 1024  # Docker's log copier buffer: a longer line goes in pieces
STREAMS = ("stdout", "stderr")
_FOLLOW_POLL = 0.1  # seconds between looks at a followed log that has not grown


class Entry(NamedTuple):
    """One line of a container's output as the json-file log keeps it: which stream, what, when."""

    stream: str   # stdout or stderr
    data: bytes   # the line, with its newline unless it was cut or the last
    ns: int       # when the supervisor read it, nanoseconds since the epoch


# Go's encoder as Docker's jsonlog uses it: <, > and & escaped, \b, \f and \t as \u00XX,
# U+2028 and U+2029 escaped, each byte that is not UTF-8 as an escaped U+FFFD (a real
# U+FFFD stays as it is); Python's encoder does the rest the same way.
_GO_ESCAPES = {"\\b": "\\u0008", "\\f": "\\u000c", "\\t": "\\u0009", "\\\\": "\\\\",
               "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_MARKERS = ("<", ">", "&", "\\b", "\\f", "\\t", "\u2028", "\u2029")
_GO_DIFFERENCES = re.compile(r"\\[bft\\]|[<>&\u2028\u2029]|[\udc80-\udcff]")


def encode(entry: Entry) -> bytes:
    """One line of the json-file log, byte for byte as dockerd writes it."""
    return _encode_lines([entry.data], entry.stream, entry.ns)


def _encode_lines(lines: list[bytes], stream: str, ns: int) -> bytes:
    """The log lines of lines read at the same moment (the time formatted once: it is most
    of the cost of a short line)."""
    ending = f',"stream":"{stream}","time":"{format_nano(ns)}"}}\n'
    text = "".join('{"log":' + encode_basestring(line.decode("utf-8", "surrogateescape")) + ending
                   for line in lines)
    if any(marker in text for marker in _GO_MARKERS):  # a cheap look first: most text has none
        text = _GO_DIFFERENCES.sub(_go_escape, text)  # nothing but the strings can match
    try:
        return text.encode()
    except UnicodeEncodeError:  # bytes that were not UTF-8
        return _GO_DIFFERENCES.sub(_go_escape, text).encode()


def _go_escape(match: re.Match) -> str:
    return _GO_ESCAPES.get(match.group(), "\\ufffd")


def decode(line: bytes) -> Entry | None:
    """The entry of one log line; None for a line that is not one (a torn write, say)."""
    try:
        record = json.loads(line)
        return Entry(record["stream"], record["log"].encode("utf-8", "replace"),
                     parse_stamp(record["time"]) or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def split_lines(pending: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines (or 16 KiB pieces) of pending + data, and what is left over."""
    buffer, lines, start = pending + data, [], 0
    while start < len(buffer):
        end = buffer.find(b"\n", start, start + MAX_LINE)
        if end >= 0:
            lines.append(buffer[start:end + 1])
            start = end + 1
        elif len(buffer) - start >= MAX_LINE:
            lines.append(buffer[start:start + MAX_LINE])
            start += MAX_LINE
        else:
            break
    return lines, buffer[start:]


class LogWriter:
    """Appends a running container's output to its json-file log, line by line per stream.

    A write that fails (a full disk) stops the logging with one warning instead of the
    container: Docker drops log lines it cannot write, and so does this.
    """

    def __init__(self, path: str, warn: Callable[[str], None]):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._path = path
        self._warn = warn
        self._pending = {stream: b"" for stream in STREAMS}

    def write(self, stream: str, data: bytes) -> None:
        lines, self._pending[stream] = split_lines(self._pending[stream], data)
        self._append(stream, lines)

    def end(self, stream: str) -> None:
        """The stream closed: what it left without a newline is its last entry."""
        rest, self._pending[stream] = self._pending[stream], b""
        self._append(stream, [rest] if rest else [])

    def close(self) -> None:
        for stream in STREAMS:
            self.end(stream)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _append(self, stream: str, lines: list[bytes]) -> None:
        if not lines or self._fd < 0:
            return
        data = _encode_lines(lines, stream, time.time_ns())
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as e:
            os.close(self._fd)
            self._fd = -1
            self._warn(f"writing the log {self._path}: {e.strerror}; the output is no longer logged")

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def migrate_plain_log(layout: Layout, container_id: str) -> None:
    """Turn a container's old plain container.log into json-file entries, then remove it."""
    plain = layout.container_plain_log(container_id)
    try:
        with open(plain, "rb") as f:
            data, ns = f.read(), os.fstat(f.fileno()).st_mtime_ns
    except FileNotFoundError:
        return
    lines, rest = split_lines(b"", data)
    entries = _encode_lines(lines + ([rest] if rest else []), "stdout", ns)
    fd = os.open(layout.container_log(container_id),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, entries)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(plain)


class LogQuery(NamedTuple):
    """What `logs` asks for: the last `tail` entries (None: all), those at or after `since`
    and not after `until` (nanoseconds; None: unbounded), and with follow the new ones too."""

    tail: int | None = None
    since: int | None = None
    until: int | None = None
    follow: bool = False


def read_log(layout: Layout, container_id: str, query: LogQuery,
             running: Callable[[], bool]) -> Iterator[Entry]:
    """The container's log entries as query asks; with follow, new ones until running() is
    False (asked after the log stopped growing, so the last lines are never missed) or
    until is past."""
    path = layout.container_log(container_id)
    if not os.path.exists(path) and os.path.exists(layout.container_plain_log(container_id)):
        yield from _select(_read_plain(layout.container_plain_log(container_id)), query)
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not query.follow:
            return
        fd = _await_log(path, running)
        if fd is None:
            return
    with os.fdopen(fd, "rb", buffering=0) as f:
        offset = _tail_offset(f, query.tail)
        f.seek(offset)
        pending = b""
        while True:
            data = f.read(1 << 20)
            if not data:
                if not query.follow or (query.until is not None and time.time_ns() > query.until):
                    return
                if running():
                    time.sleep(_FOLLOW_POLL)
                    continue
                data = f.read(1 << 20)  # what came between the last read and the answer
                if not data:
                    return
            *lines, pending = (pending + data).split(b"\n")
            for entry in filter(None, map(decode, lines)):
                if query.until is not None and entry.ns > query.until:
                    return
                if query.since is None or entry.ns >= query.since:
                    yield entry


def _await_log(path: str, running: Callable[[], bool]) -> int | None:
    """A followed container that has no log yet (created, not started): wait for it to start."""
    while True:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not running():
                return None
            time.sleep(_FOLLOW_POLL)


def _read_plain(path: str) -> list[Entry]:
    with open(path, "rb") as f:
        data, ns = f.read(), os.fstat(f.fileno()).st_mtime_ns
    lines, rest = split_lines(b"", data)
    return [Entry("stdout", line, ns) for line in lines + ([rest] if rest else [])]


def _select(entries: list[Entry], query: LogQuery) -> Iterator[Entry]:
    if query.tail is not None:
        entries = entries[len(entries) - query.tail:] if query.tail else []
    for entry in entries:
        if query.until is not None and entry.ns > query.until:
            return
        if query.since is None or entry.ns >= query.since:
            yield entry


def _tail_offset(f, tail: int | None) -> int:
    """Where the last `tail` complete lines of the log begin (0: from the start), read backwards."""
    end = f.seek(0, os.SEEK_END)
    if tail is None:
        return 0
    if tail == 0:
        return end
    position, newlines, block = end, 0, 65536
    while position > 0:
        start = max(0, position - block)
        f.seek(start)
        chunk = f.read(position - start)
        index = len(chunk)
        while (index := chunk.rfind(b"\n", 0, index)) >= 0:
            if start + index != end - 1:  # the log's own last newline ends the last line
                newlines += 1
                if newlines == tail:
                    return start + index + 1
        position = start
    return 0
