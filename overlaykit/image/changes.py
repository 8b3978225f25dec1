"""A container's changes, from its upper dir and the lower dirs under it, as `docker diff` shows them.

The one change walk behind `diff`, `commit` and `export` (commit and export walk the same
way, see image/pack.py). What `docker diff` prints depends on the overlay2 driver's mode;
Docker falls back to its "naive diff" whenever the kernel has redirect_dir on (most
distribution kernels), and that is what the fixture demo.diff shows. Its rules, from moby's
archive.ChangesDirs, which compares the container's whole tree with its parent's:

- a path present only in the new tree is A, and so is everything below it;
- a path present only in the old tree is D (only itself, not what was below it);
- a path in both is C when mode (type included), owner, group or device number differ, or,
  for anything but a directory, mtime (to the second when one side has no nanoseconds) or
  size, or the security.capability xattr;
- every directory with a change below it is C too, unless it is already A or C;
- output sorted by path (Docker's own order is Go's map order, i.e. random).

Only paths in the upper dir can differ, so the walk is over the upper dir, each path looked
up in the lowers as overlayfs would merge them (whiteouts and opaque directories of the
lowers respected). In the upper, a 0:0 character device deletes what the lowers had, and an
opaque directory deletes what the lowers had below it except what it holds itself.
`hidden` paths (the init layer's /etc/hosts and friends) are left out with what is below them.
"""

import errno
import os
import stat
from dataclasses import dataclass
from typing import Collection, Iterator, Sequence

from overlaykit.image.quoting import shown
from overlaykit.image.whiteout import OPAQUE_VALUE, OPAQUE_XATTR, is_whiteout_device
from overlaykit.linux import tree

ADDED, CHANGED, DELETED = "A", "C", "D"
CAPABILITY_XATTR = "security.capability"


@dataclass(frozen=True)
class Change:
    """One line of `docker diff`: what happened to a path, in Docker's letters."""

    kind: str  # "A", "C" or "D"
    path: str  # absolute inside the container: "/etc/motd"

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


@dataclass(frozen=True)
class Entry:
    """One thing the walk met. dir_fd (its directory, open) is valid until the walk goes on."""

    path: str                 # inside the container: "/etc/motd"
    st: os.stat_result        # its lstat
    dir_fd: int
    name: str
    parent: tree.Node         # its directory, for a LowerView
    node: tree.Node | None    # itself, if a directory


def _sorted_names(dir_fd: int) -> list[str]:
    """A directory's names sorted bytewise, as Go sorts them."""
    return sorted(os.listdir(dir_fd), key=os.fsencode)


