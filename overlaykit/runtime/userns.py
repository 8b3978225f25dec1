"""--userns-remap: the container's root is an unprivileged range of host ids, as Docker's
daemon option `userns-remap` makes it, chosen per container since overlaykit has no daemon.

    --userns-remap default          the ranges of the user `dockremap` in /etc/subuid, /etc/subgid
    --userns-remap USER[:GROUP]     the first range of USER (and GROUP, else USER) there
    --userns-remap UID:GID:SIZE     container ids 0..SIZE-1 are host UID.., GID.. (no file needed)

The range is resolved when the container is made and recorded (HostConfig.UsernsRemap,
"UID:GID:SIZE"), so start, exec and commit keep using it whatever /etc/subuid says later.

Layers stay shared and unchanged on disk: the overlay is made of idmapped mounts of them
(lowers and the upper), so a file owned by 0 on disk is the container's root's inside, and
what the container's root writes lands in diff/ owned by 0, the in-container id. diff,
commit, export and save therefore read container ids exactly as without a remap, and a
committed layer is owned as Docker's is. The container's processes run in a user namespace
with the mapping; its mount, UTS, IPC and network namespaces are made with it and owned by
it, so its root has capabilities over them and over nothing of the host's (its PID
namespace is the host's user namespace's: see container_namespaces). The child sets
the container up as today, as the host's root inside those namespaces, but makes files as
the mapped root (fsuid), then joins the user namespace just before the command: what only
the host's root can do (binding host paths, filling a volume) is done before it.

Host paths bound in (-v /srv:/srv) are not idmapped, as in Docker: a directory the host's
root owns is nobody's inside and not writable to the container's root. The container's
own files outside the layers (/etc/hosts, hostname, resolv.conf) and a fresh volume are
given to the mapped root, as Docker's remapped store gives them.
"""

import grp
import os
import pwd
from contextlib import contextmanager, suppress
from typing import BinaryIO, Callable, Iterator, NamedTuple, Sequence

from overlaykit.errors import OverlaykitError
from overlaykit.linux import userns
from overlaykit.linux.idmap import mount_idmapped
from overlaykit.linux.mount import unmount_tree
from overlaykit.linux.namespaces import (CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUTS,
                                         NAMESPACE_FLAGS, setns)
from overlaykit.linux.overlay import OverlaySpec, check_depth, mount_overlay as mount_plain
from overlaykit.runtime.mounttable import Mount
from overlaykit.store.layout import Layout

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
DEFAULT_USER = "dockremap"  # Docker's name for `userns-remap: default`
_MAX_ID = 2 ** 32 - 1  # (uid_t)-1 is never an id


class IdMap(NamedTuple):
    """Container ids 0..size-1 are host ids uid.. and gid.. ."""

    uid: int
    gid: int
    size: int

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}:{self.size}"

    def uid_map(self) -> str:
        return f"0 {self.uid} {self.size}\n"

    def gid_map(self) -> str:
        return f"0 {self.gid} {self.size}\n"

    def host_gid(self, gid: int) -> int:
        return self.gid + gid


def _checked(uid: int, gid: int, size: int, where: str) -> IdMap:
    if size < 1:
        raise OverlaykitError(f"{where}: the range must hold at least one id")
    if uid < 1 or gid < 1:
        raise OverlaykitError(f"{where}: the range must not include the host's root (id 0)")
    if uid + size > _MAX_ID or gid + size > _MAX_ID:
        raise OverlaykitError(f"{where}: the range passes the last id, {_MAX_ID - 1}")
    return IdMap(uid, gid, size)


def first_range(text: str, names: Sequence[str]) -> tuple[int, int] | None:
    """The first (start, count) of a subuid/subgid file's "name:start:count" lines for any of
    names."""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in names and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None


