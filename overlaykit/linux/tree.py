"""Directory trees of any depth: remove one, and look at paths longer than PATH_MAX.

An image layer or a container can hold a directory chain thousands deep. shutil.rmtree and
os.walk recurse in Python (RecursionError) and keep an fd per level, and every call given
an absolute path of PATH_MAX or more fails with ENAMETOOLONG. So `remove_tree` goes down
and up one directory fd at a time, and the look-ups below open a long path's parent a piece
at a time (linux/openat2.py) and act on the last name through that fd. It lives in linux/,
under both image/ and store/ that use it, because the long opens go through openat2.
"""

import errno
import os
import stat
from typing import NamedTuple

from overlaykit.linux.openat2 import (RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
                                      openat2, split_long)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str, dir_fd: int | None = None) -> None:
    """Remove path (relative to dir_fd if given) and everything below it; gone already is fine.

    Iterative, with two fds open at most: it keeps the names on the way down and comes back up
    by `..`, checked to be the directory it came from (else re-walked from the top by name).
    No symlink is followed and no other filesystem entered: a mount below makes it fail with
    EBUSY before anything of that mount is touched.
    """
    path = path.rstrip("/") or "/"
    if dir_fd is None:
        parent, base = os.path.split(path)
        top = _open_long(parent or ".", os.O_RDONLY | os.O_DIRECTORY)
    else:
        top, base = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd), path
    try:
        try:
            st = os.stat(base, dir_fd=top, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _empty(top, base, st, path)
            os.rmdir(base, dir_fd=top)
        else:
            os.unlink(base, dir_fd=top)
    finally:
        os.close(top)


class _Level:
    """One directory on the way down: its name in its parent, its identity, subdirs still to do.
    A plain class, not a dataclass: `run --rm` imports this module, and the start path makes
    no dataclass (docs/architecture.md, "Start-up")."""

    __slots__ = ("name", "dev", "ino", "pending")

    def __init__(self, name: str, dev: int, ino: int, pending: list[str] | None = None) -> None:
        self.name, self.dev, self.ino = name, dev, ino
        self.pending = [] if pending is None else pending


def _empty(top: int, base: str, st: os.stat_result, shown: str) -> None:
    """Remove everything below top/base, leaving base itself."""
    current = _open_checked(top, base, st.st_dev, st.st_ino, shown)
    levels = [_Level(base, st.st_dev, st.st_ino)]
    try:
        levels[0].pending = _unlink_files(current)
        while True:
            level = levels[-1]
            if level.pending:
                name = level.pending.pop()
                try:
                    child = os.open(name, _DIR, dir_fd=current)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    os.unlink(name, dir_fd=current)  # replaced by a file or a link meanwhile
                    continue
                cst = os.fstat(child)
                if cst.st_dev != st.st_dev:
                    os.close(child)
                    raise OSError(errno.EBUSY, "a mount point is below it", shown)
                os.close(current)
                current = child
                levels.append(_Level(name, cst.st_dev, cst.st_ino, _unlink_files(current)))
                continue
            if len(levels) == 1:
                return
            done = levels.pop()
            up = _go_up(current, top, levels, shown)
            os.close(current)
            current = up
            try:
                os.rmdir(done.name, dir_fd=current)
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:  # something was made in it meanwhile: again
                    raise
                levels[-1].pending.append(done.name)
    finally:
        os.close(current)


def _unlink_files(fd: int) -> list[str]:
    """Unlink what in the directory fd is not a directory; its subdirectories' names."""
    with os.scandir(fd) as entries:
        found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    subdirs = []
    for name, is_dir in found:
        if is_dir:
            subdirs.append(name)
            continue
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # became a directory meanwhile
            subdirs.append(name)
    return subdirs


def _go_up(current: int, top: int, levels: list[_Level], shown: str) -> int:
    """The fd of levels[-1], reached by `..` from current or, if that is not it (the tree was
    moved meanwhile), by its names from top."""
    expected = levels[-1]
    up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=current)
    st = os.fstat(up)
    if (st.st_dev, st.st_ino) == (expected.dev, expected.ino):
        return up
    os.close(up)
    fd = os.dup(top)
    for level in levels:
        fd, previous = _open_checked(fd, level.name, level.dev, level.ino, shown), fd
        os.close(previous)
    return fd


def _open_checked(dir_fd: int, name: str, dev: int, ino: int, shown: str) -> int:
    """name in dir_fd opened as a directory, refused unless it is still the inode (dev, ino)."""
    fd = os.open(name, _DIR, dir_fd=dir_fd)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (dev, ino):
        os.close(fd)
        raise OSError(errno.ESTALE, "moved or replaced while being removed", shown)
    return fd


# -- paths of any length -------------------------------------------------------------------


