"""diff, export, commit, save and import through the real CLI, on the fixtures' demo:1."""

import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from overlaykit.store import images, layers


def store_state(layout) -> list[str]:
    """Every file and link under the store's metadata and layer dirs: "untouched" means equal."""
    found = []
    for top in (layout.image_root, layout.overlay2):
        for base, dirs, files in os.walk(top):
            found += [os.path.join(base, n) for n in files]
    return sorted(found)


def listing(tar_bytes: bytes) -> str:
    """A tar in demo.listing's shape: path, type, mode, uid, gid, size, digest or ->target, dev, mtime, link."""
    kinds = {tarfile.REGTYPE: "f", tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.FIFOTYPE: "p",
             tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.LNKTYPE: "h"}
    lines = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for m in tar:
            digest = dev = mtime = link = ""
            if m.isreg():
                digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest()[:16]
                mtime = str(int(m.mtime))
            elif m.issym():
                digest = "->" + m.linkname
            elif m.islnk():
                link = m.linkname
            elif m.ischr() or m.isblk():
                dev = f"{m.devmajor},{m.devminor}"
            lines.append("\t".join([m.name.rstrip("/"), kinds[m.type], oct(m.mode), str(m.uid), str(m.gid),
                                    str(m.size if m.isreg() else 0), digest, dev, mtime, link]))
    return "".join(line + "\n" for line in sorted(lines))


def run_ok(cli, *args) -> str:
    return cli(*args, check=True).stdout


def test_diff_after_the_demo_commands_is_what_docker_diff_printed(cli, demo, fixture_path):
    commands = Path(fixture_path("demo.diff.cmd")).read_text()
    run_ok(cli, "run", "--name", "c", demo, "sh", "-c", commands)
    assert run_ok(cli, "diff", "c") == Path(fixture_path("demo.diff")).read_text()


def test_export_of_an_unchanged_container_is_the_image_listing(cli, demo, fixture_path, tmp_path):
    run_ok(cli, "create", "--name", "c", demo)
    out = tmp_path / "c.tar"
    run_ok(cli, "export", "-o", str(out), "c")
    assert listing(out.read_bytes()) == Path(fixture_path("demo.listing")).read_text()


def test_export_writes_to_stdout_what_it_writes_to_a_file(cli, demo, tmp_path):
    run_ok(cli, "run", "--name", "c", demo, "sh", "-c", "echo new > /newfile; rm /etc/motd")
    out = tmp_path / "c.tar"
    run_ok(cli, "export", "-o", str(out), "c")
    assert cli("export", "c", input=b"").stdout == out.read_bytes()
    names = tarfile.open(out).getnames()
    assert "newfile" in names and "etc/motd" not in names
    assert not {".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys"} & set(names)


def test_commit_stores_the_changes_as_a_layer_and_the_config_as_docker_does(cli, demo, layout):
    run_ok(cli, "run", "--name", "c", demo, "sh", "-c",
           "echo new > /newfile; rm /etc/motd; rm -rf /var/cache/junk; mkdir /var/cache/junk; "
           "echo z > /var/cache/junk/z; chmod 700 /opt/app/b")
    image_id = run_ok(cli, "commit", "-m", "my change", "-c", "ENV MODE=test", "-c", 'CMD ["cat", "/newfile"]',
                      "-c", "WORKDIR /tmp", "c", "demo:2").strip()
    image = images.resolve(layout, "demo:2")
    assert image.id == image_id
    parent = images.resolve(layout, demo)
    assert image.chain_ids[:-1] == parent.chain_ids
    assert image.config["config"]["Cmd"] == ["cat", "/newfile"]
    assert image.config["config"]["WorkingDir"] == "/tmp"
    assert "MODE=test" in image.config["config"]["Env"] and "GREETING=hello" in image.config["config"]["Env"]
    assert image.config["history"][-1]["comment"] == "my change"
    assert len(image.config["history"]) == len(parent.config["history"]) + 1
    diff = Path(layout.layer_diff(layers.cache_id(layout, image.chain_ids[-1])))
    assert (diff / "newfile").read_text() == "new\n"
    assert (diff / "etc/motd").is_char_device() and os.stat(diff / "etc/motd").st_rdev == 0
    assert os.getxattr(diff / "var/cache/junk", "trusted.overlay.opaque") == b"y"
    assert oct(os.stat(diff / "opt/app/b").st_mode & 0o7777) == "0o700"
    assert not any((diff / p).exists() for p in (".dockerenv", "etc/hosts", "etc/hostname", "proc", "dev"))
    assert run_ok(cli, "run", "--rm", "demo:2") == "new\n"
    out = run_ok(cli, "run", "--rm", "demo:2", "sh", "-c", "ls /var/cache/junk; ls /etc; pwd; echo $MODE")
    assert out == "z\ngroup\nhostname\nhosts\nmtab\npasswd\nresolv.conf\n/tmp\ntest\n"


def test_commit_of_an_unchanged_container_adds_an_empty_layer(cli, demo, layout):
    run_ok(cli, "create", "--name", "c", demo)
    run_ok(cli, "commit", "c", "same:1")
    image = images.resolve(layout, "same:1")
    assert os.listdir(layout.layer_diff(layers.cache_id(layout, image.chain_ids[-1]))) == []
    assert run_ok(cli, "run", "--rm", "same:1", "cat", "/etc/motd") == "welcome to the demo image\n"


