"""Compiled seccomp programs kept in the store: libseccomp runs once per filter, not at every start.

Compiling Docker's profile through libseccomp cost 15-30 ms of every container start (and the
import of pyseccomp); the program it makes depends only on the filter (the profile weighed for
the container's capabilities, this architecture and kernel), the libseccomp that compiled it and
overlaykit's version. So it is kept under seccomp/<key>.bpf, key the sha256 of those, and a
start reads it back. The file holds the sha256 of its own code first: a file cut by a power cut
or altered is compiled again, never loaded, since a cut program can still be one the kernel
accepts, and a weaker filter.
"""

import hashlib
import os

from overlaykit import __version__
from overlaykit.linux.seccomp import Filter, Program, compile_program, flags_of, library_version
from overlaykit.store.files import write_bytes
from overlaykit.store.layout import Layout

_DIGEST = hashlib.sha256().digest_size


def program_for(layout: Layout, spec: Filter) -> Program:
    """spec's program: the one kept in the store, or compiled now and kept."""
    origin = repr((__version__, library_version(), os.uname().machine, spec))
    path = layout.seccomp_program(hashlib.sha256(origin.encode()).hexdigest())
    code = _read(path)
    if code is not None:
        return Program(code, flags_of(spec))
    program = compile_program(spec)
    try:
        write_bytes(path, hashlib.sha256(program.code).digest() + program.code)
    except OSError:
        pass  # a full or read-only store costs the next start this compile again, nothing else
    return program


def _read(path: str) -> bytes | None:
    """The code kept at path, if it is whole."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    digest, code = data[:_DIGEST], data[_DIGEST:]
    return code if code and hashlib.sha256(code).digest() == digest else None