def _user_names(user: str) -> list[str]:
    """A user as subuid may name it: by name and by number."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        return [user]
    return [entry.pw_name, str(entry.pw_uid)]


def _group_names(group: str) -> list[str]:
    """A group as subgid may name it: by name and by number."""
    try:
        entry = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
    except (KeyError, OverflowError):
        return [group]
    return [entry.gr_name, str(entry.gr_gid)]


def _subordinate(path: str, names: list[str], where: str) -> tuple[int, int]:
    try:
        with open(path) as f:
            found = first_range(f.read(), names)
    except FileNotFoundError:
        found = None
    if found is None:
        raise OverlaykitError(f"{where}: no range for {names[0]} in {path} "
                              f"(add a line such as {names[0]}:100000:65536, or give UID:GID:SIZE)")
    return found


def parse(value: str, where: str) -> IdMap:
    """The mapping --userns-remap VALUE names."""
    parts = value.split(":")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return _checked(*(int(p) for p in parts), where)
    if value == "default":
        user, group = DEFAULT_USER, DEFAULT_USER
    elif 1 <= len(parts) <= 2 and all(parts):
        user, group = parts[0], parts[-1]
    else:
        raise OverlaykitError(f"{where}: not one of default, USER[:GROUP] or UID:GID:SIZE")
    uid, uid_count = _subordinate(SUBUID, _user_names(user), where)
    gid, gid_count = _subordinate(SUBGID, _group_names(group), where)
    return _checked(uid, gid, min(uid_count, gid_count), where)


def host_config(value: str | None, network: str, privileged: bool, command: str) -> dict:
    """HostConfig.UsernsRemap, checked: Docker refuses the host's network and --privileged
    in a remapped container (a user namespace cannot own the host's network namespace)."""
    if not value:
        return {}
    where = f"{command}: --userns-remap {value}"
    idmap = parse(value, where)
    if network == "host":
        raise OverlaykitError(f"{where}: cannot be used with --network host")
    if privileged:
        raise OverlaykitError(f"{where}: cannot be used with --privileged")
    return {"UsernsRemap": str(idmap)}


def of_record(host: dict) -> IdMap | None:
    """A recorded container's mapping, or None when its root is the host's."""
    value = host.get("UsernsRemap")
    if not value:
        return None
    uid, gid, size = (int(p) for p in value.split(":"))
    return IdMap(uid, gid, size)


# --- on the host, when the container is made ---

def give_to_root(idmap: IdMap | None, paths: Sequence[str]) -> None:
    """The container's own files (its /etc/hosts, ...) belong to its root, as in Docker."""
    if idmap is None:
        return
    for path in paths:
        os.chown(path, idmap.uid, idmap.gid, follow_symlinks=False)


def give_fresh_volumes(idmap: IdMap | None, data_dirs: Sequence[str]) -> None:
    """A volume no container has used yet (empty, the host's root's) becomes the mapped root's,
    as a remapped Docker makes its volumes; one already in use keeps its owners."""
    if idmap is None:
        return
    for path in data_dirs:
        st = os.stat(path)
        if (st.st_uid, st.st_gid) == (0, 0) and not os.listdir(path):
            os.chown(path, idmap.uid, idmap.gid)


def remap_table(table: Sequence[Mount], idmap: IdMap | None) -> tuple[Mount, ...]:
    """The mount table with numeric uid=/gid= options of new filesystems (devpts's gid=5, a
    tmpfs's uid=) in host ids: they are mounted from outside the user namespace, where the
    kernel reads such numbers, so tty's group 5 is the container's group 5."""
    if idmap is None:
        return tuple(table)
    return tuple(m._replace(data=_remap_options(m.data, idmap)) if m.kind == "fs" and m.data else m
                 for m in table)


def _remap_options(data: str, idmap: IdMap) -> str:
    options = []
    for option in data.split(","):
        key, sep, value = option.partition("=")
        if sep and key in ("uid", "gid") and value.isdigit():
            value = str((idmap.uid if key == "uid" else idmap.gid) + int(value))
        options.append(f"{key}{sep}{value}")
    return ",".join(options)


# --- on the host, when the container starts ---

def user_namespace(idmap: IdMap) -> int:
    """A user namespace with the mapping, as an fd (nothing runs in it)."""
    return _made(idmap, 0, ("user",))["user"]


def _made(idmap: IdMap, flags: int, names: tuple[str, ...]) -> dict[str, int]:
    """userns.make with the mapping; a refusal (user namespaces off: user.max_user_namespaces
    is 0, or unprivileged_userns_clone) is one line naming it."""
    try:
        return userns.make(idmap.uid_map(), idmap.gid_map(), flags, names)
    except OSError as e:
        raise OverlaykitError(f"--userns-remap: the kernel refused a user namespace with the "
                              f"mapping {idmap} ({e.filename}: {e.strerror})") from None


CONTAINER_NAMESPACES = ("user", "mnt", "uts", "ipc", "net")


def container_namespaces(idmap: IdMap) -> dict[str, int]:
    """The container's user namespace and, owned by it, new mount, UTS, IPC and network
    namespaces, as fds. The mount namespace is a copy of the host's as it is now (the overlay
    mounted at merged/).

    The PID namespace is the one start_child unshares, owned by the host's user namespace:
    a PID namespace's files only appear once its first process runs, and that must be the
    container's PID 1, which needs the host's root for its mounts before it joins the user
    namespace. So /proc is mounted by the host's root, and the container's root cannot mount
    another one or write ns_last_pid (stricter than runc); signals and ptrace inside are
    decided by the processes' own user namespace, where it is root.
    """
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET
    return _made(idmap, flags, CONTAINER_NAMESPACES)


def remapped_namespaces(idmap: IdMap | None) -> dict[str, int] | None:
    """With idmap, the container's namespaces (container_namespaces), else None."""
    return None if idmap is None else container_namespaces(idmap)


def close_all(fds: dict[str, int] | None) -> None:
    for fd in (fds or {}).values():
        with suppress(OSError):
            os.close(fd)


def mount_overlay(layout: Layout, spec: OverlaySpec, target: str, idmap: IdMap) -> str:
    """Mount the container's overlay (an OverlaySpec of overlay2/) at target with every layer
    idmapped; returns the mount path taken, as linux.overlay.mount_overlay does.

    Each lower and the upper's layer directory (diff/ and work/ must share a mount) are
    cloned with the mapping and attached in this process's staging directory, the overlay is
    mounted from there as the mapped root (overlayfs makes its work/ and whiteouts with the
    mounter's ids, which must be mapped), and the attachments go: the overlay keeps its own.

    Past 500 layers the nested overlay of the bottom 500 (linux/overlay.py) is made of the
    idmapped attachments too, in the same directory.

    Where the kernel refuses (before 5.19, or a store on a filesystem without idmapped
    mounts) this is one error line, not Docker's fallback of a chowned private copy of
    every layer per mapping, which would undo the sharing of layers this design is for.
    """
    import tempfile
    from overlaykit.store.staging import own_dir
    layer = os.path.dirname(spec.upper)
    if os.path.dirname(spec.work) != layer:
        raise ValueError("the upper and work directories must be in one layer directory")
    check_depth(spec, target)
    user = user_namespace(idmap)
    attach = ""
    try:
        attach = tempfile.mkdtemp(prefix="idmap-", dir=own_dir(layout))
        names = [str(i) for i in range(len(spec.lowers))]
        for name, lower in zip(names, spec.lowers):
            os.mkdir(os.path.join(attach, name))
            mount_idmapped(os.path.join(spec.base, lower), os.path.join(attach, name), user)
        os.mkdir(os.path.join(attach, "u"))
        mount_idmapped(os.path.join(spec.base, layer), os.path.join(attach, "u"), user)
        mapped = OverlaySpec(base=attach, lowers=tuple(names),
                             upper=os.path.join("u", os.path.basename(spec.upper)),
                             work=os.path.join("u", os.path.basename(spec.work)),
                             options=spec.options, volatile=spec.volatile)
        with userns.files_owned_by(idmap.uid, idmap.gid):
            return mount_plain(mapped, target, scratch=attach)
    except OSError as e:
        raise OverlaykitError(f"--userns-remap: the kernel refused the container's overlay on "
                              f"idmapped layers ({e.filename}: {e.strerror}); it needs Linux "
                              f"5.19 or later and a store on a filesystem with idmapped mounts "
                              f"(ext4, xfs, btrfs, tmpfs)") from None
    finally:
        if attach:
            unmount_tree(attach)
            with suppress(OSError):
                for name in os.listdir(attach):
                    os.rmdir(os.path.join(attach, name))
                os.rmdir(attach)
        os.close(user)


def as_containers_root(pid: int, consume: Callable[[BinaryIO | None], None],
                       produce: Callable[[BinaryIO], None] | None = None) -> None:
    """Run consume in a forked child that joined the user namespace of the container process
    pid as its root, so what it makes through the container's idmapped root lands with the
    container's ids, as `cp` into a running remapped container must (the host's root is
    unmapped there and can make nothing: EOVERFLOW). With produce, consume reads a pipe that
    produce writes here, outside, where the host's files show their own owners. An error in
    consume comes back as one OverlaykitError line."""
    user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    report_r, report_w = os.pipe()
    data_r, data_w = os.pipe() if produce is not None else (-1, -1)
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.close(report_r)
            if produce is not None:
                os.close(data_w)
            userns.join(user)
            consume(os.fdopen(data_r, "rb") if produce is not None else None)
        except OSError as e:
            code = 1
            os.write(report_w, (f"{e.filename}: {e.strerror}" if e.filename else
                                str(e.strerror or e)).encode())
        except BaseException as e:
            code = 1
            os.write(report_w, str(e).encode())
        finally:
            os._exit(code)
    os.close(user)
    os.close(report_w)
    try:
        if produce is not None:
            os.close(data_r)
            with suppress(BrokenPipeError), open(data_w, "wb") as out:
                produce(out)
    finally:
        with os.fdopen(report_r, "rb") as f:
            message = f.read().decode(errors="replace")
        _, status = os.waitpid(child, 0)
    if status != 0:
        raise OverlaykitError(message or "the copy in the container's user namespace failed")


# --- in the container's child ---

def enter_namespaces(fds: dict[str, int]) -> None:
    """Join the container's mount, UTS, IPC and network namespaces (still as the host's root,
    which has every capability over them: it mounts /proc, /sys and host paths there)."""
    for name in ("mnt", "uts", "ipc", "net"):
        setns(fds[name], NAMESPACE_FLAGS[name], name)


@contextmanager
def making_files_as_root(idmap: IdMap | None) -> Iterator[None]:
    """Files made in the block (mount targets, the working directory, /dev's tmpfs) are the
    container's root's: through the idmapped upper they land in diff/ owned by 0."""
    if idmap is None:
        yield
        return
    with userns.files_owned_by(idmap.uid, idmap.gid):
        yield


def become_root(fds: dict[str, int] | None) -> None:
    """Join the user namespace among fds (if any) as its root, last before the command: from
    here this process has capabilities over the container's namespaces only."""
    if not fds or "user" not in fds:
        return
    userns.join(fds["user"])
