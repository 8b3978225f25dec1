"""A child that sets itself up and ends in exec: the fork, its report channel, exec, the exit status.

The child reports over a SOCK_SEQPACKET socketpair whose end closes on exec: a message
"E<code> <line>" says it could not start (127: not found, 126: cannot run, 1: the
machine refused a step), "T" carries the pty master it opened inside the container, and
end-of-file means exec succeeded. The parent waits for that answer before it calls the
container running, so `run` can print the one error line and exit with Docker's code.
"N" says the child has its network namespace: the parent makes its network devices (the
on_namespaces callback) and answers "C"; the child waits for that before exec.

The final exec goes through the sealed exec trampoline (linux/trampoline.py), so no process
the container can see ever runs the host's Python after it: "F<line start>" tells the parent
how to name the command, and the trampoline's "X<errno byte>" that its execve failed.
"""

import errno
import os
import select
import signal
import socket
import stat
from contextlib import contextmanager, suppress
from typing import Callable, Iterator, NamedTuple, NoReturn

from overlaykit.errors import OverlaykitError
from overlaykit.linux.capabilities import limit_to
from overlaykit.linux.fds import cloexec_from
from overlaykit.linux.keyring import join_session_keyring
from overlaykit.linux.prctl import (is_dumpable, kill_when_parent_dies, set_dumpable,
                                    set_no_new_privs)
from overlaykit.linux.seccomp import load
from overlaykit.linux.trampoline import exec_trampoline, sealed_trampoline
from overlaykit.runtime.security import Confinement
from overlaykit.runtime.user import User

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)


class StartError(OverlaykitError):
    """The command could not be started; exit_code is what overlaykit exits with."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class Child(NamedTuple):
    """A child that has exec'd: the pid to wait for, and the pty master to relay with -t."""

    pid: int
    master: int | None  # the pty master, with -t


