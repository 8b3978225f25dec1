"""exec into a running container: its namespaces, its root, its user and environment."""

import json
import os

from tests.pty_helpers import overlaykit_on_a_pty, read_output


def _running(cli, demo, name: str = "box") -> str:
    return cli("run", "-d", "--name", name, "--hostname", "boxhost", demo, "sleep", "60",
               check=True).stdout.strip()


def test_exec_joins_the_containers_namespaces_and_root(cli, demo):
    _running(cli, demo)
    out = cli("exec", "box", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
              "ls /sys/class/net; cat /etc/motd; pwd", check=True).stdout
    # eth0: the default bridge's veth, in the container's network namespace as exec sees it
    assert out.splitlines() == ["boxhost", "sleep 60 ", "eth0", "lo", "welcome to the demo image",
                                "/opt/app"]


def test_exec_sees_and_makes_files_in_the_containers_diff(cli, demo):
    cid = _running(cli, demo)
    cli("exec", "box", "touch", "/made-by-exec", check=True)
    (data,) = json.loads(cli("inspect", cid, check=True).stdout)
    assert os.path.isfile(os.path.join(data["GraphDriver"]["Data"]["UpperDir"], "made-by-exec"))


def test_exec_user_env_and_workdir(cli, demo):
    _running(cli, demo)
    out = cli("exec", "-u", "app", "-e", "X=1", "-w", "/home/app", "box", "sh", "-c",
              "echo $(id -u) $(id -g) $HOME $X $GREETING $(pwd)", check=True).stdout
    assert out == "1000 1000 /home/app 1 hello /home/app\n"


def test_exec_exit_codes(cli, demo):
    _running(cli, demo)
    assert cli("exec", "box", "sh", "-c", "exit 9").returncode == 9
    proc = cli("exec", "box", "nosuch")
    assert proc.returncode == 127
    assert proc.stderr == 'overlaykit: exec: exec: "nosuch": executable file not found in $PATH\n'
    proc = cli("exec", "-w", "/nowhere", "box", "true")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: exec: chdir to /nowhere: No such file or directory\n")


def test_exec_t_gives_a_pty_in_the_containers_devpts(layout, cli, demo):
    _running(cli, demo)
    with overlaykit_on_a_pty(layout.root, "exec", "-t", "box", "tty") as terminal:
        out = read_output(terminal.fd)
    assert out.replace(b"\r", b"") == b"/dev/pts/0\n"
    assert terminal.exit_code == 0


def test_exec_into_a_stopped_container_is_refused(cli, demo):
    cli("create", "--name", "idle", demo, "true", check=True)
    proc = cli("exec", "idle", "true")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: exec: container idle is not running\n")


def test_exec_gets_the_same_capabilities_as_the_container(cli, demo):
    _running(cli, demo)
    out = cli("exec", "box", "grep", "^CapBnd", "/proc/self/status", check=True).stdout
    assert out == "CapBnd:\t00000000a80425fb\n"
