"""What a container process inherits from overlaykit: no caller fds, no stdin without -i, no session
keyring, no host binary behind /proc/<pid>/exe, and no life after its supervisor."""

import errno
import fcntl
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from overlaykit.linux.prctl import is_dumpable
from overlaykit.linux.trampoline import ALONE_MESSAGE, sealed_trampoline
from overlaykit.runtime.process import StartError, spawn

PROBE_FDS = ('ls /proc/$$/fd; '  # the shell's own fds, listed by a child while the shell waits
             '{ echo escaped > /proc/self/fd/3/escaped; } 2>/dev/null && echo wrote || echo refused')


def overlaykit(root: str, *args: str, fd3: str | None = None, input: bytes | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """The real overlaykit, with fd 3 open (inheritable) on the host directory fd3 if given."""
    fd = os.open(fd3, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if fd3 is not None else None
    try:
        return subprocess.run([sys.executable, "-m", "overlaykit", "--root", root, *args],
                              close_fds=False, preexec_fn=None if fd is None else lambda: os.dup2(fd, 3),
                              input=input, capture_output=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
    finally:
        if fd is not None:
            os.close(fd)


@pytest.fixture
def host_dir(tmp_path):
    path = tmp_path / "host-dir"
    path.mkdir()
    return path


def _assert_fd3_did_not_reach(out: bytes, host_dir) -> None:
    assert out == b"0\n1\n2\nrefused\n"
    assert os.listdir(host_dir) == []


# --- fds and stdin ---

def test_run_gets_no_fd_the_caller_left_open(layout, demo, host_dir):
    proc = overlaykit(layout.root, "run", "--rm", demo, "sh", "-c", PROBE_FDS, fd3=str(host_dir))
    assert proc.returncode == 0, proc.stderr
    _assert_fd3_did_not_reach(proc.stdout, host_dir)


def test_detached_run_gets_no_fd_the_caller_left_open(layout, cli, demo, host_dir):
    proc = overlaykit(layout.root, "run", "-d", "--name", "bg", demo, "sh", "-c", PROBE_FDS,
                      fd3=str(host_dir))
    assert proc.returncode == 0, proc.stderr
    _wait_exited(cli, "bg")
    _assert_fd3_did_not_reach(cli("logs", "bg", check=True).stdout.encode(), host_dir)


def test_start_gets_no_fd_the_caller_left_open(layout, cli, demo, host_dir):
    cli("create", "--name", "later", demo, "sh", "-c", PROBE_FDS, check=True)
    proc = overlaykit(layout.root, "start", "-a", "later", fd3=str(host_dir))
    assert proc.returncode == 0, proc.stderr
    _assert_fd3_did_not_reach(proc.stdout, host_dir)


def test_exec_gets_no_fd_the_caller_left_open(layout, cli, demo, host_dir):
    cli("run", "-d", "--name", "box", demo, "sleep", "60", check=True)
    proc = overlaykit(layout.root, "exec", "box", "sh", "-c", PROBE_FDS, fd3=str(host_dir))
    assert proc.returncode == 0, proc.stderr
    _assert_fd3_did_not_reach(proc.stdout, host_dir)


def _wait_exited(cli, name: str) -> None:
    """Until the container has exited (at most 20 s)."""
    for _ in range(200):
        (data,) = json.loads(cli("inspect", name, check=True).stdout)
        if not data["State"]["Running"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} still runs")


def test_run_without_i_reads_end_of_file_from_a_piped_stdin(layout, demo):
    read = ["sh", "-c", "cat; echo end"]
    assert overlaykit(layout.root, "run", "--rm", demo, *read, input=b"data\n").stdout == b"end\n"
    assert overlaykit(layout.root, "run", "--rm", "-i", demo, *read,
                      input=b"data\n").stdout == b"data\nend\n"


def test_exec_without_i_reads_end_of_file_from_a_piped_stdin(layout, cli, demo):
    cli("run", "-d", "--name", "box", demo, "sleep", "60", check=True)
    read = ["sh", "-c", "cat; echo end"]
    assert overlaykit(layout.root, "exec", "box", *read, input=b"data\n").stdout == b"end\n"
    assert overlaykit(layout.root, "exec", "-i", "box", *read,
                      input=b"data\n").stdout == b"data\nend\n"


def test_marking_fds_from_the_proc_listing_covers_every_fd():
    """The fallback for kernels before close_range's CLOSE_RANGE_CLOEXEC (5.11), in a child."""
    script = ("import fcntl, os\n"
              "from overlaykit.linux.fds import _cloexec_listed\n"
              "fds = [os.open('/', os.O_RDONLY) for _ in range(3)]\n"
              "for fd in [2, *fds]:\n"
              "    os.set_inheritable(fd, True)\n"
              "assert all(fcntl.fcntl(fd, fcntl.F_GETFD) == 0 for fd in fds)\n"
              "_cloexec_listed(3)\n"
              "print([fcntl.fcntl(fd, fcntl.F_GETFD) for fd in [0, 1, 2, *fds]])\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "[0, 0, 0, 1, 1, 1]\n"


# --- the session keyring ---

# Run in a host process of the test's own: join a fresh session keyring, add a key only its
# possessors may view (perm 0x3f000000: possessor all, user/group/other nothing), show the
# key as this process sees /proc/keys, then exec the overlaykit command given.
_KEYCTL = {"x86_64": (250, 248), "aarch64": (219, 217)}[platform.machine()]  # keyctl, add_key
_WITH_SECRET_KEY = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(*args):
    ret = libc.syscall(*args)
    if ret < 0:
        raise OSError(ctypes.get_errno(), "keyctl")
    return ret
keyctl, add_key = {_KEYCTL}
call(ctypes.c_long(keyctl), ctypes.c_long(1), ctypes.c_char_p(b"okit-test-ring"))
key = call(ctypes.c_long(add_key), b"user", b"okit-test-secret", b"s3cret", ctypes.c_size_t(6),
           ctypes.c_long(-3))
call(ctypes.c_long(keyctl), ctypes.c_long(5), ctypes.c_long(key), ctypes.c_ulong(0x3f000000))
print("".join(line for line in open("/proc/keys") if "okit-test-secret" in line), end="", flush=True)
os.execv(sys.executable, [sys.executable, "-m", "overlaykit", *sys.argv[1:]])
"""
_SHOW_KEYS = "grep -e okit-test-secret -e _ses.$(hostname) /hostproc/keys | awk '{print $9, $10}'"


def _with_secret_key(root: str, *args: str) -> list[str]:
    """The output of the overlaykit command run by a process whose session keyring holds the secret."""
    proc = subprocess.run([sys.executable, "-c", _WITH_SECRET_KEY, "--root", root, *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_the_container_does_not_hold_the_callers_session_keyring(layout, demo):
    """/proc/keys lists a key to the processes that may view it: this one only to its possessors
    (no capability overrides that). The caller sees it; the container, which reads the host's
    procfs bound at /hostproc (its own /proc/keys is masked), sees only its own session
    keyring. Without a keyring of its own it would possess the caller's and see the key."""
    first, *container = _with_secret_key(layout.root, "run", "--rm", "-v", "/proc:/hostproc",
                                         demo, "sh", "-c", _SHOW_KEYS)
    assert first.endswith(" okit-test-secret: 6")  # the caller possesses it
    assert len(container) == 1 and re.fullmatch(r"_ses\.[0-9a-f]{64}: empty", container[0])


def test_exec_does_not_hold_the_callers_session_keyring(layout, cli, demo):
    cid = cli("run", "-d", "--name", "box", "-v", "/proc:/hostproc", demo, "sleep", "60",
              check=True).stdout.strip()
    first, *container = _with_secret_key(layout.root, "exec", "box", "sh", "-c", _SHOW_KEYS)
    assert first.endswith(" okit-test-secret: 6")
    assert container == [f"_ses.{cid}: empty"]  # the container's, joined by name as runc does


# --- /proc/self/exe ---

def test_pid1_exe_is_the_command(layout, cli, demo):
    out = cli("run", "--rm", demo, "sh", "-c", "readlink /proc/1/exe; readlink /proc/self/exe",
              check=True).stdout
    assert out == "/bin/busybox\n/bin/busybox\n"


@pytest.mark.parametrize("args", [("--entrypoint", "/proc/self/exe"), ("/proc/self/exe",),
                                  ("/proc/self/exe", "/proc/self/exe", "x")])
def test_proc_self_exe_as_the_command_runs_the_trampoline_not_python(layout, cli, demo, args):
    """The command's /proc/self/exe, as it is exec'd, is the sealed trampoline; run again it
    finds no report channel and stops at once (no loop), naming itself."""
    if args[0] == "--entrypoint":
        proc = cli("run", "--rm", *args, demo, timeout=30)
    else:
        proc = cli("run", "--rm", demo, *args, timeout=30)
    assert (proc.returncode, proc.stderr) == (126, ALONE_MESSAGE.decode())


@pytest.mark.parametrize("shebang", ["#!/proc/self/exe", "#!/proc/self/exe /scripts/run"])
def test_a_proc_self_exe_script_runs_the_trampoline_not_python(layout, cli, demo, tmp_path,
                                                               shebang):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "run").write_text(f"{shebang}\necho python ran\n")
    (scripts / "run").chmod(0o755)
    proc = cli("run", "--rm", "-v", f"{scripts}:/scripts:ro", demo, "/scripts/run", "a", timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (126, "", ALONE_MESSAGE.decode())


def test_a_failed_exec_is_still_reported_by_overlaykit(layout, cli, demo, tmp_path):
    """The trampoline's execve fails after the Python side let go: its errno comes back."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "orphan").write_text("#!/no/such/shell\n")
    (scripts / "orphan").chmod(0o755)
    (scripts / "garbage").write_bytes(b"\x01\x02\x03 not a program\n")
    (scripts / "garbage").chmod(0o755)
    bind = ("-v", f"{scripts}:/scripts:ro")
    proc = cli("run", "--rm", *bind, demo, "/scripts/orphan")
    assert (proc.returncode, proc.stderr) == (
        127, 'overlaykit: run: exec: "/scripts/orphan": no such file or directory\n')
    cli("run", "-d", "--name", "box", *bind, demo, "sleep", "60", check=True)
    proc = cli("exec", "box", "/scripts/garbage")
    assert (proc.returncode, proc.stderr) == (
        126, 'overlaykit: exec: exec: "/scripts/garbage": exec format error\n')
    proc = cli("exec", "box", "/etc/motd")
    assert (proc.returncode, proc.stderr) == (
        126, 'overlaykit: exec: exec: "/etc/motd": permission denied\n')


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _in_container(pid: int) -> bool:
    """In a nested PID namespace: NSpid has a pid per level."""
    with open(f"/proc/{pid}/status") as f:
        return len(next(line for line in f if line.startswith("NSpid:")).split()) > 2


def _ns_pid(pid: int) -> int:
    """The pid in its innermost PID namespace (the last NSpid field)."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("NSpid:")).split()[-1])


def _catch_exec_child_before_it_execs(root: str) -> tuple[subprocess.Popen, int]:
    """Start `exec box true` and SIGSTOP its child while it still runs the host's Python."""
    python = os.path.realpath(sys.executable)
    for _ in range(30):
        parent = subprocess.Popen([sys.executable, "-m", "overlaykit", "--root", root, "exec",
                                   "box", "true"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while parent.poll() is None and time.monotonic() < deadline:
            for child in _children(parent.pid):
                try:
                    os.kill(child, signal.SIGSTOP)
                    if os.path.realpath(_exe(child)) == python and _in_container(child):
                        return parent, child
                    os.kill(child, signal.SIGCONT)  # too late (the command runs) or not exec's child
                except (ProcessLookupError, FileNotFoundError, StopIteration):
                    pass  # gone meanwhile
        parent.wait(timeout=10)
    raise AssertionError("never caught exec's child before its exec")


def test_exec_child_exe_cannot_be_opened_from_the_container(layout, cli, demo):
    """While exec's child sets up inside the container it runs the host's Python; it is
    undumpable from its fork, so container root (no CAP_SYS_PTRACE) cannot open its
    /proc/<pid>/exe. Caught stopped in that window (found from the host, SIGSTOP)."""
    cli("run", "-d", "--name", "box", demo, "sleep", "60", check=True)
    parent, child = _catch_exec_child_before_it_execs(layout.root)
    try:
        pid = _ns_pid(child)
        probe = (f"cat /proc/{pid}/cmdline | tr '\\0' ' '; echo; readlink /proc/{pid}/exe; "
                 f"echo readlink=$?; cat /proc/{pid}/exe > /dev/null; echo open=$?")
        out = cli("exec", "box", "sh", "-c", probe, check=True).stdout.splitlines()
        assert "overlaykit" in out[0] and "exec" in out[0]  # exec's child, still Python
        assert out[1:] == ["readlink=1", "open=1"]
    finally:
        os.kill(child, signal.SIGKILL)  # stopped or not
        parent.wait(timeout=30)


def test_spawns_child_is_born_undumpable_and_the_parent_stays_as_it_was():
    """prctl(PR_SET_DUMPABLE, 0) before the fork, so no moment of the child is dumpable."""
    def body(channel):
        raise StartError(f"dumpable={is_dumpable()}", 3)

    assert is_dumpable()
    with pytest.raises(StartError) as raised:
        spawn(body, "test", "0" * 64)
    assert (str(raised.value), raised.value.exit_code) == ("dumpable=False", 3)
    assert is_dumpable()


def test_the_sealed_trampoline_refuses_every_write():
    """A copy made for the test (never a host binary): writes, a truncate and a reopen for
    writing through /proc all fail with EPERM."""
    fd = sealed_trampoline()
    try:
        size = os.fstat(fd).st_size
        for attempt in (lambda: os.write(fd, b"x"), lambda: os.pwrite(fd, b"x", 0),
                        lambda: os.ftruncate(fd, 0), lambda: os.ftruncate(fd, size + 1)):
            with pytest.raises(PermissionError):
                attempt()
        reopened = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):
                os.write(reopened, b"x")
        finally:
            os.close(reopened)
        with pytest.raises(PermissionError):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, 0)  # F_SEAL_SEAL: no seal comes off or on
        assert os.fstat(fd).st_size == size
    finally:
        os.close(fd)


def _run_trampoline(argv: list[str], report: bool = True) -> tuple[int, bytes, list[bytes]]:
    """Exec the sealed trampoline with exec_program."""
    sealed = sealed_trampoline()
    trampoline = fcntl.fcntl(sealed, fcntl.F_DUPFD_CLOEXEC, 10)  # clear of fd 3
    os.close(sealed)
    try:
        return exec_program(trampoline, argv, report)
    finally:
        os.close(trampoline)


def exec_program(fd: int, argv: list[str], report: bool) -> tuple[int, bytes, list[bytes]]:
    """fexecve the program at fd (above 3) as exec_command does (fd 3 the report channel), or
    with fd 3 closed: its exit code, its output, and what it sent on the channel."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            if report:
                os.dup2(theirs.fileno(), 3)
            else:
                os.closerange(3, 4)
            os.execve(fd, argv, {"SEEN": "yes"})
        finally:
            os._exit(99)
    theirs.close()
    os.close(write_end)
    messages = []
    while message := ours.recv(64):
        messages.append(message)
    ours.close()
    with os.fdopen(read_end, "rb") as f:
        output = f.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), output, messages


def test_the_trampoline_execs_its_first_argument_with_the_rest():
    code, out, messages = _run_trampoline(["/bin/sh", "sh", "-c", "echo $0 $1 $SEEN; ls /proc/$$/fd",
                                           "zero", "one"])
    assert (code, messages) == (0, [])  # end of file on the channel: the exec succeeded
    assert out.splitlines()[0] == b"zero one yes"
    assert b"3" not in out.splitlines()[1:]  # the report channel closed on that exec


def test_the_trampoline_reports_a_failed_exec_on_fd3(tmp_path):
    (tmp_path / "text").write_text("no x bit\n")
    assert _run_trampoline(["/no/such/program", "x"]) == (126, b"", [b"X" + bytes([errno.ENOENT])])
    assert _run_trampoline([str(tmp_path / "text"), "x"]) == (126, b"", [b"X" + bytes([errno.EACCES])])


def test_the_trampoline_without_its_report_channel_stops():
    assert _run_trampoline(["/bin/true", "true"], report=False) == (126, ALONE_MESSAGE, [])


# --- the supervisor ---

def test_killing_the_supervisor_kills_the_container(layout, cli, demo):
    """PR_SET_PDEATHSIG: a SIGKILLed supervisor (nothing forwards, nothing waits) takes the
    container's PID 1, and with it the whole PID namespace, along."""
    cid = cli("run", "-d", demo, "sleep", "300", check=True).stdout.strip()
    (data,) = json.loads(cli("inspect", cid, check=True).stdout)
    pid = data["State"]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        supervisor = int(next(line for line in f if line.startswith("PPid:")).split()[1])
    assert "overlaykit" in open(f"/proc/{supervisor}/cmdline").read()
    os.kill(supervisor, signal.SIGKILL)
    for _ in range(100):
        if _state(pid) in ("Z", None):
            break
        time.sleep(0.1)
    assert _state(pid) in ("Z", None)  # dead (a zombie until its new parent reaps it)


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(")") + 2]
