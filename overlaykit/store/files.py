"""Metadata files written atomically and durably: a temporary name in the same directory,
fsync, rename, fsync of the directory (else a power cut may keep the old name, or none)."""

import json
import os

from overlaykit.linux.sync import fsync_directory
from overlaykit.store import crashpoint


def write_text(path: str, text: str, mode: int = 0o600) -> None:
    """Replace path with text; readers see the old file or the new one, never a half."""
    write_bytes(path, text.encode(), mode)


def write_bytes(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace path with data, atomically (write_text's bytes form: exact bytes kept).

    The file gets mode whatever the umask: 0600 for the store's own records, 0644 for what a
    container's non-root user must read (its /etc/hosts, as in Docker).
    """
    directory = os.path.dirname(path)
    make_directories(directory)
    fd, tmp = _new_temporary(directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        crashpoint.reached("metadata-written")
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_directory(directory)


def _new_temporary(directory: str) -> tuple[int, str]:
    """A new 0600 file under a random name in directory, made with O_EXCL as mkstemp makes
    one. Every `run` writes its records through here, and importing tempfile for this one
    call (it pulls shutil and random) cost each start ~4 ms."""
    while True:
        path = os.path.join(directory, f".tmp-{os.urandom(6).hex()}")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), path
        except FileExistsError:  # 48 random bits taken: a leftover of a crash, or a rare twin
            continue


def make_directories(path: str) -> None:
    """os.makedirs, durably: each directory made is fsynced into its parent."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:  # made meanwhile by another writer; fine if it is a directory
            if not os.path.isdir(directory):
                raise
        fsync_directory(os.path.dirname(directory))


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def list_names(path: str) -> list[str]:
    """The names in a store directory, sorted; [] when it is not there (yet)."""
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def read_json(path: str, default=None):
    """The JSON at path, or default when the file does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default
