"""Hostile layer tars: nothing may be written outside the diff dir, whatever the archive says.

Each test has a canary tree beside the diff dir and checks it byte for byte, times and link
counts included, after the unpack. Where unpack refuses, the exact error line is checked;
where it contains (as Docker does for absolute names and links), the entry is found inside.
"""

import hashlib
import os
import stat
from pathlib import Path

import pytest

import tarbuilder as tb
from overlaykit.errors import OverlaykitError
from overlaykit.image.unpack import unpack

OPAQUE = "trusted.overlay.opaque"


def snapshot(root: Path) -> dict:
    """Everything about a tree an escaped write could change, the root itself included."""
    state = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else (
            os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
        xattrs = {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}
        state[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink, st.st_rdev,
                            st.st_mtime_ns, content, xattrs)
    return state


@pytest.fixture
def canary(layout, tmp_path: Path):
    """A tree outside the diff dir that an escape would change; checked after every test."""
    root = tmp_path / "canary"
    (root / "sub").mkdir(parents=True)
    (root / "secret").write_text("untouched\n")
    (root / "sub" / "deep").write_text("deep\n")
    for path in (root / "sub" / "deep", root / "secret", root / "sub", root):
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = snapshot(root)
    yield root
    assert snapshot(root) == before, "the canary outside the diff dir changed"


@pytest.fixture
def diff(tmp_path: Path) -> Path:
    path = tmp_path / "diff"
    path.mkdir()
    return path


def inside(canary: Path) -> str:
    """The canary's absolute path as a name relative to the layer root."""
    return str(canary).lstrip("/")


def unpack_entries(diff: Path, *entries: tb.Entry):
    return unpack(tb.stream(tb.build(*entries)), str(diff), what="load: evil.tar: layer 1")


def refused(diff: Path, *entries: tb.Entry, raw: bytes | None = None) -> str:
    with pytest.raises(OverlaykitError) as caught:
        if raw is None:
            unpack_entries(diff, *entries)
        else:
            unpack(tb.stream(raw), str(diff), what="load: evil.tar: layer 1")
    return str(caught.value)


# -- names ----------------------------------------------------------------------------------

def test_absolute_name_lands_inside_the_layer(diff, canary):
    """Like Docker and containerd, a leading "/" is the layer root, never the host's."""
    unpack_entries(diff, tb.file(f"{canary}/secret", b"pwned"), tb.file("/etc/motd", b"hi"))
    assert (diff / inside(canary) / "secret").read_bytes() == b"pwned"
    assert (diff / "etc/motd").read_bytes() == b"hi"


@pytest.mark.parametrize("name", ["../canary/secret", "a/../../canary/secret", "./../canary/pwned",
                                  "/../canary/secret", "../../../../../../../../tmp/x"])
def test_dotdot_climbing_out_of_the_layer_is_refused(diff, canary, name):
    assert refused(diff, tb.file(name, b"pwned")) == f"load: evil.tar: layer 1: {name}: path escapes the layer"
    assert not list(diff.iterdir())


def test_dotdot_that_stays_inside_is_cleaned_like_docker(diff, canary):
    unpack_entries(diff, tb.file("a/../b", b"b"), tb.file("c/./d/../e", b"e"))
    assert (diff / "b").read_bytes() == b"b" and (diff / "c/e").read_bytes() == b"e"


@pytest.mark.parametrize("entry", [tb.chardev("dev/../../null", 1, 3), tb.fifo("x/../../pipe"),
                                   tb.symlink("l/../../link", "/"), tb.directory("d/../../dir")])
def test_special_entry_whose_name_climbs_out_after_cleaning_is_refused(diff, canary, entry):
    assert refused(diff, entry) == f"load: evil.tar: layer 1: {entry.name}: path escapes the layer"


def test_device_whose_name_has_dotdot_inside_is_made_inside(diff, canary):
    unpack_entries(diff, tb.chardev("dev/x/../null", 1, 3))
    assert stat.S_ISCHR((diff / "dev/null").lstat().st_mode)
    assert not (diff / "dev/x").exists()


# -- symlinks -------------------------------------------------------------------------------

def test_file_written_through_a_symlink_to_outside_lands_inside(diff, canary):
    unpack_entries(diff, tb.directory(inside(canary)), tb.symlink("evil", str(canary)),
                   tb.file("evil/pwned", b"pwned"), tb.file("evil/secret", b"pwned"))
    assert (diff / inside(canary) / "pwned").read_bytes() == b"pwned"
    assert (diff / inside(canary) / "secret").read_bytes() == b"pwned"


def test_file_through_a_dangling_symlink_to_outside_is_refused(diff, canary):
    assert refused(diff, tb.symlink("evil", str(canary)), tb.file("evil/pwned", b"pwned")) == \
        "load: evil.tar: layer 1: evil/pwned: parent evil is a dangling symlink"


def test_symlink_chain_climbing_with_dotdot_stays_inside(diff, canary):
    """`up` and `up2` point far above the root; inside the layer they mean the layer root."""
    unpack_entries(diff, tb.symlink("up", "../../../../../../../.."), tb.directory("x"),
                   tb.symlink("x/up2", "../up/../.."), tb.file(f"x/up2/{inside(canary)}/secret", b"pwned"),
                   tb.file("up/sub/file", b"in"))
    assert (diff / inside(canary) / "secret").read_bytes() == b"pwned"
    assert (diff / "sub/file").read_bytes() == b"in"


def test_entry_over_a_symlink_replaces_the_link_not_its_target(diff, canary):
    unpack_entries(
        diff,
        tb.symlink("file", f"{canary}/secret"), tb.file("file", b"pwned"),
        tb.symlink("dir", str(canary)), tb.directory("dir", mode=0o700),
        tb.symlink("rel", "../canary/secret"), tb.fifo("rel"),
        tb.symlink("dev", "../canary/secret"), tb.chardev("dev", 1, 3),
        tb.symlink("hl", "../canary/secret"), tb.hardlink("hl", "file"),
        tb.symlink("again", "../canary"), tb.symlink("again", "../canary/sub"),
    )
    assert (diff / "file").read_bytes() == b"pwned" and not (diff / "file").is_symlink()
    assert stat.S_ISDIR((diff / "dir").lstat().st_mode)
    assert stat.S_ISFIFO((diff / "rel").lstat().st_mode)
    assert stat.S_ISCHR((diff / "dev").lstat().st_mode)
    assert (diff / "hl").stat().st_ino == (diff / "file").stat().st_ino
    assert os.readlink(diff / "again") == "../canary/sub"


def test_metadata_of_an_entry_named_like_a_symlink_never_reaches_the_target(diff, canary):
    """A dir entry merging over a symlink-to-dir would chmod the target if it followed the link."""
    unpack_entries(diff, tb.symlink("d", "../canary"), tb.directory("d", mode=0o777, uid=1000),
                   tb.symlink("s", "../canary/secret", uid=1000, mtime=5))
    assert stat.S_ISDIR((diff / "d").lstat().st_mode)
    assert (diff / "s").lstat().st_uid == 1000


# -- hard links -----------------------------------------------------------------------------

@pytest.mark.parametrize("target, problem", [
    ("../canary/secret", "hard link target ../canary/secret is outside the layer"),
    ("../../x", "hard link target ../../x is outside the layer"),
    ("a/../../canary/secret", "hard link target a/../../canary/secret is outside the layer"),
    ("/etc/passwd", "hard link target /etc/passwd is not in the layer"),
    ("CANARY/secret", "hard link target CANARY/secret is not in the layer"),
    ("evil/secret", "hard link target evil/secret is not in the layer"),
    ("up/canary/secret", "hard link target up/canary/secret is not in the layer"),
    ("/", "hard link target / is the layer root"),
])
def test_hard_link_to_outside_is_refused(diff, canary, target, problem):
    target = target.replace("CANARY", str(canary))
    problem = problem.replace("CANARY", str(canary))
    passwd = os.stat("/etc/passwd")
    message = refused(diff, tb.symlink("evil", str(canary)), tb.symlink("up", "../.."),
                      tb.hardlink("link", target))
    assert message == f"load: evil.tar: layer 1: link: {problem}"
    assert os.stat("/etc/passwd").st_nlink == passwd.st_nlink


def test_hard_link_through_a_symlink_links_the_layers_file(diff, canary):
    unpack_entries(diff, tb.file(f"{inside(canary)}/secret", b"layer's own"),
                   tb.symlink("evil", str(canary)), tb.hardlink("link", "evil/secret"))
    assert (diff / "link").stat().st_ino == (diff / inside(canary) / "secret").stat().st_ino


# -- whiteouts ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, problem", [
    ("../.wh.canary", "path escapes the layer"),
    ("a/../../.wh.secret", "path escapes the layer"),
    (".wh..", "invalid whiteout name"),
    ("a/.wh..", "invalid whiteout name"),
    ("a/.wh.", "invalid whiteout name"),
    (".wh.x/file", "a whiteout cannot be a directory"),
])
def test_whiteout_naming_outside_is_refused(diff, canary, name, problem):
    assert refused(diff, tb.file(name)) == f"load: evil.tar: layer 1: {name}: {problem}"


