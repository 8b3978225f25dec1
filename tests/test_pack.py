"""Upper dirs and merged views packed as tars: overlay markers turned back into OCI ones, nothing lost."""

import io
import os
import stat
import tarfile
from pathlib import Path

from overlaykit.image.pack import pack_layer, pack_tree
from overlaykit.image.unpack import unpack
from tests.overlay_helpers import container, opaque, view, whiteout, write


class PipeLike:
    """A write-only stream: no seek, no tell, as a pipe or a socket."""

    def __init__(self):
        self.chunks = []

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


def packed(function, root: Path, **kwargs) -> bytes:
    out = PipeLike()
    function(str(root), out, **kwargs)
    return out.getvalue()


def entries(data: bytes) -> list[tuple]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, m.type, oct(m.mode), m.uid, m.gid, m.size, m.linkname,
                 {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")})
                for m in tar]


def make_upper(upper: Path) -> None:
    write(upper / "etc/app.conf", "conf", mode=0o640, mtime=1_700_000_000)
    os.chown(upper / "etc/app.conf", 1000, 1001)
    whiteout(upper / "etc/motd")
    os.utime(upper / "etc/motd", (1_700_000_002, 1_700_000_002), follow_symlinks=False)
    os.utime(upper / "etc", (1_700_000_001, 1_700_000_001))
    (upper / "var/cache").mkdir(parents=True)
    opaque(upper / "var/cache")
    os.setxattr(upper / "var/cache", "user.note", b"kept")
    os.setxattr(upper / "var/cache", "trusted.overlay.origin", b"dropped")
    write(upper / "var/cache/y", "fresh")
    write(upper / "bin/tool", "#!tool", mode=0o4755)
    os.link(upper / "bin/tool", upper / "bin/tool.hard")
    os.symlink("tool", upper / "bin/tool.sym")
    os.mkfifo(upper / "bin/fifo")
    os.mknod(upper / "bin/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(upper / "bin/null", 0o666)


def test_upper_dir_becomes_an_oci_layer(tmp_path):
    upper = tmp_path / "upper"
    make_upper(upper)
    R, D, L, S, F, C = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE,
                        tarfile.FIFOTYPE, tarfile.CHRTYPE)
    assert entries(packed(pack_layer, upper)) == [
        ("bin", D, "0o755", 0, 0, 0, "", {}),
        ("bin/fifo", F, "0o644", 0, 0, 0, "", {}),
        ("bin/null", C, "0o666", 0, 0, 0, "", {}),
        ("bin/tool", R, "0o4755", 0, 0, 6, "", {}),
        ("bin/tool.hard", L, "0o4755", 0, 0, 0, "bin/tool", {}),
        ("bin/tool.sym", S, "0o777", 0, 0, 0, "tool", {}),
        ("etc", D, "0o755", 0, 0, 0, "", {}),
        ("etc/app.conf", R, "0o640", 1000, 1001, 4, "", {}),
        ("etc/.wh.motd", R, "0o600", 0, 0, 0, "", {}),  # in the place of "motd": the walk's order
        ("var", D, "0o755", 0, 0, 0, "", {}),
        ("var/cache", D, "0o755", 0, 0, 0, "", {"SCHILY.xattr.user.note": "kept"}),
        ("var/cache/.wh..wh..opq", R, "0o755", 0, 0, 0, "", {}),
        ("var/cache/y", R, "0o644", 0, 0, 5, "", {}),
    ]


def test_layer_tar_keeps_mtimes_in_whole_seconds_and_device_numbers(tmp_path):
    upper = tmp_path / "upper"
    make_upper(upper)
    with tarfile.open(fileobj=io.BytesIO(packed(pack_layer, upper))) as tar:
        by_name = {m.name: m for m in tar}
        assert by_name["etc"].mtime == 1_700_000_001
        assert by_name["etc/app.conf"].mtime == 1_700_000_000
        assert by_name["etc/.wh.motd"].mtime == 0
        assert by_name["var/cache/.wh..wh..opq"].mtime == 0
        assert (by_name["bin/null"].devmajor, by_name["bin/null"].devminor) == (1, 3)
        assert tar.extractfile("bin/tool").read() == b"#!tool"
        for member in tar:
            assert "atime" not in member.pax_headers and "ctime" not in member.pax_headers


def test_packing_twice_gives_the_same_bytes(tmp_path):
    upper = tmp_path / "upper"
    make_upper(upper)
    first = packed(pack_layer, upper)
    (upper / "etc/app.conf").read_bytes()  # atime moves; the tar must not
    assert packed(pack_layer, upper) == first


def test_unpacking_the_layer_gives_back_the_upper_dir(layout, tmp_path):
    upper, again = tmp_path / "upper", tmp_path / "again"
    make_upper(upper)
    again.mkdir()
    data = packed(pack_layer, upper)
    unpack(io.BytesIO(data), str(again))
    assert (again / "etc/motd").is_char_device() and os.stat(again / "etc/motd").st_rdev == 0
    assert os.getxattr(again / "var/cache", "trusted.overlay.opaque") == b"y"
    assert os.stat(again / "bin/tool").st_ino == os.stat(again / "bin/tool.hard").st_ino
    assert packed(pack_layer, again) == data


def test_export_of_a_merged_view_has_no_whiteouts_and_no_hidden_paths(layout, tmp_path):
    bottom = tmp_path / "bottom"
    write(bottom / "etc/motd", "hello")
    write(bottom / "etc/keep", "keep")
    write(bottom / "var/cache/junk/x", "junk")
    with container(tmp_path / "c", [bottom]) as (merged, upper):
        os.unlink(merged / "etc/motd")
        write(merged / "etc/hosts", "127.0.0.1 me")
        write(merged / ".dockerenv", "")
    with view(tmp_path / "view", [upper, bottom]) as root:
        data = packed(pack_tree, root, hidden={"/etc/hosts", "/.dockerenv"})
    names = [e[0] for e in entries(data)]
    assert names == ["etc", "etc/keep", "var", "var/cache", "var/cache/junk", "var/cache/junk/x"]


def test_hard_links_in_a_merged_view_stay_hard_links(layout, tmp_path):
    bottom = tmp_path / "bottom"
    write(bottom / "a/b", "two")
    os.link(bottom / "a/b", bottom / "a/b.hard")
    with view(tmp_path / "view", [bottom]) as root:
        data = packed(pack_tree, root)
    assert [(e[0], e[1], e[6]) for e in entries(data)] == [
        ("a", tarfile.DIRTYPE, ""), ("a/b", tarfile.REGTYPE, ""), ("a/b.hard", tarfile.LNKTYPE, "a/b")]