@pytest.mark.parametrize("args, message", [
    (["-c", "FOO bar", "c", "x:1"], "overlaykit: commit: --change 'FOO bar': unknown instruction FOO "
     "(one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)\n"),
    (["-c", "CMD", "c"], "overlaykit: commit: --change 'CMD': CMD needs an argument\n"),
    (["-c", "EXPOSE 80/icmp", "c"], "overlaykit: commit: --change 'EXPOSE 80/icmp': invalid port '80/icmp'\n"),
    (["-c", "ENTRYPOINT [1]", "c"], "overlaykit: commit: --change 'ENTRYPOINT [1]': not a JSON array of strings\n"),
    (["c", "Bad:Name:x"], "overlaykit: commit: invalid reference 'Bad:Name:x'\n"),
    (["nosuch"], "overlaykit: commit: No such container: nosuch\n"),
])
def test_commit_refuses_bad_input_in_one_line_and_leaves_the_store(cli, demo, layout, args, message):
    run_ok(cli, "run", "--name", "c", demo, "touch", "/x")
    before = store_state(layout)
    proc = cli("commit", *args)
    assert (proc.returncode, proc.stderr) == (1, message)
    assert store_state(layout) == before


@pytest.mark.parametrize("command", ["diff", "export"])
def test_unknown_container_is_one_line(cli, layout, command):
    proc = cli(command, "nosuch")
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: {command}: No such container: nosuch\n")


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_saving_the_same_image_twice_gives_the_same_bytes(cli, demo, tmp_path, fmt):
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    run_ok(cli, "save", "--format", fmt, "-o", str(one), demo)
    run_ok(cli, "save", "--format", fmt, "-o", str(two), demo)
    assert one.read_bytes() == two.read_bytes()
    assert cli("save", "--format", fmt, demo, input=b"").stdout == one.read_bytes()


def test_an_image_made_here_keeps_its_id_through_save(cli, layout, rootfs, tmp_path):
    """Layers made by import and commit are saved as the tars they were stored from (see test_tarsplit.py)."""
    (tmp_path / "rootfs.tar").write_bytes(rootfs)
    run_ok(cli, "import", str(tmp_path / "rootfs.tar"), "base:1")
    run_ok(cli, "run", "--name", "c", "base:1", "sh", "-c", "echo hi > /hi; rm -rf /opt/app; chmod 600 /etc/passwd")
    image_id = run_ok(cli, "commit", "c", "kept:1").strip()
    archive = tmp_path / "kept.tar"
    run_ok(cli, "save", "-o", str(archive), "kept:1")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["Config"] == "blobs/sha256/" + image_id.split(":")[1]
    assert manifest[0]["RepoTags"] == ["kept:1"]


def test_save_of_an_unknown_image_writes_nothing(cli, layout, tmp_path):
    out = tmp_path / "x.tar"
    proc = cli("save", "-o", str(out), "nosuch:1")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: save: No such image: nosuch:1\n")
    assert [name for name in os.listdir(tmp_path) if name != "store"] == []


@pytest.fixture
def rootfs(cli, demo, tmp_path) -> bytes:
    """demo:1's whole filesystem as a plain tar, the shape of a mini root filesystem tarball."""
    run_ok(cli, "create", "--name", "src", demo)
    out = tmp_path / "rootfs.tar"
    run_ok(cli, "export", "-o", str(out), "src")
    return out.read_bytes()


@pytest.mark.parametrize("compress", [
    lambda b: b, gzip.compress, lambda b: lzma.compress(b), lambda b: zstandard.ZstdCompressor().compress(b)],
    ids=["plain", "gzip", "xz", "zstd"])
def test_import_makes_a_one_layer_image_from_a_rootfs_tarball(cli, layout, rootfs, tmp_path, compress):
    tarball = tmp_path / "rootfs.tar.any"
    tarball.write_bytes(compress(rootfs))
    image_id = run_ok(cli, "import", "-c", "CMD cat /etc/motd", "-m", "from a file", str(tarball), "mini:1").strip()
    image = images.resolve(layout, "mini:1")
    assert image.id == image_id and len(image.chain_ids) == 1
    assert image.config["os"] == "linux" and image.config["architecture"] in ("amd64", "arm64")
    assert image.config["history"] == [{"created": image.config["created"], "comment": "from a file",
                                        "created_by": f"Imported from {tarball}"}]
    assert run_ok(cli, "run", "--rm", "mini:1") == "welcome to the demo image\n"


def test_import_reads_stdin(cli, layout, rootfs):
    run_ok_proc = cli("import", "-", "mini:2", input=gzip.compress(rootfs))
    assert run_ok_proc.returncode == 0, run_ok_proc.stderr
    assert images.resolve(layout, "mini:2").config["history"][0]["created_by"] == "Imported from -"


def test_import_of_something_that_is_not_a_tarball_is_one_line(cli, layout, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 100)
    proc = cli("import", str(text), "x:1")
    assert (proc.returncode, proc.stderr) == (1, f"overlaykit: import: {text}: not a tar archive\n")
    assert store_state(layout) == []
    proc = cli("import", "-c", "NOPE x", str(text), "x:1")
    assert proc.stderr == ("overlaykit: import: --change 'NOPE x': unknown instruction NOPE (one of CMD, "
                           "ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)\n")
