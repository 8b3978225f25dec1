"""The container's stdio as its supervisor carries it: output to the log, the terminal and attached clients.

Without -t the command writes into two pipes (stdout, stderr) that its supervisor reads,
as containerd's shim does for dockerd; with -t into the pty whose master the supervisor
holds, one stream (stdout). Whatever comes out is appended to the json-file log, copied
to overlaykit's own stdout/stderr when the container runs in the foreground, and sent to
every `attach` client. Input: a foreground `run -i` hands its own stdin to the command
(or, with -t, copies it into the pty as the terminal is raw); a container made with -i
also takes what attached clients send, through the pty or a stdin pipe that its
supervisor keeps open.

The copying ends when every output is closed: PID 1's exit kills the rest of its PID
namespace, so no process is left holding a pipe or the pty.
"""

import errno
import os
import select
from contextlib import contextmanager, nullcontext
from typing import Iterator, NamedTuple

from overlaykit.linux.terminal import set_window_size
from overlaykit.runtime.attach_protocol import RESIZE, STDIN, STREAM_KIND
from overlaykit.runtime.attach_server import AttachServer
from overlaykit.runtime.logs import LogWriter
from overlaykit.runtime.tty import raw_mode, resizing

_CHUNK = 65536


class Stdio:
    """One run's pipes: the ends the child puts on 0, 1, 2 (None: keep what it has) and ours.
    A plain class: the start path makes no dataclass (docs/architecture.md, "Start-up")."""

    def __init__(self) -> None:
        self.child_fds: tuple[int | None, int | None, int | None] = (None, None, None)
        self.outputs: dict[int, str] = {}  # our read ends: fd -> stream
        self.stdin: int | None = None      # our write end of the container's stdin pipe

    def close_child_ends(self) -> None:
        """Once the child has them: our copies of its ends would keep its output from ending."""
        for fd in self.child_fds:
            if fd is not None:
                os.close(fd)
        self.child_fds = (None, None, None)

    def close_output(self, fd: int) -> None:
        """Stop reading one output: the command's next write to it gets SIGPIPE."""
        del self.outputs[fd]
        os.close(fd)

    def close(self) -> None:
        self.close_child_ends()
        for fd in [*self.outputs, *([self.stdin] if self.stdin is not None else [])]:
            os.close(fd)
        self.outputs, self.stdin = {}, None


@contextmanager
def container_stdio(tty: bool, stdin_pipe: bool) -> Iterator[Stdio]:
    """The pipes of one run: stdout and stderr without -t, and with stdin_pipe (a detached
    -i container) a stdin pipe the supervisor keeps open for attached clients."""
    stdio = Stdio()
    try:
        child_in = None
        if stdin_pipe and not tty:
            child_in, stdio.stdin = os.pipe()
            os.set_blocking(stdio.stdin, False)
        if not tty:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            stdio.outputs = {out_r: "stdout", err_r: "stderr"}
            stdio.child_fds = (child_in, out_w, err_w)
        yield stdio
    finally:
        stdio.close()


def redirect_stdio(child_fds: tuple[int | None, int | None, int | None]) -> None:
    """In the child, before it becomes the container: its ends of the pipes as 0, 1 and 2."""
    for target, fd in enumerate(child_fds):
        if fd is not None:
            os.dup2(fd, target)


class Local(NamedTuple):
    """overlaykit's own terminal in the foreground: where output goes, and stdin for a pty."""

    stdin: int | None  # copied into the pty (-it); None: the command has it, or none
    stdout: int = 1
    stderr: int = 2


def pump(stdio: Stdio, master: int | None, log: LogWriter, server: AttachServer,
         local: Local | None, stdin_open: bool) -> None:
    """Copy until the container's output ends; the pty master is closed after."""
    outputs = {master: "stdout"} if master is not None else dict(stdio.outputs)
    target = master if master is not None else stdio.stdin  # where input goes
    local_in = local.stdin if local is not None and master is not None and stdin_open else None
    size_source = None
    if local is not None and master is not None:
        size_source = next((fd for fd in (local_in, local.stdout)
                            if fd is not None and os.isatty(fd)), None)
    raw = raw_mode(local_in) if local_in is not None and os.isatty(local_in) else nullcontext()
    pending = b""  # input the container has not taken yet
    sinks = {"stdout": local.stdout, "stderr": local.stderr} if local is not None else {}
    with raw, resizing(size_source, master) if master is not None else nullcontext():
        while outputs:
            readers = [*outputs, server.listener, *server.clients]
            if local_in is not None:
                readers.append(local_in)
            writers = [target] if pending and target is not None else []
            ready, writable, _ = select.select(readers, writers, [])
            for fd in [r for r in ready if r in outputs]:
                stream = outputs[fd]
                data = _read_output(fd)
                if not data:
                    del outputs[fd]
                    log.end(stream)
                    continue
                log.write(stream, data)
                server.send(STREAM_KIND[stream], data)
                if stream in sinks and not _to_local(sinks[stream], data):
                    del sinks[stream]
                    if master is None:  # `run ... | head -1`: as if the command wrote there
                        del outputs[fd]  # itself, its next write gets SIGPIPE
                        log.end(stream)
                        stdio.close_output(fd)
            if writable:
                pending = _feed(target, pending)
            if local_in is not None and local_in in ready:
                data = os.read(local_in, _CHUNK)
                pending += data or b"\x04"  # end of input: ^D to the terminal, as before
                if not data:
                    local_in = None
            if server.listener in ready:
                server.accept()
            for client in [c for c in server.clients if c in ready]:
                for kind, payload in server.receive(client):
                    if kind == STDIN and stdin_open and target is not None:
                        pending += payload
                    elif kind == RESIZE and master is not None:
                        try:
                            set_window_size(master, payload)
                        except OSError:
                            pass
    if master is not None:
        os.close(master)


def _read_output(fd: int) -> bytes:
    try:
        return os.read(fd, _CHUNK)
    except OSError as e:
        if e.errno == errno.EIO:  # a pty whose every slave is closed: the container is gone
            return b""
        raise


def _to_local(fd: int, data: bytes) -> bool:
    """Write to overlaykit's own output; False once the reader is gone (`run ... | head -1`)."""
    try:
        while data:
            data = data[os.write(fd, data):]
        return True
    except BrokenPipeError:
        return False


def _feed(fd: int, pending: bytes) -> bytes:
    """Give the container what it takes of pending without blocking; the rest stays pending.
    A container that closed its stdin takes nothing more: the input is dropped."""
    try:
        return pending[os.write(fd, pending):]
    except BlockingIOError:
        return pending
    except OSError as e:
        if e.errno in (errno.EPIPE, errno.EIO):
            return b""
        raise
