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

import os
import stat
from dataclasses import dataclass
from typing import Collection, Iterator, Sequence

from overlaykit.image.whiteout import OPAQUE_VALUE, OPAQUE_XATTR, is_whiteout_device
from overlaykit.linux import tree

ADDED, CHANGED, DELETED = "A", "C", "D"
CAPABILITY_XATTR = "security.capability"


@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D"
    path: str  # absolute inside the container: "/etc/motd"

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def sorted_names(directory: str) -> list[str]:
    """A directory's names sorted bytewise, as Go sorts them."""
    return sorted(tree.listdir(directory), key=os.fsencode)


def walk(root: str, hidden: Collection[str] = ()) -> Iterator[tuple[str, os.stat_result]]:
    """(container path, lstat) for everything under root: parents first, names sorted bytewise.

    The root itself is not yielded; an entry that vanishes during the walk (a running
    container) is left out; a hidden path is left out with everything below it.
    """
    root = root.rstrip("/")
    stack = [("/", name) for name in reversed(sorted_names(root or "/"))]
    while stack:
        parent, name = stack.pop()
        path = parent + name
        if path in hidden:
            continue
        try:
            st = tree.lstat(root + path)
        except FileNotFoundError:
            continue
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted_names(root + path)
            except FileNotFoundError:
                continue
            stack.extend((path + "/", child) for child in reversed(names))


def is_whiteout(st: os.stat_result) -> bool:
    return is_whiteout_device(st.st_mode, st.st_rdev)


def is_opaque(full_path: str) -> bool:
    try:
        return tree.getxattr(full_path, OPAQUE_XATTR) == OPAQUE_VALUE
    except OSError:
        return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return tree.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _in_layer(layer: str, path: str) -> tuple[os.stat_result | None, bool]:
    """(lstat of path in this one layer or None, whether this layer hides path in the layers below).

    Ancestors are checked top down so that no symlink in the layer is ever followed: a
    non-directory ancestor (file, link, whiteout) hides everything below it, an opaque one
    hides what the lower layers have below it.
    """
    hides = False
    current = layer
    for part in path.strip("/").split("/")[:-1]:
        current += "/" + part
        st = _lstat(current)
        if st is None:
            return None, hides
        if not stat.S_ISDIR(st.st_mode):
            return None, True
        hides = hides or is_opaque(current)
    return _lstat(layer + path), hides


class LowerView:
    """The lower dirs (top first) as overlayfs merges them, looked up one path at a time."""

    def __init__(self, lowers: Sequence[str]):
        self.lowers = [lower.rstrip("/") for lower in lowers]

    def find(self, path: str) -> tuple[str, os.stat_result] | None:
        """(full path in the layer that provides it, its lstat), or None if the merge has no path."""
        for layer in self.lowers:
            st, hides = _in_layer(layer, path)
            if st is not None:
                return None if is_whiteout(st) else (layer + path, st)
            if hides:
                return None
        return None

    def names(self, path: str) -> set[str]:
        """The names in directory path of the merge."""
        found: set[str] = set()
        gone: set[str] = set()
        for layer in self.lowers:
            st, hides = _in_layer(layer, path)
            if st is None:
                if hides:
                    break
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            for name in tree.listdir(layer + path):
                if name in found or name in gone:
                    continue
                child = _lstat(f"{layer}{path}/{name}")
                (gone if child is None or is_whiteout(child) else found).add(name)
            if is_opaque(layer + path):
                break
        return found


def _capability(full_path: str) -> bytes | None:
    try:
        return tree.getxattr(full_path, CAPABILITY_XATTR)
    except OSError:
        return None


def _same_time(a_ns: int, b_ns: int) -> bool:
    """moby's sameFsTime: equal, or the same second with one side truncated (tar keeps seconds)."""
    a_sec, a_frac = divmod(a_ns, 10**9)
    b_sec, b_frac = divmod(b_ns, 10**9)
    return a_sec == b_sec and (a_frac == b_frac or a_frac == 0 or b_frac == 0)


def _differs(old_path: str, old: os.stat_result, new_path: str, new: os.stat_result) -> bool:
    """moby's statDifferent plus its security.capability comparison."""
    if (old.st_mode != new.st_mode or old.st_uid != new.st_uid or old.st_gid != new.st_gid
            or old.st_rdev != new.st_rdev):
        return True
    if not stat.S_ISDIR(old.st_mode) and (
            not _same_time(old.st_mtime_ns, new.st_mtime_ns) or old.st_size != new.st_size):
        return True
    return _capability(old_path) != _capability(new_path)


def _is_hidden(path: str, hidden: Collection[str]) -> bool:
    return any(path == h or path.startswith(h + "/") for h in hidden)


def changes(upper: str, lowers: Sequence[str], hidden: Collection[str] = ()) -> list[Change]:
    """What the upper dir changes in the lowers (top first), as `docker diff` lists it."""
    upper = upper.rstrip("/")
    below = LowerView(lowers)
    found: dict[str, str] = {}
    for path, st in walk(upper, hidden):
        old = below.find(path)
        if is_whiteout(st):
            if old is not None:
                found[path] = DELETED
            continue
        if old is None:
            found[path] = ADDED
            continue
        old_path, old_st = old
        if _differs(old_path, old_st, upper + path, st):
            found[path] = CHANGED
        if stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(old_st.st_mode) and is_opaque(upper + path):
            kept = set()
            for name in tree.listdir(upper + path):
                child = _lstat(f"{upper}{path}/{name}")
                if child is not None and not is_whiteout(child):
                    kept.add(name)
            for name in below.names(path) - kept:
                found[f"{path}/{name}"] = DELETED
    for path in list(found):
        parent = os.path.dirname(path)
        while parent != "/" and parent not in found:
            found[parent] = CHANGED
            parent = os.path.dirname(parent)
    return [Change(kind, path) for path, kind in sorted(found.items(), key=lambda item: os.fsencode(item[0]))
            if not _is_hidden(path, hidden)]


def format_changes(found: Sequence[Change]) -> str:
    """`docker diff`'s output: one "K /path" line each, whatever the names hold."""
    return "".join(f"{change.kind} {shown_path(change.path)}\n" for change in found)


def shown_path(path: str) -> str:
    """path as is, or Go-quoted (strconv.Quote) when it holds a control character or bytes that
    are not UTF-8 (surrogates here): Docker prints names raw, so a file named "x\nD /etc"
    forges a line; quoted, it cannot."""
    if path.isprintable():
        return path
    import json
    out = []
    for c in path:
        if "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xdc00:02x}")
        elif c in '"\\' or not c.isprintable():
            out.append(json.dumps(c)[1:-1])
        else:
            out.append(c)
    return '"' + "".join(out) + '"'
