"""cp between real containers of demo:1 and the host: Docker's name rules, tar streams, owners,
and hostile symlinks that must never lead a copy out of the container's root."""

import io
import json
import os
import tarfile
import time

import pytest

LOOP = "echo started; while true; do sleep 0.1; done"


def _running(cli, name: str, *options: str) -> None:
    cli("run", "-d", "--name", name, *options, "demo:1", "sh", "-c", LOOP, check=True)
    deadline = time.monotonic() + 20
    while "started" not in cli("logs", name, check=True).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


@pytest.fixture
def host_tree(tmp_path):
    """A small host tree: d/sub/a, d/link -> /etc/passwd, f.txt."""
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a").write_text("a\n")
    os.symlink("/etc/passwd", tmp_path / "d" / "link")
    (tmp_path / "f.txt").write_text("hello\n")
    return tmp_path


def test_cp_into_a_stopped_container_lands_in_its_writable_layer(cli, demo, host_tree):
    cli("create", "--name", "box", demo, "sh", check=True)
    assert cli("cp", str(host_tree / "f.txt"), "box:/etc/", check=True).stdout == ""
    # /data: the image's VOLUME, mounted for cp, its mount point made as a start makes it
    assert cli("diff", "box", check=True).stdout == "A /data\nC /etc\nA /etc/f.txt\n"
    (data,) = json.loads(cli("inspect", "box", check=True).stdout)
    rw = data["GraphDriver"]["Data"]["UpperDir"]
    assert open(os.path.join(rw, "etc", "f.txt")).read() == "hello\n"
    # and out again, and the container sees it when it runs
    cli("cp", "box:/etc/f.txt", str(host_tree / "back.txt"), check=True)
    assert (host_tree / "back.txt").read_text() == "hello\n"
    assert cli("start", "-a", "box", check=True).returncode == 0
    assert cli("run", "--rm", demo, "true").returncode == 0
    # nothing stays mounted on the host once cp is done
    assert not os.path.ismount(data["GraphDriver"]["Data"]["MergedDir"])


def test_cp_follows_dockers_rules_for_trailing_slash_and_dot(cli, demo, host_tree):
    _running(cli, "web")
    d = str(host_tree / "d")
    cli("cp", d, "web:/opt/", check=True)            # existing dir: d goes inside
    cli("cp", d + "/.", "web:/opt/flat", check=True)  # missing dest: made, with d's contents
    cli("cp", d + "/.", "web:/opt/", check=True)      # /. into an existing dir: contents only
    cli("cp", d, "web:/opt/copy", check=True)         # missing dest: d becomes /opt/copy
    out = cli("exec", "web", "sh", "-c",
              "cd /opt && find d flat copy sub link | sort", check=True).stdout.split()
    assert out == ["copy", "copy/link", "copy/sub", "copy/sub/a", "d", "d/link", "d/sub",
                   "d/sub/a", "flat", "flat/link", "flat/sub", "flat/sub/a", "link", "sub", "sub/a"]
    assert cli("exec", "web", "readlink", "/opt/d/link", check=True).stdout == "/etc/passwd\n"

    missing = cli("cp", str(host_tree / "f.txt"), "web:/nowhere/")
    assert (missing.returncode, missing.stderr) == (
        1, "overlaykit: cp: destination directory /nowhere/ in container web does not exist\n")
    over = cli("cp", d, "web:/etc/hostname")
    assert (over.returncode, over.stderr) == (
        1, f"overlaykit: cp: cannot copy directory {d} over the file /etc/hostname in container web\n")
    notdir = cli("cp", "web:/etc/hostname/", str(host_tree))
    assert (notdir.returncode, notdir.stderr) == (
        1, "overlaykit: cp: /etc/hostname/: not a directory in container web\n")
    gone = cli("cp", "web:/no/such", str(host_tree))
    assert (gone.returncode, gone.stderr) == (
        1, "overlaykit: cp: Could not find the file /no/such in container web\n")
    both = cli("cp", "web:/etc", "web:/opt")
    assert (both.returncode, both.stderr) == (
        1, "overlaykit: cp: copying between containers is not supported\n")
    # out of the container: a file over an existing file, a dir into an existing dir
    cli("cp", "web:/etc/hostname", str(host_tree / "f.txt"), check=True)
    assert (host_tree / "f.txt").read_text() == cli("exec", "web", "cat", "/etc/hostname").stdout
    cli("cp", "web:/opt/d", str(host_tree / "sub-out"), check=True)
    assert (host_tree / "sub-out" / "sub" / "a").read_text() == "a\n"
    assert os.readlink(host_tree / "sub-out" / "link") == "/etc/passwd"


def test_cp_streams_a_tar_either_way(cli, demo, tmp_path):
    _running(cli, "web")
    out = cli("cp", "web:/etc/hostname", "-", input=b"", check=True).stdout
    assert _tar_names(out) == ["hostname"]
    names = _tar_names(cli("cp", "web:/opt/app", "-", input=b"", check=True).stdout)
    assert names[0] == "app" and all(n == "app" or n.startswith("app/") for n in names)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("in/one", b"1\n"), (".wh.kept", b"not a whiteout\n")):
            info = tarfile.TarInfo(name)
            info.size, info.uid = len(data), 4242
            tar.addfile(info, io.BytesIO(data))
    cli("cp", "-", "web:/opt", input=buf.getvalue(), check=True)
    assert cli("exec", "web", "cat", "/opt/in/one", "/opt/.wh.kept", check=True).stdout == \
        "1\nnot a whiteout\n"
    # without -a the container's root owns what is copied in
    assert cli("exec", "web", "stat", "-c", "%u", "/opt/in/one", check=True).stdout == "0\n"
    notdir = cli("cp", "-", "web:/etc/hostname", input=buf.getvalue())
    assert (notdir.returncode, notdir.stderr) == (
        1, b"overlaykit: cp: destination /etc/hostname in container web must be a directory\n")


