"""--userns-remap: the container's root is an unprivileged host range, for real.

Every test runs real containers on idmapped overlays; the ranges are given as UID:GID:SIZE,
so /etc/subuid and /etc/subgid of the machine are only read, never written.
"""

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from overlaykit.runtime.mounttable import Mount
from overlaykit.runtime.userns import IdMap, first_range, parse, remap_table
from tests.pty_helpers import overlaykit_on_a_pty, read_output

REMAP = "200000:300000:65536"  # uid and gid bases differ, so a mix-up of the two shows


def _record(layout, name: str) -> dict:
    for entry in os.listdir(layout.containers):
        path = os.path.join(layout.containers, entry, "config.json")
        if os.path.exists(path):
            with open(path) as f:
                record = json.load(f)
            if record["Name"] == "/" + name:
                return record
    raise AssertionError(f"no container {name}")


def _state(layout, name: str) -> dict:
    record = _record(layout, name)
    with open(os.path.join(layout.containers, record["Id"], "state.json")) as f:
        return json.load(f)


def _diff(layout, name: str) -> str:
    return layout.layer_diff(_record(layout, name)["RWLayer"])


def test_root_inside_is_0_and_the_mapped_range_outside(cli, demo):
    out = cli("run", "--rm", "--userns-remap", REMAP, demo, "sh", "-c",
              "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map", check=True).stdout
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines == ["0", "0", "0 200000 65536", "0 300000 65536"]


def test_the_containers_process_is_the_mapped_uid_on_the_host(cli, demo, layout):
    cli("run", "-d", "--name", "c", "--userns-remap", REMAP, demo, "sleep", "60", check=True)
    try:
        pid = _state(layout, "c")["Pid"]
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        assert status["Uid"].split() == ["200000"] * 4
        assert status["Gid"].split() == ["300000"] * 4
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
        for name in ("mnt", "uts", "ipc", "net"):  # made with the user namespace, not the host's
            assert os.readlink(f"/proc/{pid}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}")
    finally:
        cli("rm", "-f", "c")


def test_without_a_remap_root_is_the_hosts_root_as_before(cli, demo, layout):
    out = cli("run", "--rm", demo, "cat", "/proc/self/uid_map", check=True).stdout
    assert out.split() == ["0", "0", "4294967295"]
    cli("run", "--name", "plain", demo, "touch", "/made", check=True)
    assert "UsernsRemap" not in _record(layout, "plain")["HostConfig"]


def test_files_made_inside_land_in_diff_owned_by_their_container_ids(cli, demo, layout):
    """The upper is idmapped too: diff/ holds the in-container owners, what commit reads."""
    cli("run", "--name", "c", "--userns-remap", REMAP, demo, "sh", "-c",
        "touch /by-root && mkdir /shared && chmod 777 /shared && su app -c 'touch /shared/by-app'"
        " && touch /given && chown 1000:1000 /given && rm /bin/true", check=True)
    diff = _diff(layout, "c")
    for path, owner in (("by-root", (0, 0)), ("shared/by-app", (1000, 1000)),
                        ("given", (1000, 1000))):
        st = os.stat(os.path.join(diff, path))
        assert (path, st.st_uid, st.st_gid) == (path, *owner)
    whiteout = os.stat(os.path.join(diff, "bin", "true"), follow_symlinks=False)
    assert (whiteout.st_rdev, whiteout.st_uid) == (0, 0)  # overlayfs's own whiteout, made as 0
    changes = cli("diff", "c", check=True).stdout.splitlines()
    assert {"A /by-root", "A /shared/by-app", "D /bin/true"} <= set(changes)


def test_commit_and_save_give_layers_owned_by_the_container_ids(cli, demo, layout, tmp_path):
    cli("run", "--name", "c", "--userns-remap", REMAP, demo, "sh", "-c",
        "echo x > /by-root && mkdir -m 777 /shared && su app -c 'echo y > /shared/by-app'",
        check=True)
    cli("commit", "c", "committed:1", check=True)
    archive = tmp_path / "saved.tar"
    cli("save", "-o", str(archive), "committed:1", check=True)
    owners = {}
    with tarfile.open(archive) as outer:
        for member in outer:
            if not member.isfile() or member.name.endswith(".json") or \
                    member.name == "repositories":
                continue
            data = outer.extractfile(member).read()
            try:
                inner = tarfile.open(fileobj=io.BytesIO(data))
            except tarfile.TarError:
                continue
            with inner:
                for m in inner:
                    if m.name in ("by-root", "shared/by-app"):
                        owners[m.name] = (m.uid, m.gid)
    assert owners == {"by-root": (0, 0), "shared/by-app": (1000, 1000)}
    out = cli("run", "--rm", "committed:1", "stat", "-c", "%u:%g", "/by-root", "/shared/by-app",
              check=True).stdout
    assert out.split() == ["0:0", "1000:1000"]


