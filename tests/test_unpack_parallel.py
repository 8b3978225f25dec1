"""image/filewriter.py: files created by worker threads land as a one-by-one unpack would
leave them, whatever later entries do at the same place, under it, or through another name."""

import os
import stat
from pathlib import Path

import pytest

import tarbuilder as tb
from overlaykit.errors import OverlaykitError
from overlaykit.image.unpack import unpack
from overlaykit.linux.mount import mount, umount


@pytest.fixture
def diff(layout, tmp_path: Path) -> Path:
    path = tmp_path / "diff"
    path.mkdir()
    return path


def unpack_entries(diff: Path, *entries: tb.Entry):
    return unpack(tb.stream(tb.build(*entries)), str(diff))


def test_a_file_written_again_through_a_symlinked_parent_keeps_the_last_content(diff):
    unpack_entries(diff, tb.directory("d"), tb.file("d/f", b"first\n"), tb.symlink("s", "d"),
                   tb.file("s/f", b"second\n"))
    assert (diff / "d" / "f").read_bytes() == b"second\n"
    assert (diff / "s").is_symlink() and sorted(os.listdir(diff / "d")) == ["f"]


def test_a_directory_replaces_a_file_of_its_name_and_takes_its_children(diff):
    unpack_entries(diff, tb.file("a", b"file\n"), tb.directory("a"), tb.file("a/x", b"x\n"))
    assert stat.S_ISDIR(os.lstat(diff / "a").st_mode)
    assert (diff / "a" / "x").read_bytes() == b"x\n"


def test_a_symlink_replaces_a_directory_full_of_new_files(diff):
    files = [tb.file(f"tree/f{n}", b"%d\n" % n) for n in range(300)]
    unpack_entries(diff, tb.directory("tree"), *files, tb.symlink("tree", "elsewhere"))
    assert os.readlink(diff / "tree") == "elsewhere"
    assert sorted(os.listdir(diff)) == ["tree"]


def test_a_hard_link_to_a_file_just_written_shares_its_inode(diff):
    unpack_entries(diff, tb.file("bin/tool", b"#!/bin/sh\n", mode=0o755), tb.hardlink("bin/alias", "bin/tool"))
    assert os.stat(diff / "bin" / "alias").st_ino == os.stat(diff / "bin" / "tool").st_ino
    assert (diff / "bin" / "alias").read_bytes() == b"#!/bin/sh\n"


def test_a_whiteout_of_a_file_of_the_same_layer_keeps_the_file(diff):
    unpack_entries(diff, tb.file("etc/motd", b"hi\n"), tb.whiteout("etc/motd"))
    assert (diff / "etc" / "motd").read_bytes() == b"hi\n"


def test_a_file_used_as_a_parent_later_is_refused_as_one_by_one(diff):
    with pytest.raises(OverlaykitError, match=r"layer: f/x: parent f is not a directory"):
        unpack_entries(diff, tb.file("f", b"plain\n"), tb.file("f/x", b"x\n"))


def test_thousands_of_files_keep_content_owner_mode_and_times_and_their_directories_times(diff):
    entries = [tb.directory(f"d{n}", mtime=1_600_000_000 + n) for n in range(20)]
    entries += [tb.file(f"d{n % 20}/f{n}", os.urandom(n % 700), mode=0o640 | (n % 2) * 0o4000,
                        uid=n % 5, gid=n % 7, mtime=1_650_000_000 + n) for n in range(3000)]
    stats = unpack_entries(diff, *entries)
    assert stats.entries == 3020
    for entry in entries[20:]:
        path = diff / entry.name
        st = os.lstat(path)
        assert path.read_bytes() == entry.data
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (entry.uid, entry.gid, entry.mode)
        assert st.st_mtime == entry.mtime
    for n in range(20):
        assert os.lstat(diff / f"d{n}").st_mtime == 1_600_000_000 + n  # set after every file landed


def test_a_file_the_disk_cannot_hold_names_its_entry(layout, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mount("tmpfs", str(small), "tmpfs", 0, "size=1m")
    try:
        target = small / "diff"
        target.mkdir()
        with pytest.raises(OverlaykitError, match=r"^layer: big\d: No space left on device$"):
            unpack(tb.stream(tb.build(*[tb.file(f"big{n}", bytes(400 << 10)) for n in range(4)])), str(target))
    finally:
        umount(str(small))
