"""Starting a container, read top to bottom: mount, resolve the user, fork it into its namespaces, wait, record.

Attached, overlaykit itself is the container's parent: it forwards signals to the
command, relays the pty with -t, and exits with the command's code. Detached (-d, or
`start` without -a), a supervisor process (double fork, setsid) plays that part and
outlives overlaykit; the container's output goes to containers/<id>/container.log.
"""

import os
import sys
import traceback
from typing import Callable

from overlaykit.errors import OverlaykitError
from overlaykit.linux.namespaces import CLONE_NEWPID, unshare
from overlaykit.linux.proc import start_ticks
from overlaykit.runtime.cgroups import container_cgroup, oom_killed
from overlaykit.runtime.child import container_main
from overlaykit.runtime.process import (Child, StartError, describe, forwarding_signals,
                                        spawn, wait_for)
from overlaykit.runtime.rootfs import mounted_rootfs
from overlaykit.runtime.spec import ContainerSpec, spec_from_record
from overlaykit.runtime.tty import relay
from overlaykit.runtime.user import User, resolve_user
from overlaykit.store import containers
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock
from overlaykit.store.orphans import settle


def start_attached(layout: Layout, container: Container, stdin: bool, command: str,
                   on_started: Callable[[], None] | None = None) -> int:
    """Run the container in the foreground; returns the command's exit code.

    stdin: pass overlaykit's stdin on (with the container's -i). on_started is called once
    the command runs. Whatever happens, the overlay is unmounted before this returns. The
    supervisor lock is held throughout (containers.supervising), so prune leaves the
    starting container alone and the next command knows when this process died.
    """
    settle(layout, container.id)  # its last supervisor died: record that exit, or its --rm
    if not containers.exists(layout, container.id):
        raise OverlaykitError(f"No such container: {container.id}")
    with containers.supervising(layout, container.id):
        return _start_supervised(layout, container, stdin, command, on_started)


def _start_supervised(layout: Layout, container: Container, stdin: bool, command: str,
                      on_started: Callable[[], None] | None) -> int:
    spec = spec_from_record(layout, container)
    try:
        with mounted_rootfs(layout, container.config["RWLayer"]) as rootfs, \
                container_cgroup(spec.cgroup, spec.resources):
            user = resolve_user(rootfs.fd, spec.user, command)
            child = start_child(spec, user, command)
            record_running(layout, container.id, child.pid, rootfs.how)
            if on_started is not None:
                on_started()
            code = supervise(child, stdin and spec.stdin_open)
            oom = oom_killed(spec.cgroup)
    except (OverlaykitError, OSError) as e:
        try:
            record_failed_start(layout, container.id, describe(e), getattr(e, "exit_code", 1))
        except OSError as failed:  # a full disk: the start's own error matters more
            _warn(command, f"recording the failed start in {layout.container_state(container.id)}: "
                           f"{failed.strerror}")
        raise
    else:
        try:
            record_exit(layout, container.id, code, oom)
        except OSError as e:  # a full disk must not cost the command's exit code
            _warn(command, f"recording exit code {code} in {layout.container_state(container.id)}: "
                           f"{e.strerror}")
    finally:
        if container.config["HostConfig"]["AutoRemove"]:
            from overlaykit.runtime.lifecycle import remove_stopped
            remove_stopped(layout, container.id, volumes=True)  # --rm takes anonymous volumes too
    return code


def _warn(command: str, message: str) -> None:
    """One line on stderr for what went wrong after the command ran; its exit code still stands."""
    sys.stderr.write(f"overlaykit: {command}: warning: {message}\n")
    sys.stderr.flush()


def start_child(spec: ContainerSpec, user: User, command: str) -> Child:
    """Fork the container's PID 1 and wait until it has exec'd the command.

    unshare(CLONE_NEWPID) puts this process's next child into a new PID namespace; this
    process stays where it is (and forks nothing else afterwards).
    """
    unshare(CLONE_NEWPID)
    return spawn(lambda channel: container_main(spec, user, channel, command), command, spec.id,
                 die_with_parent=True)


def supervise(child: Child, stdin: bool) -> int:
    """Forward signals (and relay the pty) until the command exits; its exit code."""
    with forwarding_signals(child.pid):
        if child.master is not None:
            relay(child.master, 0 if stdin else None, 1)
        return wait_for(child.pid)


def record_running(layout: Layout, container_id: str, pid: int, mount_path: str) -> None:
    with store_lock(layout):
        state = containers.load(layout, container_id).state
        containers.save_state(layout, container_id, {
            **state, "Status": "running", "Running": True, "Pid": pid,
            "PidStartTime": start_ticks(pid) or 0, "ExitCode": 0, "Error": "", "OOMKilled": False,
            "StartedAt": containers.timestamp(), "OverlayMount": mount_path})


def record_exit(layout: Layout, container_id: str, code: int, oom: bool = False) -> None:
    """The command's exit, unless the container was removed meanwhile (rm -f); oom: the
    kernel's OOM killer killed a process of its cgroup (State.OOMKilled)."""
    with store_lock(layout):
        if containers.exists(layout, container_id):
            state = containers.load(layout, container_id).state
            containers.save_state(layout, container_id, {
                **state, "Status": "exited", "Running": False, "Pid": 0, "ExitCode": code,
                "OOMKilled": oom, "FinishedAt": containers.timestamp()})


def record_failed_start(layout: Layout, container_id: str, error: str, code: int) -> None:
    """As Docker: the container keeps its status (created, exited) with the error and code."""
    with store_lock(layout):
        if containers.exists(layout, container_id):
            state = containers.load(layout, container_id).state
            containers.save_state(layout, container_id, {
                **state, "Running": False, "Pid": 0, "ExitCode": code, "Error": error})


def start_detached(layout: Layout, container: Container, command: str) -> None:
    """Start the container under a supervisor that outlives overlaykit; return once it runs."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _supervise_detached(layout, container, write_end, command)
    os.close(write_end)
    os.waitpid(pid, 0)  # the first child exits at once; the supervisor is its child
    with os.fdopen(read_end, "rb") as f:
        report = f.read()
    if report == b"ok":
        return
    if report[:1] == b"E":
        code, _, message = report[1:].decode(errors="replace").partition(" ")
        raise StartError(message, int(code))
    raise OverlaykitError(f"{command}: the container's supervisor died before the container started")


def _supervise_detached(layout: Layout, container: Container, report_fd: int,
                        command: str) -> None:
    """The supervisor: a new session, output to the log, the container run as if attached."""
    reported = False

    def report(message: bytes) -> None:
        nonlocal reported
        if not reported:
            reported = True
            os.write(report_fd, message)
            os.close(report_fd)

    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        log = os.open(layout.container_log(container.id),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        start_attached(layout, container, stdin=False, command=command,
                       on_started=lambda: report(b"ok"))
    except (OverlaykitError, OSError) as e:
        report(f"E{getattr(e, 'exit_code', 1)} {describe(e)}".encode())
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(0)
