"""Round trips: what a container holds survives commit -> save -> load -> run, whiteouts included."""

import io
import itertools
import os
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from overlaykit.image.pack import pack_layer, pack_tree
from overlaykit.image.unpack import unpack
from tests.overlay_helpers import container, view, write
from tests.test_commit_save import listing, run_ok


def test_demo_container_survives_commit_save_and_load_into_a_fresh_store(cli, demo, tmp_path, fixture_path):
    commands = Path(fixture_path("demo.diff.cmd")).read_text()
    run_ok(cli, "run", "--name", "first", demo, "sh", "-c", commands.strip() + "; chmod 600 /opt/app/b.hard")
    run_ok(cli, "commit", "first", "roundtrip:1")
    archive = tmp_path / "roundtrip.tar"
    run_ok(cli, "save", "-o", str(archive), "roundtrip:1")
    first = tmp_path / "first.tar"
    run_ok(cli, "export", "-o", str(first), "first")

    fresh = str(tmp_path / "fresh")
    again = lambda *args: run_ok(cli, "--root", fresh, *args)  # noqa: E731 - a later --root wins
    try:
        again("load", str(archive))
        again("run", "--name", "second", "roundtrip:1", "sh", "-c",
              "test ! -e /etc/motd && test ! -e /opt/app/sub && test ! -e /var/cache/junk")
        second = tmp_path / "second.tar"
        again("export", "-o", str(second), "second")
    finally:
        from tests.conftest import _kill_containers, _unmount_all
        from overlaykit.store.layout import Layout
        _kill_containers(Layout(fresh))
        _unmount_all(fresh)
    assert listing(second.read_bytes()) == listing(first.read_bytes())


NAMES = ["a", "b", "d1", "d2", "d1/x", "d1/y", "d2/sub", "d2/sub/z", "a/n", "b/n"]
operations = st.lists(st.tuples(
    st.sampled_from(["file", "mkdir", "delete", "file_to_dir", "dir_to_file", "chmod", "link", "rename_dir"]),
    st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(0, 0o777)), max_size=8)


def base_layer(path: Path) -> None:
    write(path / "d1/x", "x", mtime=1_600_000_000)
    write(path / "d1/y", "y")
    write(path / "d2/sub/z", "z", mode=0o4755)
    write(path / "a", "a")
    os.link(path / "a", path / "d1/hard")
    os.symlink("d1/x", path / "b")


def apply(root: Path, op: str, name: str, other: str, mode: int) -> None:
    """One change made through the overlay's merged dir; what cannot be done is skipped."""
    p, q = root / name, root / other
    try:
        if op == "file":
            p.write_text(f"{name} {mode}")
        elif op == "mkdir":
            p.mkdir()
        elif op == "delete":
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        elif op == "file_to_dir" and p.is_file() and not p.is_symlink():
            p.unlink()
            p.mkdir()
            (p / "inside").write_text("in")
        elif op == "dir_to_file" and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            p.write_text("was a dir")
        elif op == "chmod" and not p.is_symlink():
            os.chmod(p, mode | 0o700)
        elif op == "link" and p.is_file() and not p.is_symlink():
            os.link(p, q)
        elif op == "rename_dir" and p.is_dir() and not p.is_symlink():
            os.rename(p, q)
    except OSError:
        pass


counter = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=operations)
def test_any_change_set_survives_pack_and_unpack(layout, tmp_path, changes):
    base = tmp_path / f"example{next(counter)}"
    lower = base / "lower"
    base_layer(lower)
    with container(base / "c", [lower]) as (merged, upper):
        for change in changes:
            apply(merged, *change)
        expected = io.BytesIO()
        pack_tree(str(merged), expected)
    layer = io.BytesIO()
    pack_layer(str(upper), layer)
    (base / "stored").mkdir()
    unpack(io.BytesIO(layer.getvalue()), str(base / "stored"))
    with view(base / "view", [base / "stored", lower]) as root:
        got = io.BytesIO()
        pack_tree(str(root), got)
    assert listing(got.getvalue()) == listing(expected.getvalue())
