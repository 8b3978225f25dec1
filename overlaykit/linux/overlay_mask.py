"""What a nested overlay hides from the overlay above it, written out as a layer of its own.

An overlay stacked as another overlay's lower shows its merged tree, but not its whiteouts
or opaque directories: those act inside it and are simply absent from its view. So when one
group of layers is nested above another (linux/overlay.py, past 999 lowers), what the upper
group deletes or makes opaque would not hide the lower group's files. The mask puts that
back: a directory, stacked right under the upper group, holding a whiteout for each name the
group deletes and an opaque directory for each directory whose merge stops inside the group
(at an opaque directory, or at a whiteout or non-directory under it), found by walking the
group's layers as overlayfs's lookup walks them. Every directory the mask holds is one the
group shows, and the group's copy is above it, so the mask adds no entry or attribute of its
own. Nothing is followed: a symlink in a layer is an entry like any other.
"""

import os
import stat

from overlaykit.linux.whiteouts import OPAQUE_VALUE, WHITEOUT_DEVICE, is_whiteout_device


def write_mask(layers: list[str], mask: str, xattr: str) -> None:
    """Write into the empty directory mask what the group of layers (top first) hides below it."""
    todo = [("", layers)]  # directories merged through the whole group, with the layers holding them
    while todo:
        rel, stack = todo.pop()
        listed = [_entries(os.path.join(layer, rel)) for layer in stack]
        for name in dict.fromkeys(n for entries in listed for n in entries):
            path = os.path.join(rel, name)
            merged: list[str] = []  # the layers whose directory `path` the group merges
            for layer, entries in zip(stack, listed):
                kind = entries.get(name)
                if kind is None:
                    continue
                if kind != "dir":
                    if not merged and kind == "whiteout":
                        _whiteout(mask, path)
                    break  # a file shadows what is under it; under a directory it ends the merge
                merged.append(layer)
                if _is_opaque(os.path.join(layer, path), xattr):
                    break
            else:
                if merged:
                    todo.append((path, merged))  # merged down through the whole group
                continue
            if merged:
                _opaque(mask, path, xattr)


def _entries(directory: str) -> dict[str, str]:
    """name -> "dir", "whiteout" or "other", without following symlinks."""
    found = {}
    with os.scandir(directory) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                found[entry.name] = "dir"
            elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                found[entry.name] = "other"
            else:
                st = entry.stat(follow_symlinks=False)
                whiteout = is_whiteout_device(st.st_mode, st.st_rdev)
                found[entry.name] = "whiteout" if whiteout else "other"
    return found


def _is_opaque(path: str, xattr: str) -> bool:
    try:
        return os.getxattr(path, xattr, follow_symlinks=False) == OPAQUE_VALUE
    except OSError:
        return False


def _whiteout(mask: str, path: str) -> None:
    os.makedirs(os.path.join(mask, os.path.dirname(path)), 0o755, exist_ok=True)
    os.mknod(os.path.join(mask, path), stat.S_IFCHR | 0o600, WHITEOUT_DEVICE)


def _opaque(mask: str, path: str, xattr: str) -> None:
    os.makedirs(os.path.join(mask, path), 0o755)
    os.setxattr(os.path.join(mask, path), xattr, OPAQUE_VALUE)