def test_whiteout_through_a_symlink_is_made_inside(diff, canary):
    unpack_entries(diff, tb.directory(inside(canary)), tb.symlink("evil", str(canary)),
                   tb.file("evil/.wh.secret"), tb.symlink("up", "../../.."), tb.file("up/.wh.top"))
    for path in (diff / inside(canary) / "secret", diff / "top"):
        st = path.lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_whiteout_through_a_dangling_symlink_is_refused(diff, canary):
    assert refused(diff, tb.symlink("evil", f"{canary}/sub"), tb.file("evil/.wh.deep")) == \
        "load: evil.tar: layer 1: evil/.wh.deep: parent evil is a dangling symlink"


def test_opaque_marker_under_a_directory_symlink_marks_the_layers_directory(diff, canary):
    unpack_entries(diff, tb.directory(inside(canary)), tb.symlink("d", str(canary)), tb.opaque("d"),
                   tb.symlink("up", "../../../.."), tb.opaque("up"))
    assert os.getxattr(diff / inside(canary), OPAQUE) == b"y"
    assert os.getxattr(diff, OPAQUE) == b"y"  # `up` is the layer root, seen from inside
    assert OPAQUE not in os.listxattr(diff / "d", follow_symlinks=False)


def test_forged_overlay_xattrs_are_dropped(diff, canary):
    """A tar cannot make a redirect to outside or a fake opaque dir through PAX headers."""
    unpack_entries(diff, tb.directory("d", pax=tb.xattrs(trusted__overlay__redirect=str(canary),
                                                         trusted__overlay__opaque="y")))
    assert not [n for n in os.listxattr(diff / "d") if n.startswith("trusted.overlay.")]


