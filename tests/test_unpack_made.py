"""image/unpack.py skips the lstat of a name it has not made yet in a directory it made: these
tests name the same place twice in one layer, by other paths (symlinks, the root through `..`
links, parents made for a deeper entry), so a note kept by path instead of by directory, or
one missed, would show as a refused entry ("File exists") or as the wrong thing left there.
And where the premise does not hold (a diff dir that is not empty, a `cp` destination) every
name is still looked up, so a symlink already there is replaced, never written through.
Symlinks are made by the writer threads too: an entry right after one still goes through it.
"""

import os
import stat
from pathlib import Path

import pytest

import tarbuilder as tb
from overlaykit.image.unpack import extract, unpack


@pytest.fixture
def diff(layout, tmp_path: Path) -> Path:
    path = tmp_path / "diff"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file beside the diff dir that a write through a link would change."""
    path = tmp_path / "outside"
    path.write_bytes(b"untouched\n")
    return path


def unpack_entries(diff: Path, *entries: tb.Entry):
    return unpack(tb.stream(tb.build(*entries)), str(diff))


def test_a_file_made_through_a_symlink_is_replaced_by_its_real_name(diff):
    unpack_entries(diff, tb.directory("d"), tb.symlink("s", "d"), tb.file("s/f", b"first\n"),
                   tb.file("d/f", b"second\n"), tb.directory("s/sub", mode=0o700), tb.directory("d/sub", uid=7),
                   tb.file("d/sub/x", b"x\n"))
    assert (diff / "d/f").read_bytes() == b"second\n"
    st = os.lstat(diff / "d/sub")
    assert stat.S_ISDIR(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (7, 0o755)
    assert sorted(os.listdir(diff / "d")) == ["f", "sub"] and (diff / "d/sub/x").read_bytes() == b"x\n"


def test_names_made_through_a_link_to_the_root_are_known_at_the_root(diff):
    """`up` climbs above the root, which inside the layer is the root itself."""
    unpack_entries(diff, tb.symlink("up", "../../.."), tb.file("up/f", b"through up\n"),
                   tb.file("up/etc/motd", b"old\n"), tb.file("f", b"by name\n"), tb.directory("etc", mode=0o700),
                   tb.file("etc/motd", b"new\n"))
    assert (diff / "f").read_bytes() == b"by name\n"
    assert stat.S_IMODE(os.lstat(diff / "etc").st_mode) == 0o700
    assert (diff / "etc/motd").read_bytes() == b"new\n"
    assert sorted(os.listdir(diff)) == ["etc", "f", "up"]


def test_parents_made_for_a_deeper_entry_merge_with_their_own_entries_later(diff):
    unpack_entries(diff, tb.file("a/b/c", b"first\n"), tb.directory("a", mode=0o700), tb.directory("a/b", uid=5),
                   tb.file("a/b/c", b"second\n"))
    assert stat.S_IMODE(os.lstat(diff / "a").st_mode) == 0o700
    assert os.lstat(diff / "a/b").st_uid == 5
    assert (diff / "a/b/c").read_bytes() == b"second\n"


def test_a_symlink_pointed_elsewhere_again_sends_the_next_entry_to_its_new_target(diff):
    unpack_entries(diff, tb.directory("a"), tb.directory("b"), tb.symlink("l", "a"), tb.file("l/x", b"in a\n"),
                   tb.symlink("l", "b"), tb.file("l/x", b"in b\n"), tb.file("a/x", b"a again\n"))
    assert (diff / "a/x").read_bytes() == b"a again\n"
    assert (diff / "b/x").read_bytes() == b"in b\n"
    assert os.readlink(diff / "l") == "b"


def test_a_duplicate_entry_replaces_a_directory_and_a_new_one_replaces_it_again(diff):
    unpack_entries(diff, tb.directory("d"), tb.file("d/f", b"f\n"), tb.file("d/sub/g", b"g\n"),
                   tb.file("d", b"now a file\n"), tb.directory("d"), tb.file("d/h", b"h\n"))
    assert stat.S_ISDIR(os.lstat(diff / "d").st_mode)
    assert os.listdir(diff / "d") == ["h"]


def test_directories_removed_and_made_again_many_times_take_their_new_entries(diff):
    """A removed directory's inode number may come back for a new one: its notes must not."""
    entries = []
    for n in range(60):
        entries += [tb.directory(f"d{n}"), tb.file(f"d{n}/f", b"one\n"), tb.file(f"d{n}/sub/g", b"g\n"),
                    tb.file(f"d{n}", b"file\n"), tb.directory(f"d{n}"), tb.file(f"d{n}/f", b"two\n"),
                    tb.directory(f"e{n}"), tb.file(f"e{n}/f", b"e\n"), tb.file(f"e{n}/f", b"e again\n")]
    unpack_entries(diff, *entries)
    for n in range(60):
        assert os.listdir(diff / f"d{n}") == ["f"] and (diff / f"d{n}/f").read_bytes() == b"two\n"
        assert (diff / f"e{n}/f").read_bytes() == b"e again\n"