def entries(root: str, hidden: Collection[str] = ()) -> Iterator[Entry]:
    """Everything under root: parents first, names sorted bytewise, with one directory fd open
    (tree.Cursor), so a deep tree costs its size, not its depth squared.

    The root itself is not yielded; an entry that vanishes during the walk (a running
    container) is left out; a hidden path is left out with everything below it.
    """
    top = tree.Node(None, "")
    root_fd = os.open(root.rstrip("/") or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        cursor = tree.Cursor(root_fd)
    finally:
        os.close(root_fd)
    with cursor:
        stack = [(top, "/", name) for name in reversed(_sorted_names(cursor.fd))]
        while stack:
            parent, prefix, name = stack.pop()
            path = prefix + name
            if path in hidden:
                continue
            fd = cursor.at(parent)
            if fd is None:
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            node = parent.child(name) if stat.S_ISDIR(st.st_mode) else None
            yield Entry(path, st, fd, name, parent, node)
            if node is not None and (fd := cursor.at(node)) is not None:
                stack.extend((node, path + "/", child) for child in reversed(_sorted_names(fd)))


def walk(root: str, hidden: Collection[str] = ()) -> Iterator[tuple[str, os.stat_result]]:
    """(container path, lstat) for everything under root, as `entries` walks it."""
    for entry in entries(root, hidden):
        yield entry.path, entry.st


def is_whiteout(st: os.stat_result) -> bool:
    return is_whiteout_device(st.st_mode, st.st_rdev)


def is_opaque_at(dir_fd: int, name: str) -> bool:
    """Whether name in the directory dir_fd is an opaque directory."""
    try:
        return tree.getxattr_at(dir_fd, name, OPAQUE_XATTR) == OPAQUE_VALUE
    except OSError:
        return False


def _opaque_below(fd: int, hides: bool) -> bool:
    """A layer cursor's value: whether an opaque directory on the way hides the layers below."""
    if hides:
        return True
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == OPAQUE_VALUE
    except OSError:
        return False


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


@dataclass(frozen=True)
class _Layer:
    """A lower dir's cursor, and the walk's directories it has not (with whether it hides what
    the layers below have there): image layers do not change, and asking again would cost
    the depth each time."""

    cursor: tree.Cursor
    missing: dict[tree.Node, bool]


def _in_layer(layer: _Layer, parent: tree.Node, name: str) -> tuple[os.stat_result | None, bool]:
    """(lstat of parent/name in this one layer or None, whether this layer hides it in the layers
    below); the layer's cursor is left on parent when it is there.

    The cursor goes down with no symlink followed: a non-directory ancestor (file, link,
    whiteout) hides everything below it, an opaque one hides what the lower layers have below it.
    """
    hides = layer.missing.get(parent)
    if hides is None and parent.parent is not None:
        hides = layer.missing.get(parent.parent)
    if hides is not None:
        layer.missing[parent] = hides
        return None, hides
    cursor = layer.cursor
    if cursor.at(parent) is not None:
        return _lstat_at(cursor.fd, name), bool(cursor.value)
    st = _lstat_at(cursor.fd, cursor.blocked.name)
    hides = bool(cursor.value) if st is None or stat.S_ISDIR(st.st_mode) else True
    layer.missing[cursor.blocked] = layer.missing[parent] = hides
    return None, hides


def _room_for_fds(count: int) -> None:
    """Past about 1000 layers an fd each passes the usual soft limit of 1024 open files: raise
    it to the hard limit then, as every Go program (docker and dockerd among them) does at start."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class LowerView:
    """The lower dirs (top first) as overlayfs merges them, looked up along a walk's Nodes
    with a tree.Cursor each; a context manager, for their fds."""

    def __init__(self, lowers: Sequence[str]):
        self.layers: list[_Layer] = []
        _room_for_fds(len(lowers))
        for lower in lowers:
            fd = os.open(lower.rstrip("/") or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self.layers.append(_Layer(tree.Cursor(fd, _opaque_below, False), {}))
            except BaseException:
                self.close()
                raise
            finally:
                os.close(fd)

    def close(self) -> None:
        for layer in self.layers:
            layer.cursor.close()

    def __enter__(self) -> "LowerView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def find(self, parent: tree.Node, name: str) -> tuple[int, os.stat_result] | None:
        """(fd of its directory in the layer that provides parent/name, valid until the next
        look-up, and its lstat), or None if the merge has no such path."""
        for layer in self.layers:
            st, hides = _in_layer(layer, parent, name)
            if st is not None:
                return None if is_whiteout(st) else (layer.cursor.fd, st)
            if hides:
                return None
        return None

    def names(self, node: tree.Node) -> set[str]:
        """The names in the directory node of the merge."""
        found: set[str] = set()
        gone: set[str] = set()
        for layer in self.layers:
            st, hides = _in_layer(layer, node.parent, node.name)
            if st is None:
                if hides:
                    break
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            opaque = is_opaque_at(layer.cursor.fd, node.name)
            fd = layer.cursor.at(node)
            if fd is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), node.name)
            for name in os.listdir(fd):
                if name in found or name in gone:
                    continue
                child = _lstat_at(fd, name)
                (gone if child is None or is_whiteout(child) else found).add(name)
            if opaque:
                break
        return found


def _capability(dir_fd: int, name: str) -> bytes | None:
    try:
        return tree.getxattr_at(dir_fd, name, CAPABILITY_XATTR)
    except OSError:
        return None


def _same_time(a_ns: int, b_ns: int) -> bool:
    """moby's sameFsTime: equal, or the same second with one side truncated (tar keeps seconds)."""
    a_sec, a_frac = divmod(a_ns, 10**9)
    b_sec, b_frac = divmod(b_ns, 10**9)
    return a_sec == b_sec and (a_frac == b_frac or a_frac == 0 or b_frac == 0)


def _differs(old_at: tuple[int, str], old: os.stat_result, new_at: tuple[int, str],
             new: os.stat_result) -> bool:
    """moby's statDifferent plus its security.capability comparison."""
    if (old.st_mode != new.st_mode or old.st_uid != new.st_uid or old.st_gid != new.st_gid
            or old.st_rdev != new.st_rdev):
        return True
    if not stat.S_ISDIR(old.st_mode) and (
            not _same_time(old.st_mtime_ns, new.st_mtime_ns) or old.st_size != new.st_size):
        return True
    return _capability(*old_at) != _capability(*new_at)


def _is_hidden(path: str, hidden: Collection[str]) -> bool:
    return any(path == h or path.startswith(h + "/") for h in hidden)


def changes(upper: str, lowers: Sequence[str], hidden: Collection[str] = ()) -> list[Change]:
    """What the upper dir changes in the lowers (top first), as `docker diff` lists it."""
    found: dict[str, str] = {}
    with LowerView(lowers) as below:
        for entry in entries(upper, hidden):
            path, st = entry.path, entry.st
            old = below.find(entry.parent, entry.name)
            if is_whiteout(st):
                if old is not None:
                    found[path] = DELETED
                continue
            if old is None:
                found[path] = ADDED
                continue
            old_fd, old_st = old
            if _differs((old_fd, entry.name), old_st, (entry.dir_fd, entry.name), st):
                found[path] = CHANGED
            if (entry.node is not None and stat.S_ISDIR(old_st.st_mode)
                    and is_opaque_at(entry.dir_fd, entry.name)):
                for name in below.names(entry.node) - _kept(entry.dir_fd, entry.name):
                    found[f"{path}/{name}"] = DELETED
    for path in list(found):
        parent = os.path.dirname(path)
        while parent != "/" and parent not in found:
            found[parent] = CHANGED
            parent = os.path.dirname(parent)
    return [Change(kind, path) for path, kind in sorted(found.items(), key=lambda item: os.fsencode(item[0]))
            if not _is_hidden(path, hidden)]


def _kept(dir_fd: int, name: str) -> set[str]:
    """The names an opaque directory of the upper holds itself, whiteouts left out."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return {child for child in os.listdir(fd)
                if (st := _lstat_at(fd, child)) is not None and not is_whiteout(st)}
    finally:
        os.close(fd)


def format_changes(found: Sequence[Change]) -> str:
    """`docker diff`'s output: one "K /path" line each, whatever the names hold."""
    return "".join(f"{change.kind} {shown(change.path)}\n" for change in found)
