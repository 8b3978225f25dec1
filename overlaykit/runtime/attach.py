"""attach: this terminal joined to a running container through its supervisor's socket, as `docker attach`.

The container's output from now on comes to stdout and stderr (a terminal's all to
stdout); with the container's -i, what is typed goes to its stdin, and for a -t container
this terminal is raw and its size follows ours. The detach keys (Docker's ctrl-p ctrl-q,
or --detach-keys) leave the container running: the keys are held back while they may
still be the sequence and sent on as typed when they turn out not to be, as Docker's
escape proxy does. Without -t, signals sent to attach go to the container's PID 1
(--sig-proxy, on by default, as in Docker). When the command exits, attach exits with
its code.
"""

import os
import select
import signal
from contextlib import ExitStack

from overlaykit.errors import OverlaykitError
from overlaykit.linux.terminal import get_window_size
from overlaykit.runtime.attach_protocol import (EXIT, RESIZE, STDERR, STDIN, FrameReader,
                                                connect, frame)
from overlaykit.runtime.lifecycle import live_state
from overlaykit.store.containers import Container
from overlaykit.store.layout import Layout

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(keys: str) -> bytes:
    """Docker's format: comma-separated single characters or ctrl-<a-z, @, [, \\, ], ^, _>."""
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1:
            codes.append(ord(key))
            continue
        name = key.lower().removeprefix("ctrl-")
        if key.lower().startswith("ctrl-") and len(name) == 1 and ("a" <= name <= "z" or name in _CTRL):
            codes.append(ord(name) - ord("a") + 1 if "a" <= name <= "z" else _CTRL[name])
            continue
        raise OverlaykitError(f"invalid detach keys ({keys}): unknown key {key!r}")
    if not codes:
        raise OverlaykitError(f"invalid detach keys ({keys})")
    return bytes(codes)


class EscapeProxy:
    """Finds the detach keys in what is typed; what is not part of them goes on unchanged."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self.held = b""  # a prefix of keys, typed and not sent yet

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to send on, whether the whole sequence was typed)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[len(self.held)]:
                self.held += bytes([byte])
                if self.held == self.keys:
                    return bytes(out), True
            else:
                out += self.held + bytes([byte])
                self.held = b""
        return bytes(out), False


class Detached(Exception):
    """The detach keys were typed: attach ends, the container runs on."""


def attach(layout: Layout, container: Container, stdin: bool, sig_proxy: bool,
           detach_keys: bytes) -> int:
    """Attach until the container's command exits (its exit code) or Detached is raised."""
    if not live_state(container)["Running"]:
        raise OverlaykitError("You cannot attach to a stopped container, start it first")
    tty, stdin = container.config["Config"]["Tty"], stdin and container.config["Config"]["OpenStdin"]
    if tty and stdin and not os.isatty(0):
        raise OverlaykitError("the input device is not a TTY")
    try:
        sock = connect(layout.container_attach_socket(container.id))
    except OSError as e:
        raise OverlaykitError(f"container {container.name} cannot be attached to: its supervisor "
                              f"does not answer ({e.strerror})") from None
    with sock, ExitStack() as stack:
        wakeup = _signal_pipe(stack)
        if tty and stdin:
            from overlaykit.runtime.tty import raw_mode
            stack.enter_context(raw_mode(0))
        if tty:
            _send_size(sock)
        elif sig_proxy:
            from overlaykit.runtime.process import forwarding_signals
            stack.enter_context(forwarding_signals(container.state["Pid"]))
        return _copy(sock, stdin, wakeup, EscapeProxy(detach_keys), tty)


def _copy(sock, stdin: bool, wakeup: int, proxy: EscapeProxy, tty: bool) -> int:
    frames, watched = FrameReader(), [sock, wakeup] + ([0] if stdin else [])
    while True:
        ready, _, _ = select.select(watched, [], [])
        if wakeup in ready:
            if signal.SIGWINCH in os.read(wakeup, 64) and tty:
                _send_size(sock)
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                raise OverlaykitError("the container's supervisor went away")
            for kind, payload in frames.feed(data):
                if kind == EXIT:
                    return int(payload)
                _write_all(2 if kind == STDERR else 1, payload)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                watched.remove(0)  # the container's stdin stays open, as Docker's without StdinOnce
                continue
            data, detached = proxy.feed(data)
            if data:
                sock.sendall(frame(STDIN, data))
            if detached:
                raise Detached()


def _send_size(sock) -> None:
    for fd in (0, 1):
        if os.isatty(fd):
            sock.sendall(frame(RESIZE, get_window_size(fd)))
            return


def _signal_pipe(stack: ExitStack) -> int:
    """A pipe the signal module writes each signal's number to, so select wakes for SIGWINCH."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    previous_fd = signal.set_wakeup_fd(write_end)
    previous = signal.signal(signal.SIGWINCH, lambda signum, frame: None)

    def restore() -> None:
        signal.signal(signal.SIGWINCH, previous)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_end)
        os.close(write_end)
    stack.callback(restore)
    return read_end


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]

