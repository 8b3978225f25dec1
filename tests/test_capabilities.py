"""--cap-add, --cap-drop and --privileged, read from the container's own /proc/self/status."""

import json
import time

import pytest

DOCKER_DEFAULT = 0xA80425FB  # CHOWN ... SETFCAP: moby's oci/caps/defaults.go
CAP_CHOWN, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN = 0, 12, 13, 21


def caps(cli, *args: str) -> dict[str, int]:
    proc = cli(*args, "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    return {k: int(v, 16) for k, v in (line.split(":\t", 1) for line in proc.stdout.splitlines())
            if k.startswith("Cap")}


def own_bounding_set() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))


def test_default_is_dockers_set(cli, demo):
    found = caps(cli, "run", "--rm", demo)
    assert found["CapBnd"] == DOCKER_DEFAULT
    assert found["CapEff"] == DOCKER_DEFAULT


def test_cap_drop_all_leaves_nothing(cli, demo):
    found = caps(cli, "run", "--rm", "--cap-drop", "ALL", demo)
    assert found["CapBnd"] == found["CapEff"] == found["CapPrm"] == 0


def test_cap_add_sys_admin_adds_it(cli, demo):
    found = caps(cli, "run", "--rm", "--cap-add", "SYS_ADMIN", demo)
    assert found["CapBnd"] == DOCKER_DEFAULT | 1 << CAP_SYS_ADMIN


def test_names_with_or_without_cap_in_any_case(cli, demo):
    found = caps(cli, "run", "--rm", "--cap-add", "cap_net_admin", "--cap-drop", "Chown", demo)
    assert found["CapBnd"] == (DOCKER_DEFAULT | 1 << CAP_NET_ADMIN) & ~(1 << CAP_CHOWN)


def test_drop_all_then_add_one(cli, demo):
    found = caps(cli, "run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_RAW", demo)
    assert found["CapBnd"] == 1 << CAP_NET_RAW


def test_add_all_but_one(cli, demo):
    found = caps(cli, "run", "--rm", "--cap-add", "ALL", "--cap-drop", "NET_RAW", demo)
    assert found["CapBnd"] == own_bounding_set() & ~(1 << CAP_NET_RAW)


def test_privileged_gets_every_capability(cli, demo):
    found = caps(cli, "run", "--rm", "--privileged", "--cap-drop", "CHOWN", demo)
    assert found["CapBnd"] == own_bounding_set()  # Docker: --privileged ignores --cap-drop


def test_a_user_gets_the_bounding_set_but_no_effective_capabilities(cli, demo):
    found = caps(cli, "run", "--rm", "-u", "1000", "--cap-add", "SYS_ADMIN", demo)
    assert found["CapBnd"] == DOCKER_DEFAULT | 1 << CAP_SYS_ADMIN
    assert found["CapEff"] == 0


def test_exec_gets_the_containers_capabilities(cli, demo):
    cli("run", "-d", "--name", "c", "--cap-drop", "ALL", "--cap-add", "CHOWN", demo,
        "sleep", "100", check=True)
    for _ in range(100):
        if cli("exec", "c", "true").returncode == 0:
            break
        time.sleep(0.1)
    assert caps(cli, "exec", "c")["CapBnd"] == 1 << CAP_CHOWN
    cli("rm", "-f", "c", check=True)


def test_inspect_shows_them_as_docker_records_them(cli, demo):
    cli("create", "--name", "c", "--cap-add", "sys_admin", "--cap-add", "CAP_NET_ADMIN",
        "--cap-drop", "chown", "--cap-drop", "SYS_ADMIN", "--security-opt", "no-new-privileges",
        demo, "true", check=True)
    host = json.loads(cli("inspect", "c", check=True).stdout)[0]["HostConfig"]
    assert (host["Privileged"], host["CapAdd"], host["CapDrop"], host["SecurityOpt"]) == (
        False, ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"], ["CAP_CHOWN"], ["no-new-privileges"])
    cli("create", "--name", "d", demo, "true", check=True)
    host = json.loads(cli("inspect", "d", check=True).stdout)[0]["HostConfig"]
    assert (host["Privileged"], host["CapAdd"], host["CapDrop"], host["SecurityOpt"]) == (
        False, None, None, None)


@pytest.mark.parametrize("option, name, message", [
    ("--cap-add", "FOO", 'unknown capability: "CAP_FOO"'),
    ("--cap-drop", "cap_sys_nothing", 'unknown capability: "CAP_SYS_NOTHING"'),
])
def test_unknown_capability_is_one_line_and_makes_nothing(cli, demo, option, name, message):
    proc = cli("run", option, name, demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == f"overlaykit: run: {option}: {message}\n"
    assert json.loads(cli("ps", "-a", "--json").stdout) == []
