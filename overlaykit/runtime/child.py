"""What the forked child does, in order, to become the container: it ends by exec'ing the command.

The parent unshared the PID namespace before the fork, so this child is PID 1 of the new
one; the command replaces it and stays PID 1, as in Docker (no init in between): it gets
the signals overlaykit forwards and reaps what it orphans. Everything the steps import is
imported before pivot_root, after which the host's files are out of reach.
"""

import os
import socket
from typing import NoReturn

from overlaykit.linux.namespaces import (CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUTS,
                                         sethostname, unshare)
from overlaykit.linux.pivot import pivot_into
from overlaykit.runtime.cgroups import enter_namespace as enter_cgroup_namespace
from overlaykit.runtime.mounts import make_dirs
from overlaykit.runtime.mounttable import apply_mounts, make_root_readonly, prepare_root
from overlaykit.runtime.network import bring_up_loopback
from overlaykit.runtime.process import await_network, await_placed, exec_as, report_namespaces
from overlaykit.runtime.security import Confinement
from overlaykit.runtime.spec import ContainerSpec, process_env
from overlaykit.runtime.tty import attach_stdio, attach_terminal
from overlaykit.runtime.ulimits import apply as apply_ulimits
from overlaykit.runtime.user import User
from overlaykit.runtime.userns import become_root, making_files_as_root
from overlaykit.runtime.userns import enter_namespaces as enter_remapped_namespaces


def enter_namespaces(network: str) -> None:
    """New mount, UTS and IPC namespaces, and a network namespace unless --network host."""
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC
    unshare(flags if network == "host" else flags | CLONE_NEWNET)


def make_workdir(root_fd: int, workdir: str) -> None:
    """Docker makes a missing working directory (owned by root) before the command starts.

    Made inside the root like a mount target: a dangling symlink on the way (WORKDIR /out,
    /out -> ../../host/dir) is followed as the container would see it and made there.
    """
    os.close(make_dirs(root_fd, workdir))


def container_main(spec: ContainerSpec, user: User, confinement: Confinement,
                   channel: socket.socket, command: str,
                   namespaces: dict[str, int] | None = None) -> NoReturn:
    """confinement: the container's privileges, made ready before the fork; namespaces: with
    --userns-remap, the ones made with its user namespace, to join."""
    if namespaces is None:
        enter_namespaces(spec.network)
    else:
        enter_remapped_namespaces(namespaces)
    if spec.network != "host":
        report_namespaces(channel)  # the parent makes its devices meanwhile; await_network below
    with making_files_as_root(spec.idmap):
        root = prepare_root(spec.mounts, spec.rootfs, spec.privileged)
        apply_mounts(root, spec.mounts)
        make_workdir(root, spec.workdir)
    os.close(root)
    await_placed(channel)  # in its cgroup (the parent moved it meanwhile): limited from here on
    enter_cgroup_namespace(spec.cgroup)
    sethostname(spec.hostname)
    if spec.network != "host":
        bring_up_loopback()
    pivot_into(spec.rootfs)
    os.chdir(spec.workdir)
    if spec.read_only:
        make_root_readonly(spec.privileged)
    apply_ulimits(spec.ulimits)  # while it may raise a hard limit (the host's CAP_SYS_RESOURCE)
    become_root(namespaces)  # --userns-remap: from here, root of its user namespace only
    if spec.tty:
        attach_terminal(channel, user, console=True)
    else:
        attach_stdio(spec.stdin_open)
    if spec.network != "host":
        await_network(channel)
    exec_as(user, spec.argv, process_env(spec.env, spec.hostname, spec.tty, user.home), command,
            confinement)
