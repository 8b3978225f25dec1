"""The userland proxy of published ports, as Docker's docker-proxy: what answers on 127.0.0.1.

Packets to 127.0.0.1 never pass a nat prerouting hook and are not routed out of lo, so the
nftables DNAT cannot serve them; a process listening on the published address and copying to
the container can. Binding its sockets first is also what reserves the host port: a port in
use fails the start before anything else is made ("port is already allocated", as Docker).

The supervisor binds the sockets, then forks the proxy before the container; the proxy dies with the supervisor (PR_SET_PDEATHSIG), so a supervisor killed
with -9 leaves no proxy behind.
"""

import errno
import os
import select
import signal
import socket
import threading
from typing import NoReturn

from overlaykit.errors import OverlaykitError
from overlaykit.linux.namespaces import CLONE_NEWPID, setns
from overlaykit.linux.prctl import kill_when_parent_dies
from overlaykit.runtime.network_ports import Binding

_UDP_IDLE = 30.0  # seconds an idle UDP client keeps its upstream socket


def bind_all(bindings: list[Binding], command: str) -> list[tuple[Binding, socket.socket]]:
    """One bound socket per binding (host_port 0: the kernel picks); the bindings get their ports."""
    bound: list[tuple[Binding, socket.socket]] = []
    try:
        for b in bindings:
            kind = socket.SOCK_STREAM if b.proto == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
            bound.append((b, sock))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            address = b.host_ip or "0.0.0.0"
            try:
                sock.bind((address, b.host_port))
            except OSError as e:
                raise OverlaykitError(f"{command}: Bind for {address}:{b.host_port} failed: "
                                      f"port is already allocated" if e.errno == errno.EADDRINUSE else
                                      f"{command}: Bind for {address}:{b.host_port} failed: "
                                      f"{e.strerror}") from None
            if b.proto == "tcp":
                sock.listen(128)
    except BaseException:
        for _, sock in bound:
            sock.close()
        raise
    return [(Binding(b.proto, b.host_ip, sock.getsockname()[1], b.container_port), sock)
            for b, sock in bound]


def start(bound: list[tuple[Binding, socket.socket]], address: str) -> int:
    """Fork the proxy for the bound sockets, to address; its pid. The sockets stay with it.

    Into this process's own PID namespace: a supervisor that restarts its container
    (--restart) unshared one for the container it started before, whose PID 1 is gone, and
    could fork nothing more into it (nor unshare another while it is pending)."""
    alive_r, alive_w = os.pipe2(os.O_CLOEXEC)  # hangs up when the supervisor is gone
    _children_in_own_pid_namespace()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(alive_w)
            _serve(bound, address, alive_r)
        finally:
            os._exit(1)
    os.close(alive_r)
    _alive[pid] = alive_w
    for _, sock in bound:
        sock.close()
    return pid


def _children_in_own_pid_namespace() -> None:
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(own, CLONE_NEWPID, "own PID namespace")
    finally:
        os.close(own)


_alive: dict[int, int] = {}  # proxy pid -> the supervisor's end of its pipe


def stop(pid: int) -> None:
    os.close(_alive.pop(pid))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    os.waitpid(pid, 0)


def _serve(bound: list[tuple[Binding, socket.socket]], address: str, alive: int) -> NoReturn:
    kill_when_parent_dies()
    if select.select([alive], [], [], 0)[0]:  # hung up: the supervisor died before the line above
        os._exit(0)
    _keep_only([sock.fileno() for _, sock in bound] + [alive])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    threads = [threading.Thread(target=_accept if b.proto == "tcp" else _relay_udp,
                                args=(sock, (address, b.container_port)), daemon=True)
               for b, sock in bound]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os._exit(0)


def _keep_only(keep: list[int]) -> None:
    """Nothing the supervisor holds stays open here but the sockets: not the pipe that tells
    `run -d` the container started (its end-of-file), not the terminal, not a lock."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _accept(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connect, args=(client, target), daemon=True).start()


def _connect(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
    _pump(client, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until source ends, then pass the end on (half-close), as a TCP proxy must."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _relay_udp(listener: socket.socket, target: tuple[str, int]) -> None:
    """Each client gets an upstream socket of its own, whose replies go back to that client."""
    upstreams: dict[tuple, socket.socket] = {}
    lock = threading.Lock()

    def replies(client: tuple, upstream: socket.socket) -> None:
        upstream.settimeout(_UDP_IDLE)
        try:
            while True:
                listener.sendto(upstream.recv(65536), client)
        except OSError:
            with lock:
                upstreams.pop(client, None)
            upstream.close()

    while True:
        data, client = listener.recvfrom(65536)
        with lock:
            upstream = upstreams.get(client)
            if upstream is None:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                upstream.connect(target)
                upstreams[client] = upstream
                threading.Thread(target=replies, args=(client, upstream), daemon=True).start()
        try:
            upstream.send(data)
        except OSError:
            pass
