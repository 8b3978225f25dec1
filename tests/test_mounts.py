"""The user's entries of the mount table made for real, in a private mount namespace (unshare -m)
whose mounts die with it.

Each test builds a plain directory tree as the container root, runs a small Python program in
a new mount namespace that applies them and reports what it sees there, and then checks the
host side (volume data, canary directories) after that namespace is gone.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PRELUDE = """
import errno, json, os, sys
from overlaykit.linux.mountinfo import mounts
from overlaykit.runtime.mounts import ResolvedMount
from overlaykit.runtime.mounttable import apply_mounts, user_entries
args = json.loads(sys.argv[1])
root = args["root"]
out = {}
def mount_these(items, privileged=False):
    resolved = [ResolvedMount(**{**m, "tmpfs_options": tuple(m.get("tmpfs_options", ()))})
                for m in items]
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        apply_mounts(root_fd, sorted(user_entries(resolved, privileged), key=lambda m: m.destination.count("/")))
    finally:
        os.close(root_fd)
def write(path, data=b"x"):
    try:
        with open(path, "wb") as f:
            f.write(data)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def entry(path):
    found = [m for m in mounts() if m.mount_point == path]
    return found[-1]._asdict() if found else None
"""


def in_namespace(code: str, **args) -> dict:
    """Run PRELUDE + code in a new private mount namespace; returns the program's `out`."""
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c",
         PRELUDE + code + "\nprint(json.dumps(out))", json.dumps(args)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "hostname").write_text("image\n")
    return path


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    path = tmp_path / "host"
    path.mkdir()
    (path / "hello").write_text("from the host\n")
    return path


def test_bind_mount_is_writable_and_writes_reach_the_host(root, host_dir):
    out = in_namespace("""
mount_these([{"type": "bind", "destination": "/app/local", "source": args["src"]}])
out["seen"] = open(root + "/app/local/hello").read()
out["write"] = write(root + "/app/local/new", b"written in the container")
out["fstype"] = entry(root + "/app/local")["fstype"]
""", root=str(root), src=str(host_dir))
    assert out["seen"] == "from the host\n"
    assert out["write"] == "ok"
    assert (host_dir / "new").read_text() == "written in the container"
    assert (root / "app" / "local").is_dir() and not os.listdir(root / "app" / "local")


def test_readonly_bind_refuses_writes_in_it_and_in_its_submounts(root, host_dir):
    (host_dir / "sub").mkdir()
    out = in_namespace("""
from overlaykit.linux.mount import tmpfs
tmpfs(args["src"] + "/sub")          # a submount under the bind's source
mount_these([{"type": "bind", "destination": "/data", "source": args["src"], "readonly": True}])
out["top"] = write(root + "/data/new")
out["sub"] = write(root + "/data/sub/new")
out["top_opts"] = entry(root + "/data")["options"].split(",")
out["sub_opts"] = entry(root + "/data/sub")["options"].split(",")
out["source_still_rw"] = write(args["src"] + "/sub/ok")
""", root=str(root), src=str(host_dir))
    assert out["top"] == "EROFS" and out["sub"] == "EROFS"
    assert "ro" in out["top_opts"] and "ro" in out["sub_opts"]
    assert out["source_still_rw"] == "ok"
    assert not (host_dir / "new").exists()


def test_file_bind_creates_a_file_target_and_shares_the_inode(root, tmp_path):
    source = tmp_path / "resolv.conf"
    source.write_text("nameserver 127.0.0.1\n")
    out = in_namespace("""
mount_these([{"type": "bind", "destination": "/etc/resolv.conf", "source": args["src"]},
             {"type": "bind", "destination": "/new/dir/file", "source": args["src"], "readonly": True}])
out["seen"] = open(root + "/etc/resolv.conf").read()
out["write"] = write(root + "/etc/resolv.conf", b"nameserver 10.0.0.1\\n")
out["ro_write"] = write(root + "/new/dir/file")
""", root=str(root), src=str(source))
    assert out["seen"] == "nameserver 127.0.0.1\n"
    assert out["write"] == "ok" and out["ro_write"] == "EROFS"
    assert source.read_text() == "nameserver 10.0.0.1\n"
    assert (root / "etc" / "resolv.conf").is_file() and (root / "new" / "dir" / "file").is_file()


