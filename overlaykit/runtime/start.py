"""Starting a container, read top to bottom: mount, resolve the user, fork it into its namespaces, wait, record.

Attached, overlaykit itself is the container's parent: it forwards signals to the
command, relays the pty with -t, and exits with the command's code. Detached (-d, or
`start` without -a), a supervisor process (double fork, setsid) plays that part and
outlives overlaykit, and restarts the container as its --restart policy says
(runtime/restart.py). Either way the supervisor carries the container's output
(runtime/streams.py) into Docker's json-file log, containers/<id>/<id>-json.log
(runtime/logs.py), and serves `attach` on containers/<id>/attach.sock
(runtime/attach_server.py).
"""

import os
import sys
import time
from contextlib import nullcontext
from functools import partial
from typing import Callable, NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux.namespaces import CLONE_NEWPID, unshare
from overlaykit.linux.proc import start_ticks
from overlaykit.runtime.cgroups import container_cgroup, oom_killed, place as place_in_cgroup
from overlaykit.runtime.child import container_main
from overlaykit.runtime.attach_server import AttachServer, serving_attach
from overlaykit.runtime.logs import LogWriter, migrate_plain_log
from overlaykit.runtime.process import (Child, StartError, describe, forwarding_signals,
                                        spawn, wait_for)
from overlaykit.runtime.rootfs import mounted_rootfs
from overlaykit.runtime.restart import (Backoff, await_restart, is_restarting, mark_restarting,
                                        own_pid_namespace_for_children, record_gave_up,
                                        restart_fields, wants_restart_after)
from overlaykit.runtime.security import Confinement, prepare
from overlaykit.runtime.spec import ContainerSpec, spec_from_record
from overlaykit.runtime.streams import Local, Stdio, container_stdio, pump, redirect_stdio
from overlaykit.runtime.tty import relay
from overlaykit.runtime.userns import close_all, remapped_namespaces
from overlaykit.runtime.user import User, resolve_user
from overlaykit.store import containers, networks
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout
from overlaykit.store.lock import store_lock
from overlaykit.store.orphans import settle


class Outlets(NamedTuple):
    """Where a supervised container's output goes besides its log, and its input comes from."""

    log: LogWriter
    server: AttachServer   # attached clients
    local: Local | None    # overlaykit's own terminal, in the foreground


def start_attached(layout: Layout, container: Container, stdin: bool, command: str,
                   on_started: Callable[[], None] | None = None, detached: bool = False,
                   after_exit: int | None = None) -> int:
    """Run the container under this process; returns the command's exit code.

    stdin: pass overlaykit's stdin on (with the container's -i). on_started is called once
    the command runs. detached: this is the supervisor of start_detached (no terminal of
    its own; the --restart policy applies). A foreground run whose policy wants a restart
    hands that to a detached supervisor as it returns (after_exit: the code it exited
    with), as dockerd restarts a container whose `docker run` has returned. Whatever
    happens, the overlay is unmounted before this returns. The supervisor lock is held
    throughout (containers.supervising), so prune leaves the starting container alone and
    the next command knows when this process died.
    """
    settle(layout, container.id)  # its last supervisor died: record that exit, or its --rm
    if not containers.exists(layout, container.id):
        raise OverlaykitError(f"No such container: {container.id}")
    with containers.supervising(layout, container.id):
        migrate_plain_log(layout, container.id)
        with LogWriter(layout.container_log(container.id), partial(_warn, command)) as log, \
                serving_attach(layout, container.id) as server:
            outlets = Outlets(log, server, None if detached else Local(0 if stdin else None))
            if after_exit is None:
                code = _start_supervised(layout, container, stdin, command, on_started, outlets)
            else:
                code = after_exit
                mark_restarting(layout, container.id, code)
                if on_started is not None:
                    on_started()
            if detached:
                return _keep_restarting(layout, container.id, code, command, outlets)
    if wants_restart_after(layout, container.id, code):
        own_pid_namespace_for_children()  # a fork into the dead container's namespace: ENOMEM
        start_detached(layout, container, command, after_exit=code)
    return code


