"""`run` for real: demo:1 in its own namespaces on the overlay, as Docker would run it."""

import json
import os
import signal
import struct
import subprocess
import sys
import termios
import fcntl

from overlaykit.linux.mountinfo import mounts, mounts_under
from tests.pty_helpers import overlaykit_on_a_pty, read_output


def _inspect(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _mounted_under(path: str) -> list[str]:
    return [m.mount_point for m in mounts_under(path)]


def test_env_is_the_images_with_options_on_top(cli, demo, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\n\nFROM_FILE=1\nGREETING=from-file\n")
    out = cli("run", "--env-file", str(env_file), "-e", "GREETING=bye", "-e", "EXTRA=x y",
              demo, "env", check=True).stdout.splitlines()
    assert "GREETING=bye" in out
    assert "FROM_FILE=1" in out
    assert "EXTRA=x y" in out
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in out
    assert "HOME=/root" in out
    hostname = next(line for line in out if line.startswith("HOSTNAME=")).split("=", 1)[1]
    assert len(hostname) == 12


def test_tty_sets_term_and_image_without_path_gets_dockers_default(cli, demo):
    out = cli("run", "-e", "PATH", demo, "/bin/env", check=True,
              env={"PATH": os.environ["PATH"]}).stdout
    assert f"PATH={os.environ['PATH']}" in out.splitlines()  # a bare -e KEY takes the caller's value


def test_workdir_is_the_images_and_w_makes_a_missing_one(cli, demo):
    assert cli("run", demo, "pwd", check=True).stdout == "/opt/app\n"
    assert cli("run", "-w", "/new/dir", demo, "pwd", check=True).stdout == "/new/dir\n"


def test_user_name_resolves_through_the_images_passwd(cli, demo):
    out = cli("run", "-u", "app", demo, "sh", "-c", 'echo $(id -u) $(id -g) $HOME', check=True)
    assert out.stdout == "1000 1000 /home/app\n"
    out = cli("run", "-u", "1000:1000", demo, "sh", "-c", "echo $(id -u) $(id -g) $(id -G)", check=True)
    assert out.stdout == "1000 1000 1000\n"
    out = cli("run", "-u", "4242", demo, "sh", "-c", "echo $(id -u) $(id -g) $HOME", check=True)
    assert out.stdout == "4242 0 /\n"


def test_unknown_user_is_one_line_and_exit_125(cli, demo):
    proc = cli("run", "-u", "nosuch", demo, "id")
    assert proc.returncode == 125
    assert proc.stderr == "overlaykit: run: unable to find user nosuch: no matching entries in passwd file\n"
    proc = cli("run", "-u", "app:nogroup", demo, "id")
    assert proc.stderr == "overlaykit: run: unable to find group nogroup: no matching entries in group file\n"


def test_passwd_symlink_to_a_host_file_is_resolved_inside_the_container(cli, demo, tmp_path):
    host_passwd = tmp_path / "host-passwd"
    host_passwd.write_text("evil:x:4242:4242:evil:/evil:/bin/sh\n")
    cid = cli("create", "--name", "c", "-u", "evil", demo, "id", check=True).stdout.strip()
    upper = _inspect(cli, cid)["GraphDriver"]["Data"]["UpperDir"]
    os.makedirs(os.path.join(upper, "etc"))
    os.symlink(str(host_passwd), os.path.join(upper, "etc", "passwd"))
    proc = cli("start", "-a", "c")
    assert proc.returncode == 1
    assert proc.stderr == "overlaykit: start: unable to find user evil: no matching entries in passwd file\n"


def test_command_runs_as_pid_1(cli, demo):
    assert cli("run", demo, "sh", "-c", "echo $$", check=True).stdout == "1\n"


def test_hostname_is_the_short_id_or_the_option(cli, demo):
    out = cli("run", "--name", "h", demo, "sh", "-c", "hostname; cat /etc/hostname", check=True).stdout
    short = _inspect(cli, "h")["Id"][:12]
    assert out == f"{short}\n{short}\n"
    assert cli("run", "--hostname", "box", demo, "hostname", check=True).stdout == "box\n"


def test_h_sets_the_hostname_in_run_and_create_as_in_docker(cli, demo):
    assert cli("run", "-h", "short", demo, "hostname", check=True).stdout == "short\n"
    cli("create", "-h", "made", "--name", "c", demo, "hostname", check=True)
    assert cli("start", "-a", "c", check=True).stdout == "made\n"
    for command in ("run", "create"):
        proc = cli(command, "--help", check=True)
        assert "-h, --hostname TEXT" in proc.stdout and "--help" in proc.stdout


def test_entrypoint_option_drops_the_images_cmd(cli, demo):
    assert cli("run", "--entrypoint", "echo", demo, check=True).stdout == "\n"
    assert cli("run", "--entrypoint", "echo", demo, "a", "b", check=True).stdout == "a b\n"


def test_exit_code_is_the_commands(cli, demo):
    assert cli("run", demo, "sh", "-c", "exit 3").returncode == 3
    # PID 1 is immune to its own SIGKILL, as in Docker: the kernel drops it
    assert cli("run", demo, "sh", "-c", "kill -9 $$; echo alive").stdout == "alive\n"


def test_command_not_found_exits_127_with_dockers_line(cli, demo, layout):
    proc = cli("run", demo, "nosuch")
    assert proc.returncode == 127
    assert proc.stderr == 'overlaykit: run: exec: "nosuch": executable file not found in $PATH\n'
    assert _mounted_under(layout.root) == []
    (row,) = json.loads(cli("ps", "-a", "--json", check=True).stdout)
    assert (row["State"], row["ExitCode"]) == ("created", 127)  # as Docker leaves it


def test_non_executable_file_exits_126(cli, demo):
    proc = cli("run", demo, "/etc/motd")
    assert proc.returncode == 126
    assert proc.stderr == 'overlaykit: run: exec: "/etc/motd": permission denied\n'


def test_sigterm_to_overlaykit_reaches_the_command(layout, demo):
    script = 'trap "echo got TERM; exit 42" TERM; echo ready; while true; do sleep 0.1; done'
    proc = subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", layout.root, "run",
                             demo, "sh", "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 42
        assert proc.stdout.read() == "got TERM\n"
    finally:
        proc.kill()
        proc.wait()


def test_t_gives_a_pty_of_the_callers_size(layout, demo):
    with overlaykit_on_a_pty(layout.root, "run", "-t", demo, "sh", "-c", "tty; stty size; echo $TERM; exit 5",
                             size=(33, 111)) as terminal:
        out = read_output(terminal.fd)
    # the container's tty turns \n into \r\n, and the test's own pty does it again
    assert out.decode().replace("\r", "").splitlines() == ["/dev/pts/0", "33 111", "xterm"]
    assert terminal.exit_code == 5


def test_window_size_change_reaches_the_container(layout, demo):
    script = 'trap "stty size; exit 0" WINCH; echo ready; while true; do sleep 0.1; done'
    with overlaykit_on_a_pty(layout.root, "run", "-t", demo, "sh", "-c", script) as terminal:
        out = read_output(terminal.fd, until=b"ready")
        fcntl.ioctl(terminal.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 150, 0, 0))  # sends SIGWINCH
        out += read_output(terminal.fd)
    assert out.replace(b"\r", b"").splitlines()[-1] == b"50 150"


def test_it_passes_keyboard_input_to_the_container(layout, demo):
    with overlaykit_on_a_pty(layout.root, "run", "-it", demo, "sh", "-c", "read line; echo got:$line") as terminal:
        os.write(terminal.fd, b"hello\n")
        out = read_output(terminal.fd)
    assert b"got:hello" in out
    assert terminal.exit_code == 0


def test_without_i_stdin_is_empty(cli, demo):
    assert cli("run", demo, "cat", input="ignored", check=True).stdout == ""
    assert cli("run", "-i", demo, "cat", input="passed", check=True).stdout == "passed"


def test_read_only_root_refuses_writes_but_dev_shm_works(cli, demo):
    proc = cli("run", "--read-only", demo, "sh", "-c", "touch /x; echo $?; touch /dev/shm/y && echo shm")
    assert proc.stdout == "1\nshm\n"
    assert proc.stderr == "touch: /x: Read-only file system\n"


def test_network_none_has_only_lo_and_it_is_up(cli, demo):
    out = cli("run", "--network", "none", demo, "sh", "-c", "ls /sys/class/net; ip link show lo",
              check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "lo"
    assert ",UP," in lines[1] or ",UP>" in lines[1]


def test_network_host_is_the_callers_network_namespace(cli, demo):
    out = cli("run", "--network", "host", demo, "readlink", "/proc/self/ns/net", check=True).stdout
    assert out.strip() == os.readlink("/proc/self/ns/net")
    out = cli("run", demo, "readlink", "/proc/self/ns/net", check=True).stdout
    assert out.strip() != os.readlink("/proc/self/ns/net")


def test_dev_proc_and_sys_are_the_containers(cli, demo):
    out = cli("run", demo, "sh", "-c", "ls /dev; echo /proc/[0-9]*; "
              "grep -E ' /(proc|dev|dev/pts|dev/shm|sys) ' /proc/mounts", check=True).stdout
    lines = out.splitlines()
    assert lines[:17] == ["console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts",
                          "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero",
                          "/proc/1"]  # sh alone: the PID namespace is the container's
    mounted = {line.split()[1]: line.split() for line in lines[17:]}
    assert mounted["/proc"][2] == "proc"
    assert mounted["/dev"][2] == "tmpfs"
    assert mounted["/dev/pts"][2] == "devpts"
    assert mounted["/dev/shm"][2] == "tmpfs"
    assert mounted["/sys"][3].startswith("ro,")


def test_overlay_is_mounted_with_short_links_while_running_and_gone_after(cli, demo, layout):
    cid = cli("run", "-d", demo, "sleep", "60", check=True).stdout.strip()
    merged = _inspect(cli, cid)["GraphDriver"]["Data"]["MergedDir"]
    (entry,) = [m for m in mounts() if m.mount_point == merged]
    assert entry.fstype == "overlay"
    lowers = dict(o.partition("=")[::2] for o in entry.super_options.split(","))["lowerdir"].split(":")
    assert len(lowers) == 4  # the init layer and demo:1's three
    assert all(os.path.dirname(p) == layout.links for p in lowers)
    cli("kill", cid, check=True)
    cli("stop", cid, check=True)  # returns once the exit is recorded and the overlay gone
    assert not any(m.mount_point == merged for m in mounts())
    assert _mounted_under(layout.root) == []


def test_file_made_in_the_container_appears_in_its_diff(cli, demo):
    cli("run", "--name", "t", demo, "touch", "/newfile", check=True)
    upper = _inspect(cli, "t")["GraphDriver"]["Data"]["UpperDir"]
    assert os.path.isfile(os.path.join(upper, "newfile"))


def test_archive_path_is_loaded_once_then_run(cli, fixture_path, layout):
    archive = fixture_path("demo-docker.tar")
    assert cli("run", "--rm", archive, "cat", "/etc/motd", check=True).stdout == "welcome to the demo image\n"
    layers = sorted(os.listdir(layout.overlay2))
    assert cli("run", "--rm", archive, "true", check=True).returncode == 0
    assert sorted(os.listdir(layout.overlay2)) == layers  # nothing unpacked again, nothing left


def test_rm_flag_removes_the_layers_and_the_record(cli, demo, layout):
    before = sorted(os.listdir(layout.overlay2))
    cli("run", "--rm", demo, "touch", "/x", check=True)
    assert sorted(os.listdir(layout.overlay2)) == before
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout) == []


def test_unknown_image_is_one_line_and_makes_nothing(cli, layout):
    proc = cli("run", "nosuch:1", "true")  # not stored, so pulled, as Docker does; the session has no network
    assert proc.returncode == 125
    first, *_, last = proc.stderr.splitlines()
    assert first == "Unable to find image 'nosuch:1' locally"
    assert last.startswith("overlaykit: run: pull: nosuch:1: registry-1.docker.io: cannot connect: ")
    assert not os.path.exists(layout.containers) or os.listdir(layout.containers) == []


def test_bad_option_is_refused(cli, demo):
    proc = cli("run", "--nope", demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == "overlaykit: run: No such option '--nope'. Did you mean '--name'?\n"
    proc = cli("run", "--network", "nosuch", demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == "overlaykit: run: network nosuch not found\n"


def test_name_in_use_is_refused(cli, demo, layout):
    cid = cli("create", "--name", "web", demo, "true", check=True).stdout.strip()
    layers = sorted(os.listdir(layout.overlay2))
    proc = cli("run", "--name", "web", demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == (f'overlaykit: run: the container name "web" is already in use by '
                           f"container {cid[:12]}: remove it or pick another name\n")
    assert sorted(os.listdir(layout.overlay2)) == layers


def test_refused_overlay_mount_leaves_nothing_mounted(cli, demo, layout):
    cli("create", "--name", "broken", demo, "true", check=True)
    data = _inspect(cli, "broken")["GraphDriver"]["Data"]
    image_top = data["LowerDir"].split(":")[1]
    os.rename(image_top, image_top + ".away")  # the kernel cannot find that lower layer
    proc = cli("start", "-a", "broken")
    assert proc.returncode == 1
    assert proc.stderr == f"overlaykit: start: mount overlay on {data['MergedDir']}: No such file or directory\n"
    assert _mounted_under(layout.root) == []


def test_root_in_the_container_has_dockers_default_capabilities(cli, demo):
    out = cli("run", demo, "sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status; "
              "mount -t tmpfs x /opt 2>&1", check=False).stdout.splitlines()
    assert out[:2] == ["CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb"]
    assert out[2] == "mount: permission denied (are you root?)"  # no CAP_SYS_ADMIN
