"""image/unpack.py: what a layer tar becomes in a diff dir, checked on the real filesystem."""

import hashlib
import json
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

import tarbuilder as tb
from overlaykit.image.unpack import UnpackStats, unpack
from overlaykit.linux.mount import MNT_DETACH, umount
from overlaykit.linux.overlay import OverlaySpec, mount_overlay

OPAQUE = "trusted.overlay.opaque"


@pytest.fixture
def diff(layout, tmp_path: Path) -> Path:
    """An empty diff dir (layout's teardown unmounts anything left under tmp_path)."""
    path = tmp_path / "diff"
    path.mkdir()
    return path


def unpack_entries(diff: Path, *entries: tb.Entry) -> UnpackStats:
    return unpack(tb.stream(tb.build(*entries)), str(diff))


def names_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def xattr(path: Path, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def test_whiteout_becomes_a_0_0_character_device_with_the_deleted_name(diff):
    stats = unpack_entries(diff, tb.directory("etc"), tb.whiteout("etc/gone"), tb.whiteout("top"))
    for path in (diff / "etc/gone", diff / "top"):
        st = path.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert names_under(diff) == ["etc", "etc/gone", "top"]
    assert stats == UnpackStats(entries=3, bytes=0, whiteouts=2, opaque_dirs=0)


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_marker_sets_the_xattr_and_keeps_the_layers_own_children(diff, marker_first):
    children = [tb.file("junk/new", b"fresh\n"), tb.directory("junk/sub"), tb.file("junk/sub/f")]
    marker = [tb.opaque("junk")]
    stats = unpack_entries(diff, tb.directory("junk", mode=0o750),
                           *(marker + children if marker_first else children + marker))
    assert xattr(diff / "junk", OPAQUE) == b"y"
    assert (diff / "junk/new").read_bytes() == b"fresh\n"
    assert names_under(diff) == ["junk", "junk/new", "junk/sub", "junk/sub/f"]
    assert stat.S_IMODE((diff / "junk").stat().st_mode) == 0o750
    assert stats.opaque_dirs == 1


def test_opaque_marker_before_its_directory_entry_keeps_the_entrys_metadata(diff):
    unpack_entries(diff, tb.opaque("a/b"), tb.directory("a/b", mode=0o700, uid=7, gid=8))
    st = (diff / "a/b").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 7, 8)
    assert xattr(diff / "a/b", OPAQUE) == b"y"
    assert stat.S_IMODE((diff / "a").stat().st_mode) == 0o755  # made for it, as Docker does


def test_setuid_setgid_and_sticky_bits_survive_with_their_owners(diff):
    unpack_entries(diff, tb.file("bin/su", b"x", mode=0o4755, uid=1000, gid=1000),
                   tb.file("bin/wall", b"y", mode=0o2755, gid=5),
                   tb.directory("tmp", mode=0o1777), tb.directory("shared", mode=0o2775, gid=100))
    def meta(p):
        st = (diff / p).lstat()
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    assert meta("bin/su") == (0o4755, 1000, 1000)
    assert meta("bin/wall") == (0o2755, 0, 5)
    assert meta("tmp") == (0o1777, 0, 0)
    assert meta("shared") == (0o2775, 0, 100)


def test_hard_link_shares_the_inode_of_its_target(diff):
    unpack_entries(diff, tb.file("opt/b", b"two\n"), tb.hardlink("opt/b.hard", "opt/b"),
                   tb.hardlink("other/c", "/opt/b"))
    a, b, c = ((diff / p).stat() for p in ("opt/b", "opt/b.hard", "other/c"))
    assert a.st_ino == b.st_ino == c.st_ino and a.st_nlink == 3


def test_symlink_keeps_its_target_owner_and_time_not_its_targets(diff):
    unpack_entries(diff, tb.file("bin/busybox", b"bb", mode=0o755),
                   tb.symlink("bin/sh", "busybox", uid=1000, gid=1001, mtime=1_600_000_000),
                   tb.symlink("abs", "/etc/nowhere"))
    st = (diff / "bin/sh").lstat()
    assert os.readlink(diff / "bin/sh") == "busybox"
    assert (st.st_uid, st.st_gid, st.st_mtime) == (1000, 1001, 1_600_000_000)
    target = (diff / "bin/busybox").stat()
    assert (stat.S_IMODE(target.st_mode), target.st_uid, target.st_mtime) == (0o755, 0, tb.MTIME)
    assert os.readlink(diff / "abs") == "/etc/nowhere"