def test_image_layers_stay_owned_by_0_on_disk_and_shared(cli, demo, layout):
    cli("run", "--name", "c", "--userns-remap", REMAP, demo, "touch", "/x", check=True)
    lowers = _lower_dirs(layout, "c")
    owners = {os.stat(os.path.join(d, name), follow_symlinks=False).st_uid
              for d in lowers for name in os.listdir(d)}
    assert owners == {0}
    out = cli("run", "--rm", demo, "stat", "-c", "%u", "/bin/busybox", check=True).stdout
    assert out.strip() == "0"


def _lower_dirs(layout, name: str) -> list[str]:
    from overlaykit.store import overlay2
    return overlay2.lower_dirs(layout, _record(layout, name)["RWLayer"])


def test_a_host_directory_owned_by_root_is_not_writable_to_the_containers_root(cli, demo, tmp_path):
    host = tmp_path / "hostdir"
    host.mkdir(mode=0o755)
    (host / "file").write_text("host\n")
    proc = cli("run", "--rm", "--userns-remap", REMAP, "-v", f"{host}:/host", demo, "sh", "-c",
               "stat -c %u /host/file; cat /host/file; touch /host/new; echo > /host/file")
    assert proc.returncode != 0
    assert proc.stdout.split() == ["65534", "host"]  # nobody's inside, readable, not writable
    assert "Permission denied" in proc.stderr
    assert sorted(os.listdir(host)) == ["file"] and (host / "file").read_text() == "host\n"
    control = cli("run", "--rm", "-v", f"{host}:/host", demo, "touch", "/host/new")
    assert control.returncode == 0  # the same bind is writable to the host's root


@pytest.mark.parametrize("network", ["none", "bridge"])  # bridge rewrites /etc/hosts at start
def test_a_fresh_volume_and_the_etc_files_belong_to_the_containers_root(cli, demo, layout, network):
    cli("run", "--name", "c", "--network", network, "--userns-remap", REMAP, "-v", "vol:/vol",
        demo, "sh", "-c",
        "touch /vol/made && echo '127.0.0.2 extra' >> /etc/hosts", check=True)
    made = os.stat(os.path.join(layout.volume_data("vol"), "made"))
    assert (made.st_uid, made.st_gid) == (200000, 300000)  # a remapped volume holds host ids
    hosts = _record(layout, "c")["HostsPath"]
    assert (os.stat(hosts).st_uid, os.stat(hosts).st_gid) == (200000, 300000)
    with open(hosts) as f:
        assert "127.0.0.2 extra" in f.read()


def test_exec_joins_the_containers_user_namespace(cli, demo, layout):
    cli("run", "-d", "--name", "c", "--userns-remap", REMAP, demo, "sleep", "60", check=True)
    try:
        out = cli("exec", "c", "sh", "-c", "id -u; cat /proc/self/uid_map; touch /by-exec",
                  check=True).stdout
        assert [" ".join(line.split()) for line in out.splitlines()] == ["0", "0 200000 65536"]
        out = cli("exec", "-u", "app", "c", "id", "-u", check=True).stdout
        assert out.strip() == "1000"
        assert os.stat(os.path.join(_diff(layout, "c"), "by-exec")).st_uid == 0
    finally:
        cli("rm", "-f", "c")


def test_the_default_confinement_still_holds_inside(cli, demo):
    """Capabilities, seccomp, masks and the read-only /proc paths are as without a remap."""
    script = ("grep -E '^(CapBnd|Seccomp):' /proc/self/status;"
              " mount | grep -E ' /proc/(sys|keys) '; wc -c < /proc/keys")
    remapped = cli("run", "--rm", "--userns-remap", REMAP, demo, "sh", "-c", script, check=True)
    plain = cli("run", "--rm", demo, "sh", "-c", script, check=True)
    assert remapped.stdout == plain.stdout
    assert remapped.stdout.splitlines()[:3] == [
        "CapBnd:\t00000000a80425fb", "Seccomp:\t2",
        "proc on /proc/sys type proc (ro,nosuid,nodev,noexec,relatime)"]


def test_read_only_works_remapped(cli, demo):
    proc = cli("run", "--rm", "--read-only", "--userns-remap", REMAP, demo, "touch", "/x")
    assert proc.returncode == 1 and "Read-only file system" in proc.stderr


def test_the_tty_belongs_to_the_container_and_its_tty_group(layout, demo):
    with overlaykit_on_a_pty(layout.root, "run", "--rm", "-t", "--userns-remap", REMAP, demo, "sh",
                             "-c", "stat -c %u:%g $(tty)") as terminal:
        out = read_output(terminal.fd)
    assert out.decode().split() == ["0:5"]
    assert terminal.exit_code == 0