def test_bind_propagation_shows_in_mountinfo_and_carries_new_mounts(root, host_dir):
    out = in_namespace("""
from overlaykit.linux.mount import bind, set_propagation, tmpfs
bind(args["src"], args["src"])       # make the source a mount of its own, in a peer group
set_propagation(args["src"], "shared")
mount_these([{"type": "bind", "destination": "/shared", "source": args["src"], "propagation": "rshared"},
             {"type": "bind", "destination": "/slave", "source": args["src"], "propagation": "rslave"},
             {"type": "bind", "destination": "/private", "source": args["src"], "propagation": "rprivate"}])
os.mkdir(args["src"] + "/later")
tmpfs(args["src"] + "/later")        # mounted on the host side after the container's binds
out["source"] = entry(args["src"])["propagation"]
for name in ("shared", "slave", "private"):
    out[name] = entry(root + "/" + name)["propagation"]
    out[name + "_sees_later"] = entry(root + "/" + name + "/later") is not None
""", root=str(root), src=str(host_dir))
    group = out["source"].split(":")[1]
    assert out["shared"] == f"shared:{group}"
    assert out["slave"] == f"master:{group}"
    assert out["private"] == ""
    assert out["shared_sees_later"] and out["slave_sees_later"] and not out["private_sees_later"]


def test_tmpfs_size_is_enforced_by_the_kernel(root):
    out = in_namespace("""
mount_these([{"type": "tmpfs", "destination": "/scratch", "tmpfs_options": ["size=1m"]}])
out["small"] = write(root + "/scratch/small", b"x" * 512 * 1024)
out["past"] = write(root + "/scratch/big", b"x" * 2 * 1024 * 1024)
out["entry"] = entry(root + "/scratch")
""", root=str(root))
    assert out["small"] == "ok"
    assert out["past"] == "ENOSPC"
    assert out["entry"]["fstype"] == "tmpfs" and "size=1024k" in out["entry"]["super_options"]
    assert not os.listdir(root / "scratch")


def test_tmpfs_gets_docker_defaults_and_the_given_mode_and_owner(root):
    out = in_namespace("""
mount_these([{"type": "tmpfs", "destination": "/run/a", "tmpfs_options": ["mode=1770", "uid=1000", "gid=1001"]},
             {"type": "tmpfs", "destination": "/run/b", "tmpfs_options": ["exec", "dev"]}])
st = os.stat(root + "/run/a")
out["mode"], out["uid"], out["gid"] = st.st_mode, st.st_uid, st.st_gid
out["a"] = entry(root + "/run/a")["options"].split(",")
out["b"] = entry(root + "/run/b")["options"].split(",")
""", root=str(root))
    assert stat.S_IMODE(out["mode"]) == 0o1770 and out["uid"] == 1000 and out["gid"] == 1001
    assert {"noexec", "nosuid", "nodev"} <= set(out["a"])
    assert "nosuid" in out["b"] and "noexec" not in out["b"]
    assert "nodev" in out["b"], "a tmpfs stays nodev whatever its options say, unless --privileged"


def test_tmpfs_dev_option_is_honoured_only_when_privileged(root):
    out = in_namespace("""
mount_these([{"type": "tmpfs", "destination": "/run/b", "tmpfs_options": ["dev"]}], privileged=True)
out["b"] = entry(root + "/run/b")["options"].split(",")
""", root=str(root))
    assert "nodev" not in out["b"]


def _image_content(root: Path) -> Path:
    """What an image might have at a VOLUME path: modes, owners, links, a fifo, an xattr."""
    data = root / "var" / "lib" / "app"
    (data / "private").mkdir(parents=True)
    os.chown(data / "private", 1000, 1000)
    os.chmod(data / "private", 0o700)
    (data / "private" / "key").write_text("secret\n")
    (data / "tool").write_text("#!/bin/sh\n")
    os.chown(data / "tool", 1000, 1001)
    os.chmod(data / "tool", 0o4755)
    os.link(data / "tool", data / "tool.hard")
    os.symlink("private/key", data / "key.sym")
    os.mkfifo(data / "pipe", 0o620)
    os.setxattr(data / "tool", "user.origin", b"image")
    os.chown(data, 1000, 1000)
    os.chmod(data, 0o750)
    return data