def test_fifo_is_made_with_mknod_and_never_opened(diff):
    """A writer that opened the fifo would block forever; run it where a hang shows as a failure."""
    done: list = []
    worker = threading.Thread(daemon=True, target=lambda: done.append(unpack_entries(
        diff, tb.fifo("run/pipe", mode=0o620), tb.fifo("run/again"), tb.file("run/again", b"file now"))))
    worker.start()
    worker.join(timeout=30)
    assert done, "unpack blocked on a fifo"
    st = (diff / "run/pipe").lstat()
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    assert (diff / "run/again").read_bytes() == b"file now"


def test_device_nodes_keep_type_numbers_and_mode(diff):
    unpack_entries(diff, tb.chardev("dev/null", 1, 3, mode=0o666), tb.blockdev("dev/loop9", 7, 9, gid=6))
    null, loop = (diff / "dev/null").lstat(), (diff / "dev/loop9").lstat()
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
    assert (stat.S_IMODE(loop.st_mode), loop.st_gid) == (0o660, 6)


def test_pax_xattrs_are_kept_but_trusted_overlay_ones_are_dropped(diff):
    binary = bytes(range(256))
    unpack_entries(
        diff,
        tb.directory("d", pax=tb.xattrs(user__foo="bar", trusted__overlay__opaque="y")),
        tb.file("d/f", b"data", pax=tb.xattrs(user__bin=binary, trusted__overlay__redirect="/etc")),
        tb.fifo("d/p", pax=tb.xattrs(trusted__k="v", user__refused="on a fifo")),
        tb.symlink("d/l", "f", pax=tb.xattrs(trusted__overlay__origin="x", trusted__l="link")),
    )
    assert xattr(diff / "d", "user.foo") == b"bar"
    assert xattr(diff / "d/f", "user.bin") == binary
    assert xattr(diff / "d/p", "trusted.k") == b"v"  # user.* only exists on files and dirs
    assert xattr(diff / "d/l", "trusted.l") == b"link"
    for path in ("d", "d/f", "d/l"):
        assert not [n for n in os.listxattr(diff / path, follow_symlinks=False) if n.startswith("trusted.overlay.")]


def test_mtimes_of_files_and_directories_are_kept_to_the_nanosecond(diff):
    exact = {"mtime": "1700000000.123456789", "atime": "1700000100.5"}
    unpack_entries(diff, tb.directory("d", mtime=1_500_000_000), tb.file("d/f", b"x", pax=exact),
                   tb.directory("d/sub", mtime=1_400_000_000), tb.file("d/sub/g", b"y", mtime=1_300_000_000))
    f = (diff / "d/f").stat()
    assert (f.st_mtime_ns, f.st_atime_ns) == (1_700_000_000_123_456_789, 1_700_000_100_500_000_000)
    assert (diff / "d").stat().st_mtime_ns == 1_500_000_000 * 10**9  # set after its children
    assert (diff / "d/sub").stat().st_mtime == 1_400_000_000
    assert (diff / "d/sub/g").stat().st_mtime == 1_300_000_000


def test_root_entry_gives_the_layer_root_its_metadata(diff):
    unpack_entries(diff, tb.directory("./", mode=0o700, mtime=1_234_567_890), tb.file("./a"))
    st = diff.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o700, 1_234_567_890)
    assert names_under(diff) == ["a"]


def test_later_entries_replace_earlier_ones_like_docker(diff):
    unpack_entries(
        diff,
        tb.file("f", b"old"), tb.file("f", b"new", mode=0o600),          # file over file
        tb.directory("d", mode=0o700), tb.file("d/keep"), tb.directory("d", mode=0o755, uid=3),  # merge
        tb.directory("t"), tb.file("t/deep/x"), tb.file("t", b"was a tree"),   # non-dir over dir
        tb.file("n", b"file"), tb.directory("n"), tb.file("n/inside"),     # dir over file
        tb.symlink("s", "f"), tb.fifo("s"),                                # anything over a link
    )
    assert (diff / "f").read_bytes() == b"new" and stat.S_IMODE((diff / "f").stat().st_mode) == 0o600
    st = (diff / "d").stat()
    assert (diff / "d/keep").is_file() and (stat.S_IMODE(st.st_mode), st.st_uid) == (0o755, 3)
    assert (diff / "t").read_bytes() == b"was a tree"
    assert (diff / "n/inside").is_file()
    assert stat.S_ISFIFO((diff / "s").lstat().st_mode)


@pytest.mark.parametrize("whiteout_first", [True, False])
def test_whiteout_never_hides_an_entry_of_the_same_layer(diff, whiteout_first):
    """OCI: a whiteout applies to lower layers only; a dir named by one hides the lower dir."""
    own = [tb.file("f", b"mine"), tb.directory("d"), tb.file("d/x")]
    wh = [tb.whiteout("f"), tb.whiteout("d")]
    unpack_entries(diff, *(wh + own if whiteout_first else own + wh))
    assert (diff / "f").read_bytes() == b"mine"
    assert (diff / "d/x").is_file()
    assert xattr(diff / "d", OPAQUE) == b"y"