@pytest.mark.parametrize("value, message", [
    ("0:0:65536", "the range must not include the host's root (id 0)"),
    ("100000:100000:0", "the range must hold at least one id"),
    ("4294900000:100000:100000", "the range passes the last id, 4294967294"),
    ("a:b:c:d", "not one of default, USER[:GROUP] or UID:GID:SIZE"),
    ("no-such-user-here", "no range for no-such-user-here in /etc/subuid"),
])
def test_a_bad_range_is_one_line_and_makes_nothing(cli, demo, layout, value, message):
    proc = cli("create", "--userns-remap", value, demo, "true")
    assert proc.returncode == 125
    assert proc.stderr.startswith(f"overlaykit: create: --userns-remap {value}: {message}")
    assert len(proc.stderr.splitlines()) == 1
    assert not os.path.isdir(layout.containers) or os.listdir(layout.containers) == []


@pytest.mark.parametrize("option", [("--network", "host"), ("--privileged",)])
def test_what_a_user_namespace_cannot_own_is_refused_as_docker_does(cli, demo, option):
    proc = cli("create", "--userns-remap", REMAP, *option, demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == (f"overlaykit: create: --userns-remap {REMAP}: cannot be used with "
                           f"{' '.join(option)}\n")


def test_a_store_without_idmapped_mounts_is_one_line(cli, demo, layout, tmp_path):
    """ramfs has no idmapped mounts: the kernel refuses, and the run says so in one line."""
    rootfs_tar = tmp_path / "rootfs.tar"
    cli("create", "--name", "flat", demo, "true", check=True)
    cli("export", "-o", str(rootfs_tar), "flat", check=True)
    ram = tmp_path / "ram"
    ram.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(ram)], check=True)
    try:
        base = [sys.executable, "-m", "overlaykit", "--root", str(ram / "store")]
        subprocess.run([*base, "import", str(rootfs_tar), "flat:1"], check=True,
                       capture_output=True)
        proc = subprocess.run([*base, "run", "--rm", "--userns-remap", REMAP, "flat:1", "id"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 125
        assert proc.stderr.startswith("overlaykit: run: --userns-remap: the kernel refused the "
                                      "container's overlay on idmapped layers (idmap ")
        assert len(proc.stderr.splitlines()) == 1
        assert os.listdir(ram / "store" / "containers") == []  # --rm: nothing half-made stays
        assert [m for m in open("/proc/self/mountinfo") if str(ram) + "/" in m] == []
    finally:
        subprocess.run(["umount", "-l", str(ram)], check=False)


def test_subordinate_ranges_are_read_as_shadow_utils_writes_them():
    text = "# comment\nalice:100000:65536\nbob:165536:65536\n1001:231072:1000\n"
    assert first_range(text, ["bob", "1002"]) == (165536, 65536)
    assert first_range(text, ["carol", "1001"]) == (231072, 1000)
    assert first_range(text, ["carol"]) is None


def test_numeric_owners_of_new_filesystems_are_mapped():
    table = (Mount("fs", "/dev/pts", "devpts", "devpts", 0,
                   "newinstance,ptmxmode=0666,mode=0620,gid=5"),
             Mount("fs", "/t", "tmpfs", "tmpfs", 0, "size=1m,uid=1000"),
             Mount("bind", "/b", "/src"))
    mapped = remap_table(table, IdMap(200000, 300000, 65536))
    assert mapped[0].data == "newinstance,ptmxmode=0666,mode=0620,gid=300005"
    assert mapped[1].data == "size=1m,uid=201000"
    assert mapped[2] == table[2]
    assert remap_table(table, None) == table


def test_a_given_range_needs_no_subuid_file():
    assert parse("100000:200000:1000", "x") == IdMap(100000, 200000, 1000)


def test_cp_into_a_running_remapped_container_lands_with_container_ids(cli, demo, layout, tmp_path):
    """cp extracts in the container's user namespace (the host's root is unmapped in its
    idmapped root), reading the host's files outside it so -a keeps their owners."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("x\n")
    os.chown(tree / "sub" / "f", 1000, 1000)
    cli("run", "-d", "--name", "c", "--userns-remap", REMAP, demo, "sleep", "60", check=True)
    try:
        cli("cp", str(tree / "sub" / "f"), "c:/plain", check=True)
        cli("cp", "-a", str(tree), "c:/kept", check=True)
        out = cli("exec", "c", "stat", "-c", "%u:%g %n", "/plain", "/kept/sub/f", check=True).stdout
        assert out.splitlines() == ["0:0 /plain", "1000:1000 /kept/sub/f"]
        diff = _diff(layout, "c")
        assert os.stat(os.path.join(diff, "plain")).st_uid == 0
        assert os.stat(os.path.join(diff, "kept", "sub", "f")).st_uid == 1000
    finally:
        cli("rm", "-f", "c")