def test_empty_volume_gets_the_image_content_with_modes_owners_and_links(root, tmp_path):
    _image_content(root)
    volume = tmp_path / "vol" / "_data"
    volume.mkdir(parents=True)
    out = in_namespace("""
mount_these([{"type": "volume", "destination": "/var/lib/app", "source": args["vol"], "copy_up": True}])
out["write"] = write(root + "/var/lib/app/new")
""", root=str(root), vol=str(volume))
    assert out["write"] == "ok"
    assert sorted(os.listdir(volume)) == ["key.sym", "new", "pipe", "private", "tool", "tool.hard"]
    top = os.stat(volume)
    assert (stat.S_IMODE(top.st_mode), top.st_uid, top.st_gid) == (0o750, 1000, 1000)
    tool = os.stat(volume / "tool")
    assert (stat.S_IMODE(tool.st_mode), tool.st_uid, tool.st_gid) == (0o4755, 1000, 1001)
    assert tool.st_nlink == 2 and os.stat(volume / "tool.hard").st_ino == tool.st_ino
    assert os.getxattr(volume / "tool", "user.origin") == b"image"
    assert os.readlink(volume / "key.sym") == "private/key"
    private = os.stat(volume / "private")
    assert (stat.S_IMODE(private.st_mode), private.st_uid) == (0o700, 1000)
    assert (volume / "private" / "key").read_text() == "secret\n"
    assert stat.S_ISFIFO(os.lstat(volume / "pipe").st_mode)
    assert os.stat(volume / "tool").st_mtime_ns == os.stat(root / "var/lib/app/tool").st_mtime_ns
    assert not (root / "var" / "lib" / "app" / "new").exists()


def test_volume_with_content_is_not_copied_into(root, tmp_path):
    _image_content(root)
    volume = tmp_path / "vol" / "_data"
    volume.mkdir(parents=True)
    (volume / "mine").write_text("kept\n")
    in_namespace("""
mount_these([{"type": "volume", "destination": "/var/lib/app", "source": args["vol"], "copy_up": True}])
""", root=str(root), vol=str(volume))
    assert os.listdir(volume) == ["mine"]


def test_nocopy_volume_and_bind_mount_never_copy(root, tmp_path, host_dir):
    _image_content(root)
    volume = tmp_path / "vol" / "_data"
    volume.mkdir(parents=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = in_namespace("""
mount_these([{"type": "volume", "destination": "/var/lib/app", "source": args["vol"], "copy_up": False},
             {"type": "bind", "destination": "/etc", "source": args["empty"]}])
out["app"] = os.listdir(root + "/var/lib/app")
out["etc"] = os.listdir(root + "/etc")
""", root=str(root), vol=str(volume), empty=str(empty))
    assert out == {"app": [], "etc": []}
    assert os.listdir(volume) == [] and os.listdir(empty) == []


def test_nested_destinations_are_mounted_parent_first(root, host_dir, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "deep").write_text("deep\n")
    out = in_namespace("""
mount_these([{"type": "bind", "destination": "/a/b/c", "source": args["inner"]},
             {"type": "tmpfs", "destination": "/a/b"},
             {"type": "bind", "destination": "/a", "source": args["src"]}])
out["deep"] = open(root + "/a/b/c/deep").read()
out["order"] = [m.mount_point[len(root):] for m in mounts() if m.mount_point.startswith(root + "/")]
""", root=str(root), src=str(host_dir), inner=str(inner))
    assert out["deep"] == "deep\n"
    assert out["order"] == ["/a", "/a/b", "/a/b/c"]
    assert (host_dir / "b").is_dir()  # /a/b was made inside the bind, i.e. in host_dir


def test_symlinked_destination_cannot_redirect_a_mount_onto_the_host(root, tmp_path, host_dir):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "untouched").write_text("canary\n")
    os.symlink(str(canary), root / "app")                     # absolute: /app -> <host canary>
    os.symlink("../../../../../../../../" + str(canary).lstrip("/"), root / "up")  # and through ..
    out = in_namespace("""
mount_these([{"type": "bind", "destination": "/app/local", "source": args["src"]},
             {"type": "tmpfs", "destination": "/up/scratch"},
             {"type": "bind", "destination": "/app", "source": args["src"]}])
out["points"] = [m.mount_point for m in mounts() if m.mount_point.startswith(args["tmp"])]
""", root=str(root), src=str(host_dir), tmp=str(tmp_path))
    inside = str(root) + str(canary)       # where the links resolve when root is "/"
    assert sorted(out["points"]) == sorted([inside, inside + "/local", inside + "/scratch"])
    assert os.listdir(canary) == ["untouched"]
    assert os.path.isdir(inside)
    # /app/local and /up/scratch were made inside the /app bind, so in host_dir, not in canary
    assert sorted(os.listdir(host_dir)) == ["hello", "local", "scratch"]
    assert os.path.islink(root / "app")


def test_a_destination_under_a_regular_file_is_refused(root, host_dir):
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", PRELUDE + """
mount_these([{"type": "bind", "destination": "/etc/hostname/x", "source": args["src"]}])
""", json.dumps({"root": str(root), "src": str(host_dir)})],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode != 0
    assert "NotADirectoryError" in proc.stderr and "etc/hostname" in proc.stderr
    assert (root / "etc" / "hostname").read_text() == "image\n"