def _open_long(path: str, flags: int) -> int:
    """os.open(path, flags), also for a path of PATH_MAX or more: its first piece resolved as
    any path is, the rest beneath it with no symlink followed."""
    pieces = split_long(path)
    if len(pieces) == 1:
        return os.open(path, flags | os.O_CLOEXEC)
    first = os.open(pieces[0] or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return openat2(first, "/".join(pieces[1:]), flags,
                       resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(first)


def _is_long(path: str) -> bool:
    return len(split_long(path)) > 1


class _Parent:
    """The directory of a long path, opened, and the path's last name: `with _Parent(p) as (fd, name)`."""

    def __init__(self, path: str):
        parent, self.name = os.path.split(path)
        self.fd = _open_long(parent, os.O_PATH | os.O_DIRECTORY)

    def __enter__(self) -> tuple[int, str]:
        return self.fd, self.name

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def lstat(path: str) -> os.stat_result:
    """os.lstat for a path of any length."""
    if not _is_long(path):
        return os.lstat(path)
    with _Parent(path) as (fd, name):
        return os.stat(name, dir_fd=fd, follow_symlinks=False)


def listdir(path: str) -> list[str]:
    """os.listdir for a path of any length."""
    if not _is_long(path):
        return os.listdir(path)
    fd = _open_long(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def readlink(path: str) -> str:
    """os.readlink for a path of any length."""
    if not _is_long(path):
        return os.readlink(path)
    with _Parent(path) as (fd, name):
        return os.readlink(name, dir_fd=fd)


def getxattr(path: str, attribute: str) -> bytes:
    """os.getxattr of path itself (a symlink not followed), for a path of any length."""
    if not _is_long(path):
        return os.getxattr(path, attribute, follow_symlinks=False)
    with _Parent(path) as (fd, name):  # lgetxattr has no *at form; /proc names the parent briefly
        return os.getxattr(f"/proc/self/fd/{fd}/{name}", attribute, follow_symlinks=False)


def getxattr_at(dir_fd: int, name: str, attribute: str) -> bytes:
    """os.getxattr of name in the directory dir_fd, a symlink not followed (no *at form: /proc)."""
    return os.getxattr(f"/proc/self/fd/{dir_fd}/{name}", attribute, follow_symlinks=False)


def listxattr_at(dir_fd: int, name: str) -> list[str]:
    """os.listxattr of name in the directory dir_fd, a symlink not followed."""
    return os.listxattr(f"/proc/self/fd/{dir_fd}/{name}", follow_symlinks=False)


def listxattr(path: str) -> list[str]:
    """os.listxattr of path itself (a symlink not followed), for a path of any length."""
    if not _is_long(path):
        return os.listxattr(path, follow_symlinks=False)
    with _Parent(path) as (fd, name):
        return os.listxattr(f"/proc/self/fd/{fd}/{name}", follow_symlinks=False)


# -- walking a tree with one directory fd --------------------------------------------------


class Node:
    """A directory in a walk: its name in its parent (None and "" for the walk's root).

    A cursor knows the directories it holds by Node (by identity), so the walk and cursors on
    other trees that follow it (the lower layers under an upper dir) find their way in steps."""

    __slots__ = ("parent", "name", "depth")

    def __init__(self, parent: "Node | None", name: str, depth: int = 0) -> None:
        self.parent, self.name, self.depth = parent, name, depth

    def child(self, name: str) -> "Node":
        return Node(self, name, self.depth + 1)


class _Open(NamedTuple):
    """One level the cursor has entered: its identity, to check that `..` led back to it."""

    node: Node | None  # None for the root: a cursor serves one walk
    dev: int
    ino: int
    value: object


class Cursor:
    """The fd of one directory below a root at a time, moved from Node to Node of a walk.

    Opening each deep path from the top makes a walk cost depth squared, and keeping an fd
    per level runs out of fds; a cursor keeps one fd, goes down by name with O_NOFOLLOW (no
    symlink is ever followed) and up by `..`, checked to be the directory it came from (if the
    tree was moved meanwhile, down again by names from the root). `enter(fd, parent's value)`,
    if given, is called on each directory entered; `value` is the current directory's.
    """

    def __init__(self, root_fd: int, enter=None, value: object = None):
        self._root = os.open(".", _DIR, dir_fd=root_fd)
        st = os.fstat(self._root)
        self.fd, self._enter = os.open(".", _DIR, dir_fd=self._root), enter
        self.blocked: Node | None = None
        self._levels = [_Open(None, st.st_dev, st.st_ino, value)]

    @property
    def value(self) -> object:
        return self._levels[-1].value

    @property
    def depth(self) -> int:
        return len(self._levels) - 1

    def at(self, node: Node) -> int | None:
        """The fd of node's directory, or None if a directory on the way is gone or is no
        directory: the cursor then rests on the deepest one it reached, and `blocked` is
        the Node it could not open."""
        for _ in range(2):
            down, common = [], node
            levels = self._levels
            while common.depth and (common.depth >= len(levels) or levels[common.depth].node is not common):
                down.append(common)
                common = common.parent
            if self._climb(common.depth):
                break
        for step in reversed(down):
            if not self._descend(step):
                self.blocked = step
                return None
        return self.fd

    def _descend(self, node: Node) -> bool:
        try:
            fd = os.open(node.name, _DIR, dir_fd=self.fd)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return False
            raise
        st = os.fstat(fd)
        value = self._enter(fd, self.value) if self._enter else None
        os.close(self.fd)
        self.fd = fd
        self._levels.append(_Open(node, st.st_dev, st.st_ino, value))
        return True

    def _climb(self, depth: int) -> bool:
        """Up to the level depth by `..`; False if that was not the way back (then at the root)."""
        while self.depth > depth:
            up = os.open("..", _DIR, dir_fd=self.fd)
            os.close(self.fd)
            self.fd = up
            self._levels.pop()
            st, level = os.fstat(up), self._levels[-1]
            if (st.st_dev, st.st_ino) != (level.dev, level.ino):
                self._reset()
                return False
        return True

    def _reset(self) -> None:
        del self._levels[1:]
        os.close(self.fd)
        self.fd = os.open(".", _DIR, dir_fd=self._root)

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._root)

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