def describe(e: BaseException) -> str:
    """One line for an error, as the CLI prints it: OSError as "<what>: <strerror>"."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) if isinstance(e, OverlaykitError) else f"{type(e).__name__}: {e}"


def spawn(body: Callable[[socket.socket], NoReturn], command: str, container_id: str,
          die_with_parent: bool = False,
          on_namespaces: Callable[[int], None] | None = None,
          place: Callable[[int], None] | None = None) -> Child:
    """Fork; the child runs body(channel), which must exec. Raises StartError if it did not.

    place(pid), if given, runs in this process as soon as the child exists (its cgroup),
    while the child goes on; the child's body waits for it with await_placed. If it fails,
    the child is killed and its error raised.

    The child is born undumpable (so the container never opens its /proc/<pid>/exe, the
    host's Python), joins the container's session keyring ("_ses.<id>", as runc names it)
    instead of keeping this process's, and with die_with_parent is SIGKILLed when this
    process ends, so a killed supervisor leaves no container behind. Returns with
    FORWARDED_SIGNALS blocked in this process, so one that arrives before
    forwarding_signals() takes over (it unblocks them) is held, not lost or fatal.
    """
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    trampoline = sealed_trampoline()  # before any namespace or seccomp filter
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    dumpable = is_dumpable()
    set_dumpable(False)  # inherited by fork: no moment where the child is dumpable
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a mask would survive exec
            parent_end.close()
            _child_setup(child_end, trampoline, die_with_parent)
            join_session_keyring(f"_ses.{container_id}")
            body(child_end)
        except StartError as e:
            code, message = e.exit_code, str(e)
        except OverlaykitError as e:
            message = str(e)  # it names the command already
        except BaseException as e:
            message = f"{command}: {describe(e)}"
        try:
            child_end.send(f"E{code} {message}".encode())
        finally:
            os._exit(code)
    set_dumpable(dumpable)
    child_end.close()
    os.close(trampoline)
    try:
        if place is not None:
            _place(pid, parent_end, place)
        return _await_exec(pid, parent_end, on_namespaces)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    finally:
        parent_end.close()


def _await_exec(pid: int, parent_end: socket.socket,
                on_namespaces: Callable[[int], None] | None) -> Child:
    """Read the child's reports until the channel closes on exec."""
    master = None
    exec_failure = ""
    while True:
        data, fds, _, _ = socket.recv_fds(parent_end, 65536, 1)
        if not data:
            return Child(pid, master)
        if data[:1] == b"N":
            _make_network(pid, parent_end, on_namespaces)
        elif data[:1] == b"T":
            master = fds[0]
        elif data[:1] == b"F":
            exec_failure = data[1:].decode(errors="replace")
        elif data[:1] in (b"E", b"X"):
            os.waitpid(pid, 0)
            if master is not None:
                os.close(master)
            raise _failure(data, exec_failure)


def _failure(report: bytes, exec_failure: str) -> StartError:
    """The child's report of why it stopped: "X" and an errno for the trampoline's execve of
    the command, "E<code> <message>" for anything before it."""
    if report[:1] == b"X":
        error = report[1]
        return StartError(f"{exec_failure}: {os.strerror(error).lower()}",
                          127 if error == errno.ENOENT else 126)
    code, _, message = report[1:].decode(errors="replace").partition(" ")
    return StartError(message, int(code))


def _make_network(pid: int, parent_end: socket.socket,
                  on_namespaces: Callable[[int], None] | None) -> None:
    """The child waits in its new network namespace: make what it needs there, then let it go
    on ("C"); if that fails, the child is killed before it runs anything of the container's."""
    try:
        if on_namespaces is not None:
            on_namespaces(pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        # The child goes on with its mounts meanwhile: if one failed, it reported that and
        # exited, and its namespace went with it; its report is the error to give, not ours.
        parent_end.setblocking(False)
        with suppress(OSError):
            report = parent_end.recv(65536)
            if report[:1] in (b"E", b"X"):
                raise _failure(report, "") from None
        raise
    try:
        parent_end.send(b"C")
    except OSError:
        pass  # the child failed meanwhile: its "E" report is next on the channel


def _place(pid: int, parent_end: socket.socket, place: Callable[[int], None]) -> None:
    """Run place(pid) and tell the child ("P"); if it fails, the child is killed and reaped."""
    try:
        place(pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    try:
        parent_end.send(b"P")
    except OSError:
        pass  # the child failed meanwhile: its "E" report is on the channel


def await_placed(channel: socket.socket) -> None:
    """In the child: wait until the parent has placed it (spawn's place)."""
    if channel.recv(16) != b"P":
        os._exit(1)  # the parent is gone, or killing this child


def report_namespaces(channel: socket.socket) -> None:
    """In the child: tell the parent its network namespace is there (it answers after await_network)."""
    channel.send(b"N")


def await_network(channel: socket.socket) -> None:
    """In the child: wait until the parent made its network devices ("C")."""
    if channel.recv(16) != b"C":
        os._exit(1)  # the parent is gone, or killing this child


def send_master(channel: socket.socket, master: int) -> None:
    socket.send_fds(channel, [b"T"], [master])


def exit_code(status: int) -> int:
    """Docker's exit code for a wait status: the code, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


@contextmanager
def forwarding_signals(pid: int) -> Iterator[None]:
    """SIGTERM, SIGINT, ... sent to overlaykit go to the container's PID 1 instead."""
    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)  # held since spawn
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return exit_code(status)


# --- in the child ---

# Set in spawn's child: its report channel's fd, the trampoline's fd, and die_with_parent.
_final_exec: tuple[int, int, bool] = (-1, -1, False)


def _child_setup(channel: socket.socket, trampoline: int, die_with_parent: bool) -> None:
    global _final_exec
    _final_exec = (channel.fileno(), trampoline, die_with_parent)
    if die_with_parent:
        _die_with_parent(channel.fileno())


def _die_with_parent(channel: int) -> None:
    """PR_SET_PDEATHSIG, then exit if the parent is gone already (its end of the channel hung up)."""
    kill_when_parent_dies()
    poll = select.poll()
    poll.register(channel, select.POLLHUP)
    if poll.poll(0):
        os._exit(1)


def exec_as(user: User, argv: tuple[str, ...] | list[str], env: list[str], command: str,
            confinement: Confinement) -> NoReturn:
    """The end of run's and exec's child, so both give the command the same privileges, in
    runc's order: no_new_privs; the seccomp filter, while loading it still has CAP_SYS_ADMIN
    (with no_new_privs it needs none, and waits until just before execve); the capabilities
    (dropping needs CAP_SETPCAP, which setuid to a user takes); the user; execve. Docker's
    profile allows what comes after the filter: capset, prctl, setgroups, setgid, setuid, execve."""
    if confinement.no_new_privileges:
        set_no_new_privs()
    elif confinement.seccomp is not None:
        load(confinement.seccomp)
    limit_to(set(confinement.capabilities))
    apply_user(user)
    if confinement.no_new_privileges and confinement.seccomp is not None:
        load(confinement.seccomp)
    exec_command(argv, env, command)


def apply_user(user: User) -> None:
    """Drop to the user: supplementary groups, then the gid, then the uid."""
    os.setgroups(list(user.groups))
    os.setgid(user.gid)
    os.setuid(user.uid)


def _find_executable(name: str, path: str, command: str) -> str:
    """Where name runs from: as given when it has a slash, else the first match in PATH."""
    if "/" in name:
        try:
            os.stat(name)
        except OSError as e:
            raise StartError(f'{command}: exec: "{name}": stat {name}: {e.strerror.lower()}', 127)
        return name
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise StartError(f'{command}: exec: "{name}": executable file not found in $PATH', 127)


def exec_command(argv: tuple[str, ...] | list[str], env: list[str], command: str) -> NoReturn:
    """execve the command with env, looked up in env's PATH, through the sealed exec trampoline;
    126/127 as Docker when it cannot."""
    environ = dict(e.partition("=")[::2] for e in env)
    path = _find_executable(argv[0], environ.get("PATH", ""), command)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the command must not
        signal.signal(sig, signal.SIG_DFL)
    os.umask(0o022)  # runc's default, whatever overlaykit was started with
    channel, trampoline, die_with_parent = _final_exec
    set_dumpable(False)  # again: a change of user set it to fs.suid_dumpable
    if die_with_parent:
        _die_with_parent(channel)  # again: a change of user cleared it
    os.write(channel, f'F{command}: exec: "{argv[0]}"'.encode())  # how the parent names a failure
    cloexec_from(3)  # nothing the caller left open reaches the command
    exec_trampoline(trampoline, channel, path, list(argv), environ)
