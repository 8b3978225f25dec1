"""The supervisor's side of `attach`: it accepts clients and copies the container's output to them.

Every supervisor serves its container (a foreground `run` as well as the supervisor of a
-d container), as dockerd serves `docker attach` for any running container. An attached
client gets what the container writes from then on (not the past, as Docker's attach
without --logs) and its exit code; what it sends goes to the container's stdin when the
container was made with -i. A client that does not take its output within SEND_TIMEOUT
seconds is dropped rather than allowed to stall the container.
"""

import os
import socket
from contextlib import contextmanager
from typing import Iterator

from overlaykit.runtime.attach_protocol import EXIT, FrameReader, frame, listen
from overlaykit.store.layout import Layout

SEND_TIMEOUT = 10  # seconds


class Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.frames = FrameReader()

    def fileno(self) -> int:
        return self.sock.fileno()


class AttachServer:
    """The listening socket and the clients attached to the current run."""

    def __init__(self, sock: socket.socket):
        self.listener = sock
        self.clients: list[Client] = []

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        sock.setblocking(True)
        sock.settimeout(SEND_TIMEOUT)
        self.clients.append(Client(sock))

    def send(self, kind: int, data: bytes) -> None:
        """data to every client; one that cannot take it is dropped."""
        message = frame(kind, data)
        for client in list(self.clients):
            try:
                client.sock.sendall(message)
            except OSError:
                self.drop(client)

    def receive(self, client: Client) -> list[tuple[int, bytes]]:
        """The frames client sent; it is dropped when it hung up."""
        try:
            data = client.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return []
        return client.frames.feed(data)

    def drop(self, client: Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            client.sock.close()

    def end_run(self, code: int) -> None:
        """The command exited: every client gets its code and is let go."""
        self.send(EXIT, str(code).encode())
        for client in list(self.clients):
            self.drop(client)


@contextmanager
def serving_attach(layout: Layout, container_id: str) -> Iterator[AttachServer]:
    """Listen at containers/<id>/attach.sock for as long as the supervisor runs the container."""
    path = layout.container_attach_socket(container_id)
    server = AttachServer(listen(path))
    try:
        yield server
    finally:
        for client in list(server.clients):
            server.drop(client)
        server.listener.close()
        try:
            os.unlink(path)
        except FileNotFoundError:  # removed with the container (rm -f)
            pass