def test_aufs_metadata_is_skipped_and_no_whiteout_name_is_left(diff):
    stats = unpack_entries(diff, tb.directory(".wh..wh.plnk"), tb.file(".wh..wh.plnk/1.2", b"x"),
                           tb.file(".wh..wh.aufs"), tb.directory("a"), tb.whiteout("a/b"), tb.opaque("a"))
    assert names_under(diff) == ["a", "a/b"]
    assert stats == UnpackStats(entries=6, bytes=0, whiteouts=1, opaque_dirs=1)


# -- the real image: demo-docker.tar, as docker save wrote it ---------------------------------

def demo_layers(fixture_path) -> list[bytes]:
    with tarfile.open(fixture_path("demo-docker.tar")) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        return [archive.extractfile(name).read() for name in manifest[0]["Layers"]]


@pytest.fixture
def demo_diffs(layout, tmp_path, fixture_path) -> list[Path]:
    diffs = []
    for i, data in enumerate(demo_layers(fixture_path), 1):
        path = tmp_path / f"layer{i}"
        path.mkdir()
        unpack(tb.stream(data), str(path), what=f"layer {i}")
        diffs.append(path)
    return diffs


def test_demo_layers_are_stored_as_docker_overlay2_stores_them(demo_diffs):
    base, files, changes = demo_diffs
    assert (base / "bin/busybox").stat().st_size == 1982256
    assert os.readlink(base / "bin/sh") == "busybox"
    assert (files / "opt/app/b").stat().st_ino == (files / "opt/app/b.hard").stat().st_ino
    assert os.readlink(files / "opt/app/b.sym") == "../app/b"
    gone = (changes / "opt/app/sub/a").lstat()
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert xattr(changes / "var/cache/junk", OPAQUE) == b"y"
    assert names_under(changes / "var/cache/junk") == ["y"]
    b = (changes / "opt/app/b").stat()
    assert (stat.S_IMODE(b.st_mode), b.st_uid) == (0o4755, 0)
    home = (changes / "home/app").stat()
    assert (home.st_uid, home.st_gid) == (1000, 1000)
    for diff in demo_diffs:
        assert not [n for n in names_under(diff) if "/.wh." in "/" + n]


def listing_of(root: Path) -> list[list[str]]:
    """The columns of tests/fixtures/demo.listing, for the tree at root (hard-link group left empty)."""
    kinds = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFIFO: "p",
             stat.S_IFCHR: "c", stat.S_IFBLK: "b"}
    rows = []
    for path in sorted(root.rglob("*"), key=lambda p: str(p.relative_to(root))):
        st = path.lstat()
        kind = kinds[stat.S_IFMT(st.st_mode)]
        size = digest = dev = mtime = ""
        if kind == "f":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            mtime = str(int(st.st_mtime))
        elif kind == "l":
            digest = "->" + os.readlink(path)
        elif kind in "cb":
            dev = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
        size = str(st.st_size) if kind == "f" else "0"
        rows.append([str(path.relative_to(root)), kind, oct(stat.S_IMODE(st.st_mode)),
                     str(st.st_uid), str(st.st_gid), size, digest, dev, mtime])
    return rows


def test_demo_layers_mounted_as_overlay_match_docker_export(demo_diffs, tmp_path, fixture_path):
    expected = [line.split("\t")[:9] for line in Path(fixture_path("demo.listing")).read_text().splitlines()]
    merged = tmp_path / "merged"
    merged.mkdir()
    spec = OverlaySpec(base="/", lowers=tuple(str(d) for d in reversed(demo_diffs)))
    mount_overlay(spec, str(merged))
    try:
        assert listing_of(merged) == expected
    finally:
        umount(str(merged), MNT_DETACH)


class Trickle:
    """A pipe-like stream: never more than 1000 bytes per read, however many were asked for."""

    def __init__(self, data: bytes):
        self.data, self.position = data, 0

    def read(self, size: int = -1) -> bytes:
        size = 1000 if size < 0 else min(size, 1000)
        chunk = self.data[self.position:self.position + size]
        self.position += len(chunk)
        return chunk


def test_short_reads_from_the_stream_still_unpack_every_byte(diff):
    big = os.urandom(300_000)
    data = tb.build(tb.file("a", big), tb.symlink("l", "a"), tb.file("b", b"tail"))
    stats = unpack(Trickle(data), str(diff))
    assert (diff / "a").read_bytes() == big and (diff / "b").read_bytes() == b"tail"
    assert stats == UnpackStats(entries=3, bytes=300_004, whiteouts=0, opaque_dirs=0)