def test_a_hard_link_named_again_is_replaced_and_its_target_kept(diff):
    unpack_entries(diff, tb.file("f", b"target\n"), tb.hardlink("h", "f"), tb.file("h", b"own\n"))
    assert (diff / "f").read_bytes() == b"target\n" and os.lstat(diff / "f").st_nlink == 1
    assert (diff / "h").read_bytes() == b"own\n"


def test_a_whiteout_device_made_earlier_is_replaced_by_the_entry_of_its_name(diff):
    unpack_entries(diff, tb.whiteout("x"), tb.whiteout("d"), tb.file("x", b"x\n"), tb.directory("d"))
    assert (diff / "x").read_bytes() == b"x\n"
    assert os.getxattr(diff / "d", "trusted.overlay.opaque") == b"y"


def test_a_diff_dir_that_is_not_empty_has_every_name_looked_up(diff, outside):
    """unpack is given an empty diff dir; if it is not, a link there is replaced, not followed."""
    os.symlink(str(outside), diff / "x")
    (diff / "d").mkdir()
    (diff / "d/old").write_bytes(b"old\n")
    unpack_entries(diff, tb.file("x", b"layer\n"), tb.directory("d", mode=0o700), tb.file("d/old", b"new\n"))
    assert not (diff / "x").is_symlink() and (diff / "x").read_bytes() == b"layer\n"
    assert (diff / "d/old").read_bytes() == b"new\n"
    assert outside.read_bytes() == b"untouched\n"


def test_cp_into_a_directory_with_names_replaces_a_link_never_its_target(tmp_path, outside):
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    os.symlink(str(outside), dest / "link")
    os.symlink(str(outside), dest / "sub/link")
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        extract(tb.stream(tb.build(tb.file("link", b"cp\n"), tb.directory("sub"), tb.file("sub/link", b"cp sub\n"))),
                fd, what="cp")
    finally:
        os.close(fd)
    assert (dest / "link").read_bytes() == b"cp\n" and not (dest / "link").is_symlink()
    assert (dest / "sub/link").read_bytes() == b"cp sub\n" and not (dest / "sub/link").is_symlink()
    assert outside.read_bytes() == b"untouched\n"


def test_entries_through_symlinks_still_being_made_land_in_their_targets(diff):
    entries = []
    for n in range(200):
        entries += [tb.directory(f"t{n}"), tb.symlink(f"l{n}", f"t{n}", uid=n, mtime=1_600_000_000 + n),
                    tb.file(f"l{n}/f", b"%d\n" % n), tb.file(f"l{n}/g", b"g\n")]
        if n % 2:  # its header goes to the shared inode too, as in Docker: the same owner and time
            entries.append(tb.hardlink(f"h{n}", f"l{n}", uid=n, mtime=1_600_000_000 + n))
    unpack_entries(diff, *entries)
    for n in range(200):
        link = os.lstat(diff / f"l{n}")
        assert os.readlink(diff / f"l{n}") == f"t{n}" and (link.st_uid, link.st_mtime) == (n, 1_600_000_000 + n)
        assert not n % 2 or os.lstat(diff / f"h{n}").st_ino == link.st_ino  # a hard link to the symlink itself
        assert sorted(os.listdir(diff / f"t{n}")) == ["f", "g"] and (diff / f"t{n}/f").read_bytes() == b"%d\n" % n