def _keep_restarting(layout: Layout, container_id: str, code: int, command: str,
                     outlets: Outlets) -> int:
    """Start the container again for as long as its --restart policy asks (record_exit said
    so: the state is restarting); the last exit code."""
    backoff, started = Backoff(), time.monotonic()
    while is_restarting(layout, container_id):
        if not await_restart(layout, container_id, backoff.next(time.monotonic() - started)):
            return code
        started = time.monotonic()
        try:
            own_pid_namespace_for_children()
            code = _start_supervised(layout, containers.load(layout, container_id), False,
                                     command, None, outlets, restarted=True)
        except (OverlaykitError, OSError):  # recorded as the failed start; nothing to restart
            record_gave_up(layout, container_id)
            return code
    return code


def _start_supervised(layout: Layout, container: Container, stdin: bool, command: str,
                      on_started: Callable[[], None] | None, outlets: Outlets,
                      restarted: bool = False) -> int:
    spec = spec_from_record(layout, container)
    try:
        with mounted_rootfs(layout, container.config["RWLayer"], spec.idmap,
                            discarded=container.config["HostConfig"]["AutoRemove"]) as rootfs, \
                container_cgroup(spec.cgroup, spec.resources), \
                _networks(layout, container, command) as network, \
                container_stdio(spec.tty, spec.stdin_open and outlets.local is None) as stdio:
            user = resolve_user(rootfs.fd, spec.user, command)
            confinement = prepare(layout, spec.security)
            child = start_child(spec, user, confinement, command,
                                network and network.on_namespaces, stdio)
            stdio.close_child_ends()
            record_running(layout, container.id, child.pid, rootfs.how, restarted)
            if on_started is not None:
                on_started()
            code = supervise_streams(child, stdio, outlets, spec.stdin_open)
            outlets.server.end_run(code)
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
            record_exit(layout, container.id, code, oom, policy=outlets.local is None)
        except OSError as e:  # a full disk must not cost the command's exit code
            _warn(command, f"recording exit code {code} in {layout.container_state(container.id)}: "
                           f"{e.strerror}")
    finally:
        if container.config["HostConfig"]["AutoRemove"]:
            from overlaykit.runtime.lifecycle import remove_stopped
            remove_stopped(layout, container.id, volumes=True)  # --rm takes anonymous volumes too
    return code


def _networks(layout: Layout, container: Container, command: str):
    """The container's attachment to its networks while it runs (network_attach.attached);
    for --network none or host, None, without importing the network machinery."""
    if not networks.container_networks(container.config):
        return nullcontext()
    from overlaykit.runtime.network_attach import attached
    return attached(layout, container, command)


def _warn(command: str, message: str) -> None:
    """One line on stderr for what went wrong after the command ran; its exit code still stands."""
    sys.stderr.write(f"overlaykit: {command}: warning: {message}\n")
    sys.stderr.flush()


def start_child(spec: ContainerSpec, user: User, confinement: Confinement, command: str,
                on_namespaces: Callable[[int], None] | None = None,
                stdio: Stdio | None = None) -> Child:
    """Fork the container's PID 1 and wait until it has exec'd the command; on_namespaces(pid)
    makes its network devices once it has its network namespace; stdio: the pipes it gets
    as its stdin, stdout and stderr.

    unshare(CLONE_NEWPID) puts this process's next child into a new PID namespace; this
    process stays where it is (and forks nothing else afterwards).
    """
    namespaces = remapped_namespaces(spec.idmap)  # --userns-remap; its holder is forked first
    unshare(CLONE_NEWPID)
    fds = stdio.child_fds if stdio is not None else (None, None, None)

    def body(channel):
        redirect_stdio(fds)
        container_main(spec, user, confinement, channel, command, namespaces)
    try:
        return spawn(body, command, spec.id, die_with_parent=True, on_namespaces=on_namespaces,
                     place=partial(place_in_cgroup, spec.cgroup))
    finally:
        close_all(namespaces)


