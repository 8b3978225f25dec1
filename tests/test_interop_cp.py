"""cp, top, stats, pause and the run flags side by side with a real Docker (make test-interop):
the same commands on the same image must leave the same files and print the same shapes."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from tests.test_interop import docker  # noqa: F401  (the fixture)

pytestmark = pytest.mark.interop

LOOP = "echo started; while true; do sleep 0.1; done"


def _tree(root: str) -> dict:
    """Every entry under root: type, mode bits, link target or content."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                found[rel] = ("file", stat.S_IMODE(st.st_mode), open(path, "rb").read())
    return found


def _started(logs) -> None:
    deadline = time.monotonic() + 30
    while "started" not in logs():
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.fixture
def both(docker, cli, demo, fixture_path, tmp_path):  # noqa: F811
    """A running container `web` of demo:1 in Docker and in overlaykit, and a host tree to copy."""
    docker("load", "-i", fixture_path("demo-docker.tar"))
    docker("run", "-d", "--network", "none", "--name", "web", "demo:1", "sh", "-c", LOOP)
    cli("run", "-d", "--network", "none", "--name", "web", demo, "sh", "-c", LOOP, check=True)
    _started(lambda: docker("logs", "web").stdout)
    _started(lambda: cli("logs", "web", check=True).stdout)
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d" / "sub" / "a").write_text("a\n")
    os.chmod(src / "d" / "sub" / "a", 0o640)
    os.symlink("/etc/passwd", src / "d" / "link")
    (src / "f.txt").write_text("hello\n")
    return src


CP_STEPS = [  # (args with {src} and {out}), as a user types them one after another
    ("{src}/d", "web:/opt/"),
    ("{src}/d/.", "web:/opt/flat"),
    ("{src}/d/.", "web:/opt/"),
    ("{src}/d", "web:/opt/copy"),
    ("{src}/f.txt", "web:/opt/renamed.txt"),
    ("{src}/f.txt", "web:/nowhere/"),
    ("{src}/d", "web:/etc/hostname"),
    ("web:/etc/hostname/", "{out}/x"),
    ("web:/no/such", "{out}/x"),
    ("web:/opt", "{out}/opt"),
    ("web:/opt/d/.", "{out}/flat"),
    ("web:/etc/passwd", "{out}/"),
    ("web:/opt/d/link", "{out}/link"),
    ("-L", "web:/opt/d/link", "{out}/followed"),
]


def test_cp_leaves_the_same_files_and_fails_the_same_way_as_docker(docker, cli, both, tmp_path):  # noqa: F811
    outs = {"docker": tmp_path / "docker-out", "overlaykit": tmp_path / "overlaykit-out"}
    for out in outs.values():
        out.mkdir()
    codes = {"docker": [], "overlaykit": []}
    for step in CP_STEPS:
        for who, out in outs.items():
            args = [a.format(src=both, out=out) for a in step]
            result = (docker("cp", *args, check=False) if who == "docker" else cli("cp", *args))
            codes[who].append(0 if result.returncode == 0 else 1)
    assert codes["overlaykit"] == codes["docker"] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    copied = _tree(str(outs["docker"]))
    assert {"opt/d/sub/a", "flat/link", "passwd", "link", "followed"} <= set(copied)
    assert _tree(str(outs["overlaykit"])) == copied
    listing = "cd /opt && find . | sort && stat -c '%n %a %u' $(find . -type f | sort)"
    assert cli("exec", "web", "sh", "-c", listing, check=True).stdout == \
        docker("exec", "web", "sh", "-c", listing).stdout


def _docker_command(docker) -> list[str]:  # noqa: F811
    """The docker client and its -H, as the fixture runs it."""
    return docker("version").args[:3]


def test_cp_to_stdout_writes_the_same_tar_names_as_docker(docker, layout, both):  # noqa: F811
    for path in ("web:/etc/hostname", "web:/opt/app", "web:/opt/app/."):
        theirs = subprocess.run(_docker_command(docker) + ["cp", path, "-"], capture_output=True)
        ours = subprocess.run([sys.executable, "-m", "overlaykit", "--root", layout.root, "cp",
                               path, "-"], capture_output=True)
        names = [subprocess.run(["tar", "-t"], input=out.stdout, capture_output=True,
                                check=True).stdout.decode().split() for out in (ours, theirs)]
        assert sorted(names[0]) == sorted(names[1]), path


def test_top_and_stats_print_dockers_columns(docker, cli, both):  # noqa: F811
    theirs = docker("top", "web").stdout.splitlines()[0].split()
    ours = cli("top", "web", check=True).stdout.splitlines()[0].split()
    assert ours == theirs
    header = lambda out: [c for c in out.splitlines()[0].split("  ") if c.strip()]
    assert [c.strip() for c in header(cli("stats", "--no-stream", check=True).stdout)] == \
        [c.strip() for c in header(docker("stats", "--no-stream").stdout)]


def test_pause_shows_as_in_docker(docker, cli, both):  # noqa: F811
    docker("pause", "web")
    cli("pause", "web", check=True)
    theirs = json.loads(docker("inspect", "web").stdout)[0]["State"]
    ours = json.loads(cli("inspect", "web", check=True).stdout)[0]["State"]
    assert (ours["Status"], ours["Paused"], ours["Running"]) == \
        (theirs["Status"], theirs["Paused"], theirs["Running"])
    assert docker("ps", "--format", "{{.Status}}").stdout.strip().endswith("(Paused)")
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout)[0]["Status"].endswith("(Paused)")
    docker("unpause", "web")
    cli("unpause", "web", check=True)


def test_run_flags_give_what_docker_gives(docker, cli, demo, fixture_path):
    docker("load", "-i", fixture_path("demo-docker.tar"))
    flags = ["--network", "none", "--init", "--ulimit", "nofile=1024:2048", "--shm-size", "8m",
             "--add-host", "db:10.1.2.3", "-l", "team=storage", "-e", "FROM_HOST"]
    script = ("cat /proc/1/cmdline | tr '\\0' ' '; echo; ulimit -Sn; ulimit -Hn; "
              "df -k /dev/shm | tail -1 | awk '{print $2}'; tail -1 /etc/hosts; echo $FROM_HOST")
    env = {**os.environ, "FROM_HOST": "from the caller"}
    theirs = subprocess.run(_docker_command(docker) + ["run", "--rm", *flags, "demo:1", "sh", "-c",
                                                       script], capture_output=True, text=True,
                            env=env).stdout
    ours = cli("run", "--rm", *flags, demo, "sh", "-c", script, env=env, check=True).stdout
    assert ours == theirs
    docker("create", "--name", "lab", "-l", "team=storage", "--ulimit", "nproc=64", "--init",
           "demo:1", "true")
    cli("create", "--name", "lab", "-l", "team=storage", "--ulimit", "nproc=64", "--init", demo,
        "true", check=True)
    t = json.loads(docker("inspect", "lab").stdout)[0]
    o = json.loads(cli("inspect", "lab", check=True).stdout)[0]
    for path in (("Config", "Labels"), ("HostConfig", "Ulimits"), ("HostConfig", "Init"), ("Path",)):
        a, b = t, o
        for key in path:
            a, b = a[key], b[key]
        assert b == a, path
