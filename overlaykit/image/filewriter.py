"""Regular files and symlinks of a tar written by worker threads while the unpacker reads on.

Unpacking a layer is bound by the kernel's cost of creating files (open(O_CREAT), write,
fchown, fchmod, utime, close: about half a millisecond each on a small VM's ext4), and one
thread does them one after another while Python parses the next header. Those calls release
the GIL, so a few threads creating files side by side use the other CPUs and overlap the
parsing: the main thread still decides everything (names resolved inside the root, what
replaces what), and only hands a worker, 16 files at a time, "create base in this directory
fd, with these bytes and this metadata" (O_EXCL | O_NOFOLLOW, as before).

Order still holds where it matters. A file being written is known by its directory's inode
and its name (never by its path: a symlinked parent reaches the same directory by another
name), and the unpacker asks `busy(directory, name)` before an entry at that place and
`settle()`s first; it settles too before a hard link, a whiteout, removing a tree, making a
missing parent, and setting directory times.
`close()` waits for every worker, so nothing writes once the caller removes a failed layer.
"""

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from overlaykit.errors import OverlaykitError

INLINE_LIMIT = 8 << 20   # bigger files are written by the unpacker itself, streamed
IN_FLIGHT = 64 << 20     # bytes read ahead and not yet written, at most
BATCH = 16               # files handed to a worker at once (or fewer, past BATCH_BYTES)
BATCH_BYTES = 1 << 20
WORKERS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class NewFile:
    """A regular file (or a symlink) to create: everything a worker needs, nothing it must resolve."""

    name: str            # the tar entry, for messages
    directory: tuple[int, int]  # (st_dev, st_ino) of the directory it is created in
    base: str            # its name there
    data: bytes
    uid: int
    gid: int
    mode: int
    xattrs: tuple[tuple[str, bytes], ...]
    times: tuple[int, int]
    link: str | None = None  # a symlink to this, not a file (data and mode unused)


class FileWriter:
    """A small pool writing NewFiles; errors come back, naming the entry, at the next settle."""

    def __init__(self, what: str, set_xattr):
        self._what, self._set_xattr = what, set_xattr
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="unpack")
        # A worker is handed a batch of files, not one: a Future, a queue wake-up and the pool's
        # bookkeeping per file cost the main thread (and the GIL) more than the writes saved.
        self._batch: list[tuple[int, NewFile]] = []  # (dir fd, file) not handed to a worker yet
        self._batch_bytes = 0
        self._queued: deque[tuple[Future, list[tuple[int, NewFile]]]] = deque()
        self._bytes = 0
        self._busy: set[tuple[tuple[int, int], str]] = set()
        # directory -> [our dup of it, files queued there]: one dup while it has files queued,
        # not one per file (the caller may close its own fd; an open fd also keeps the inode,
        # so the key cannot come to name another directory meanwhile)
        self._dirs: dict[tuple[int, int], list[int]] = {}
        # dups no file needs any more, closed by the worker of the next batch: a syscall on the
        # main thread hands the GIL to a worker and waits to get it back (~0.1 ms each here)
        self._unused: list[int] = []

    def write(self, dir_fd: int, new: NewFile) -> None:
        """Create new.base in dir_fd (new.directory) in the background."""
        while self._bytes + len(new.data) > IN_FLIGHT and (self._queued or self._batch):
            self._finish_oldest()
        held = self._dirs.get(new.directory)
        if held is None:
            held = self._dirs[new.directory] = [os.dup(dir_fd), 0]
        held[1] += 1
        self._busy.add((new.directory, new.base))
        self._batch.append((held[0], new))
        self._batch_bytes += len(new.data)
        self._bytes += len(new.data)
        if len(self._batch) >= BATCH or self._batch_bytes >= BATCH_BYTES:
            self._hand_over()
            if len(self._queued) > 16:  # keep the busy sets small; the pool is far ahead anyway
                self._finish_oldest()

    def busy(self, directory: tuple[int, int], base: str) -> bool:
        """Whether a file named base in directory is still being written."""
        return (directory, base) in self._busy

    def settle(self) -> None:
        """Wait until every file handed over is written; raise the first failure."""
        while self._queued or self._batch:
            self._finish_oldest()

    def close(self) -> None:
        """Wait for the workers (whatever happened: a failed layer is removed after) and stop them."""
        self._pool.shutdown(wait=True)
        self._queued.clear()
        for fd in [*self._unused, *(held[0] for held in self._dirs.values())]:
            os.close(fd)
        self._unused.clear()
        self._dirs.clear()

    def _hand_over(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        unused, self._unused = self._unused, []
        self._queued.append((self._pool.submit(self._create_all, batch, unused), batch))

    def _finish_oldest(self) -> None:
        if not self._queued:
            self._hand_over()
        future, batch = self._queued.popleft()
        try:
            future.result()  # raises what the worker raised
        finally:
            for _, new in batch:
                self._bytes -= len(new.data)
                self._busy.discard((new.directory, new.base))
                held = self._dirs[new.directory]
                held[1] -= 1
                if not held[1]:
                    del self._dirs[new.directory]
                    self._unused.append(held[0])

    def _create_all(self, batch: list[tuple[int, NewFile]], unused: list[int]) -> None:
        try:
            for dir_fd, new in batch:
                self._create(dir_fd, new)
        finally:
            for fd in unused:
                os.close(fd)

    def _create(self, dir_fd: int, new: NewFile) -> None:
        if new.link is not None:
            self._create_symlink(dir_fd, new)
            return
        try:
            fd = os.open(new.base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dir_fd)
            try:
                view = memoryview(new.data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchown(fd, new.uid, new.gid)
                os.fchmod(fd, new.mode)  # after chown, which clears setuid
                for name, value in new.xattrs:  # after chown, which clears security.capability
                    self._set_xattr(fd, name, value)
                os.utime(fd, ns=new.times)
            finally:
                os.close(fd)
        except OSError as e:
            raise OverlaykitError(f"{self._what}: {new.name}: {e.strerror or e}") from e

    def _create_symlink(self, dir_fd: int, new: NewFile) -> None:
        """symlink, then its owner, xattrs and times, never following it (it is ours till settled)."""
        try:
            os.symlink(new.link, new.base, dir_fd=dir_fd)
            os.chown(new.base, new.uid, new.gid, dir_fd=dir_fd, follow_symlinks=False)
            for name, value in new.xattrs:  # lsetxattr has no *at form
                self._set_xattr(f"/proc/self/fd/{dir_fd}/{new.base}", name, value)
            os.utime(new.base, ns=new.times, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as e:
            raise OverlaykitError(f"{self._what}: {new.name}: {e.strerror or e}") from e