def supervise(child: Child, stdin: bool) -> int:
    """Forward signals (and relay the pty) until the command exits; its exit code."""
    with forwarding_signals(child.pid):
        if child.master is not None:
            relay(child.master, 0 if stdin else None, 1)
        return wait_for(child.pid)


def supervise_streams(child: Child, stdio: Stdio, outlets: Outlets, stdin_open: bool) -> int:
    """Forward signals and carry the container's stdio until the command exits; its exit code."""
    with forwarding_signals(child.pid):
        pump(stdio, child.master, outlets.log, outlets.server, outlets.local, stdin_open)
        return wait_for(child.pid)


def record_running(layout: Layout, container_id: str, pid: int, mount_path: str,
                   restarted: bool = False) -> None:
    """The command runs. A start by hand (not restarted by the policy) counts restarts from
    0 again and forgets a stop, as Docker's start resets its restart manager."""
    with store_lock(layout):
        state = containers.load(layout, container_id).state
        manual = {} if restarted else {"RestartCount": 0, "HasBeenManuallyStopped": False}
        containers.save_state(layout, container_id, {
            **state, "Status": "running", "Running": True, "Restarting": False, "Pid": pid,
            "PidStartTime": start_ticks(pid) or 0, "ExitCode": 0, "Error": "", "OOMKilled": False,
            "StartedAt": containers.timestamp(), "OverlayMount": mount_path, **manual})


def record_exit(layout: Layout, container_id: str, code: int, oom: bool = False,
                policy: bool = False) -> None:
    """The command's exit, unless the container was removed meanwhile (rm -f); oom: the
    kernel's OOM killer killed a process of its cgroup (State.OOMKilled). policy: a detached
    supervisor's, which decides under the same lock whether its --restart policy starts it
    again (then the state says restarting), so no command ever sees it exited in between."""
    with store_lock(layout):
        if containers.exists(layout, container_id):
            container = containers.load(layout, container_id)
            again = restart_fields(container, code) if policy else {}
            containers.save_state(layout, container_id, {
                **container.state, "Status": "exited", "Running": False, "Pid": 0,
                "ExitCode": code, "OOMKilled": oom, "FinishedAt": containers.timestamp(), **again})


def record_failed_start(layout: Layout, container_id: str, error: str, code: int) -> None:
    """As Docker: the container keeps its status (created, exited) with the error and code."""
    with store_lock(layout):
        if containers.exists(layout, container_id):
            state = containers.load(layout, container_id).state
            containers.save_state(layout, container_id, {
                **state, "Running": False, "Pid": 0, "ExitCode": code, "Error": error})


def start_detached(layout: Layout, container: Container, command: str,
                   after_exit: int | None = None) -> None:
    """Start the container under a supervisor that outlives overlaykit; return once it runs
    (after_exit: it has just exited with that code; the supervisor only restarts it)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _supervise_detached(layout, container, write_end, command, after_exit)
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
                        command: str, after_exit: int | None) -> None:
    """The supervisor: a new session, its own stdio /dev/null, the container run as if attached
    (its output goes to the log and to attached clients)."""
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
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        start_attached(layout, container, stdin=False, command=command,
                       on_started=lambda: report(b"ok"), detached=True, after_exit=after_exit)
    except (OverlaykitError, OSError) as e:
        report(f"E{getattr(e, 'exit_code', 1)} {describe(e)}".encode())
    except BaseException:
        import traceback
        _log_crash(layout, container.id, traceback.format_exc())
    finally:
        os._exit(0)


def _log_crash(layout: Layout, container_id: str, trace: str) -> None:
    """A bug in a detached supervisor: its traceback goes where its user looks, the container's
    log (stderr), since its own stderr is /dev/null."""
    try:
        with LogWriter(layout.container_log(container_id), lambda message: None) as log:
            log.write("stderr", f"overlaykit: supervisor: {trace}".encode())
    except OSError:
        pass