# -- broken archives ------------------------------------------------------------------------

def test_truncated_file_data_is_refused(diff, canary):
    data = tb.build(tb.file("a", b"a" * 100), tb.file("big", b"x" * 100_000))
    assert refused(diff, raw=data[:512 * 3 + 50_000]) == "load: evil.tar: layer 1: big: truncated tar archive"


def test_truncated_header_is_refused(diff, canary):
    data = tb.build(tb.file("a", b"a" * 100), tb.file("b", b"b"))
    assert refused(diff, raw=data[:1024 + 100]) == "load: evil.tar: layer 1: truncated tar archive after a"


def test_tar_without_end_blocks_after_a_whole_entry_is_accepted(diff, canary):
    """Go's archive/tar (Docker's reader) ends there without error too; the diff_id check decides."""
    unpack(tb.stream(tb.build(tb.file("a", b"a"), end=False)), str(diff))
    assert (diff / "a").read_bytes() == b"a"


def test_corrupt_header_after_an_entry_is_refused(diff, canary):
    data = bytearray(tb.build(tb.file("a", b"a"), tb.file("b", b"b")))
    data[1024 + 148:1024 + 156] = b"0000000\0"  # b's header checksum
    assert refused(diff, raw=bytes(data)) == \
        "load: evil.tar: layer 1: corrupt tar header after a (bad checksum)"


def test_garbage_is_refused(diff, canary):
    for garbage in (b"\x89PNG\r\n\x1a\n" * 512, bytes(range(256)) * 2, b"x" * 10):
        assert refused(diff, raw=garbage) == "load: evil.tar: layer 1: not a tar archive"


def test_gzip_bytes_are_not_a_tar_archive(diff, canary):
    import gzip
    assert refused(diff, raw=gzip.compress(tb.build(tb.file("a")))) == \
        "load: evil.tar: layer 1: not a tar archive"


def test_empty_stream_is_refused(diff, canary):
    assert refused(diff, raw=b"") == "load: evil.tar: layer 1: empty stream, not a tar archive"


def test_unknown_entry_type_is_refused(diff, canary):
    odd = tb.Entry("odd", type=b"Z")
    assert refused(diff, tb.file("a"), odd) == "load: evil.tar: layer 1: odd: unsupported tar entry type 'Z'"


def test_non_directory_named_as_the_layer_root_is_refused(diff, canary):
    assert refused(diff, tb.symlink("./", str(canary))) == \
        "load: evil.tar: layer 1: ./: only a directory can be the layer root"


def test_file_used_as_a_parent_directory_is_refused(diff, canary):
    assert refused(diff, tb.file("f", b"x"), tb.file("f/child")) == \
        "load: evil.tar: layer 1: f/child: parent f is not a directory"