def test_cp_archive_mode_keeps_owners_and_follow_link_copies_the_target(cli, demo, tmp_path):
    _running(cli, "web")
    cli("exec", "web", "sh", "-c",
        "echo x > /opt/owned && chown 1000:1000 /opt/owned && ln -s /etc/hostname /opt/ln",
        check=True)
    cli("cp", "web:/opt/owned", str(tmp_path / "plain"), check=True)
    cli("cp", "-a", "web:/opt/owned", str(tmp_path / "kept"), check=True)
    assert (os.stat(tmp_path / "plain").st_uid, os.stat(tmp_path / "kept").st_uid) == (0, 1000)
    cli("cp", "web:/opt/ln", str(tmp_path / "link"), check=True)
    assert os.readlink(tmp_path / "link") == "/etc/hostname"
    cli("cp", "-L", "web:/opt/ln", str(tmp_path / "followed"), check=True)
    assert (tmp_path / "followed").read_text() == \
        cli("exec", "web", "cat", "/etc/hostname", check=True).stdout
    (tmp_path / "mine").write_text("m\n")
    os.chown(tmp_path / "mine", 1234, 1234)
    cli("cp", "-a", str(tmp_path / "mine"), "web:/opt/", check=True)
    assert cli("exec", "web", "stat", "-c", "%u:%g", "/opt/mine", check=True).stdout == "1234:1234\n"


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_hostile_symlinks_never_lead_cp_out_of_the_root(cli, demo, tmp_path, running):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("host secret\n")
    up = "/.." * 12
    setup = (f"ln -s {up}{canary} /escape && ln -s ../../../../../../../../{canary.relative_to('/')} "
             f"/opt/rel && mkdir -p {canary} && echo container > {canary}/secret")
    if running:
        cli("run", "-d", "--name", "evil", demo, "sh", "-c", setup + " && sleep 1000", check=True)
        deadline = time.monotonic() + 20
        while cli("exec", "evil", "test", "-L", "/opt/rel").returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    else:
        cli("run", "--name", "evil", demo, "sh", "-c", setup, check=True)
    (tmp_path / "payload").write_text("payload\n")
    for dest in ("evil:/escape/", "evil:/opt/rel/", "evil:/escape/secret", "evil:/opt/rel/new"):
        cli("cp", str(tmp_path / "payload"), dest, check=True)
    # read back through the links: the container's file, never the host's
    out = cli("cp", "evil:/escape/secret", "-", input=b"", check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.extractfile("secret").read() == b"payload\n"
    # a tar on stdin naming ../ or an absolute symlink parent cannot climb out either
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../../../../../../../" + str(canary.relative_to("/")) + "/dotdot")
        tar.addfile(info, io.BytesIO(b""))
    bad = cli("cp", "-", "evil:/opt", input=buf.getvalue())
    assert bad.returncode == 1 and b"path escapes the destination" in bad.stderr
    assert sorted(os.listdir(canary)) == ["secret"]
    assert (canary / "secret").read_text() == "host secret\n"
    if not running:
        cli("start", "-a", "evil", check=False)
    inside = cli("run", "--rm", "--name", "peek", demo, "true")
    assert inside.returncode == 0


def test_cp_into_a_running_container_reaches_its_volume_but_not_proc(cli, demo, tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    _running(cli, "web", "-v", f"{bind}:/data")
    (tmp_path / "f").write_text("to the bind\n")
    cli("cp", str(tmp_path / "f"), "web:/data/f", check=True)
    assert (bind / "f").read_text() == "to the bind\n"
    refused = cli("cp", str(tmp_path / "f"), "web:/proc/sys/kernel/core_pattern")
    assert (refused.returncode, refused.stderr) == (
        1, "overlaykit: cp: cannot copy into /proc/sys/kernel/core_pattern: it is on a pseudo "
           "filesystem (/proc, /sys, ...)\n")
    out = cli("cp", "web:/proc/1/status", "-", input=b"")
    assert out.returncode == 1 and b"pseudo filesystem" in out.stderr


def test_cp_into_a_stopped_container_reaches_its_volumes_and_honours_read_only(cli, demo, layout,
                                                                                tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    (tmp_path / "f").write_text("into the volume\n")
    cli("create", "--name", "box", "--read-only", "-v", "vol:/vol", "-v", f"{bind}:/ro:ro",
        "-v", f"{bind}:/rw", demo, "sh", check=True)
    cli("cp", str(tmp_path / "f"), "box:/vol/", check=True)
    assert open(os.path.join(layout.volume_data("vol"), "f")).read() == "into the volume\n"
    cli("cp", str(tmp_path / "f"), "box:/rw/", check=True)
    assert (bind / "f").read_text() == "into the volume\n"
    for dest in ("box:/ro/g", "box:/etc/g"):  # a :ro bind, the --read-only root
        refused = cli("cp", str(tmp_path / "f"), dest)
        assert (refused.returncode, refused.stderr) == (1, "overlaykit: cp: g: Read-only file system\n")
    out = cli("cp", "box:/vol/f", "-", input=b"", check=True).stdout
    assert _tar_names(out) == ["f"]
    assert not os.path.exists(bind / "g")
