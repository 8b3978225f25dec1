"""exec: another process in a running container's namespaces and root, as `docker exec` runs one.

overlaykit joins the container's PID namespace for its next child only (setns on
/proc/<pid>/ns/pid), forks, and the child joins the IPC, UTS, network and mount
namespaces, chroots into /proc/<pid>/root, sets up its terminal and user, and execs.
The namespace files and the root are opened together, and the container checked to be
running after, so a pid reused meanwhile cannot be joined by mistake.
"""

import os
import socket
from dataclasses import dataclass
from typing import NoReturn

from overlaykit.errors import OverlaykitError
from overlaykit.linux.namespaces import NAMESPACE_FLAGS, open_namespaces, setns
from overlaykit.runtime.cgroups import Cgroup, cgroup_of, enter as enter_cgroup
from overlaykit.runtime.freezer import is_paused
from overlaykit.runtime.process import exec_as, spawn
from overlaykit.runtime.security import Confinement, prepare, security_of
from overlaykit.runtime.spec import merge_env, process_env
from overlaykit.runtime.start import supervise
from overlaykit.runtime.tty import attach_stdio, attach_terminal
from overlaykit.runtime.user import User, resolve_user
from overlaykit.runtime.userns import become_root, of_record as idmap_of
from overlaykit.store.containers import Container, is_running
from overlaykit.store.layout import Layout

JOINED_IN_CHILD = ("ipc", "uts", "net", "mnt")  # mnt last: the others are found through /proc


@dataclass(frozen=True)
class ExecOptions:
    """What `docker exec` lets the user choose; the rest comes from the container's record."""

    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    tty: bool = False
    stdin_open: bool = False


def exec_in(layout: Layout, container: Container, options: ExecOptions, command: str = "exec") -> int:
    """Run options.argv in the running container; returns its exit code."""
    state, config = container.state, container.config["Config"]
    if not is_running(state):
        raise OverlaykitError(f"{command}: container {container.name} is not running")
    if is_paused(container.id):  # the new process would join the frozen cgroup and hang
        raise OverlaykitError(f"{command}: container {container.name} is paused, "
                              f"unpause the container before exec")
    pid = state["Pid"]
    root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    remapped = ("user",) if idmap_of(container.config["HostConfig"]) else ()  # joined last
    namespaces = open_namespaces(pid, ("pid", *JOINED_IN_CHILD, *remapped))
    try:
        if not is_running(state):
            raise OverlaykitError(f"{command}: container {container.name} is not running")
        user = resolve_user(root_fd, options.user if options.user is not None else config["User"],
                            command)
        env = process_env(merge_env(config["Env"], list(options.env)), config["Hostname"],
                          options.tty, user.home)
        workdir = options.workdir or config["WorkingDir"]
        # the container's own privileges, its seccomp program ready before the fork
        confinement = prepare(layout, security_of(container.config["HostConfig"]))
        setns(namespaces["pid"], NAMESPACE_FLAGS["pid"], "pid")
        cgroup = cgroup_of(container.id)
        child = spawn(lambda channel: _exec_main(cgroup, namespaces, root_fd, workdir, options,
                                                 user, env, confinement, channel, command),
                      command, container.id)
    finally:
        for fd in (*namespaces.values(), root_fd):
            os.close(fd)
    return supervise(child, options.stdin_open)


def _exec_main(cgroup: Cgroup | None, namespaces: dict[str, int], root_fd: int, workdir: str,
               options: ExecOptions, user: User, env: list[str], confinement: Confinement,
               channel: socket.socket, command: str) -> NoReturn:
    enter_cgroup(cgroup)  # first, as the container's PID 1 did: its limits hold for this one too
    for name in JOINED_IN_CHILD:
        setns(namespaces[name], NAMESPACE_FLAGS[name], name)
    os.fchdir(root_fd)
    os.chroot(".")
    try:
        os.chdir(workdir)
    except OSError as e:
        raise OverlaykitError(f"{command}: chdir to {workdir}: {e.strerror}") from None
    become_root(namespaces)  # --userns-remap: the container's user namespace, as its PID 1
    if options.tty:
        attach_terminal(channel, user, console=False)
    else:
        attach_stdio(options.stdin_open)
    exec_as(user, options.argv, env, command, confinement)
