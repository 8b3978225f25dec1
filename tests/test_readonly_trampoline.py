"""The exec trampoline where vm.memfd_noexec=2 forbids executable memfds: a file on a
read-only detached tmpfs. The host's sysctl is only read: the end-to-end test sets 2 in a
PID namespace of its own (the value is per PID namespace), which dies with it.
"""

import errno
import os
import platform
import subprocess
import sys

import pytest

from overlaykit.linux.readonly_trampoline import (MEMFD_NOEXEC, memfd_exec_forbidden,
                                                  memfd_noexec_scope, readonly_program)
from overlaykit.linux.trampoline import ALONE_MESSAGE, elf, sealed_trampoline
from tests.test_process_hygiene import exec_program


@pytest.mark.parametrize("scope, forbidden", [(None, False), (0, False), (1, False), (2, True)])
def test_only_memfd_noexec_2_forbids_the_memfd(scope, forbidden):
    assert memfd_exec_forbidden(scope) is forbidden


def test_the_scope_is_read_from_this_pid_namespaces_sysctl():
    """Linux 6.3+ has the sysctl; before it (the 6.1 guest) there is none, and memfds run."""
    if not os.path.exists(MEMFD_NOEXEC):
        assert memfd_noexec_scope() is None
        fd = sealed_trampoline()
        try:
            assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:overlaykit-exec")
        finally:
            os.close(fd)
        return
    with open(MEMFD_NOEXEC) as f:
        assert memfd_noexec_scope() == int(f.read())


def test_the_readonly_trampoline_refuses_every_write():
    fd = readonly_program(elf(platform.machine()))
    try:
        assert oct(os.fstat(fd).st_mode) == "0o100555"
        with pytest.raises(OSError) as raised:
            os.write(fd, b"x")
        assert raised.value.errno == errno.EBADF  # opened for reading only
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
            with pytest.raises(OSError) as raised:
                os.open(f"/proc/self/fd/{fd}", flags)
            assert raised.value.errno == errno.EROFS
        for change in (lambda p: os.chmod(p, 0o777), lambda p: os.truncate(p, 0),
                       lambda p: os.chown(p, 1000, 1000)):
            with pytest.raises(OSError) as raised:
                change(f"/proc/self/fd/{fd}")
            assert raised.value.errno == errno.EROFS
        assert os.readlink(f"/proc/self/fd/{fd}") == "/overlaykit-exec"  # mounted nowhere
    finally:
        os.close(fd)


def test_the_readonly_trampoline_runs_as_the_sealed_one_does():
    program = readonly_program(elf(platform.machine()))
    fd = os.dup(program) if program > 9 else os.dup2(program, 10)  # clear of fd 3
    os.close(program)
    try:
        ran = exec_program(fd, ["/bin/sh", "sh", "-c", "echo $0 $SEEN", "zero"], True)
        assert ran == (0, b"zero yes\n", [])  # end of file on the channel: the exec succeeded
        assert exec_program(fd, ["/no/such", "x"], True) == (126, b"", [b"X" + bytes([errno.ENOENT])])
        assert exec_program(fd, ["/bin/true", "true"], False) == (126, ALONE_MESSAGE, [])
    finally:
        os.close(fd)


def test_a_container_starts_where_memfds_cannot_be_executed(layout, demo):
    """In a PID namespace whose vm.memfd_noexec is 2, an executable memfd (MFD_EXEC, 0x10) is
    refused and overlaykit's containers still start, their /proc/self/exe the read-only
    trampoline (run again, it stops at once, as the sealed one does). Linux 6.3+ only: before
    it no memfd is refused (test_the_scope_is_read_from_this_pid_namespaces_sysctl)."""
    if not os.path.exists(MEMFD_NOEXEC):
        assert memfd_noexec_scope() is None
        return
    with open(MEMFD_NOEXEC) as f:
        host_scope = f.read()
    overlaykit = f"{sys.executable} -m overlaykit --root {layout.root} run --rm --network none"
    script = (f"echo 2 > {MEMFD_NOEXEC} && cat {MEMFD_NOEXEC} && "
              f"{sys.executable} -c 'import os; os.memfd_create(\"x\", 0x10)' 2>&1 | tail -1; "
              f"{overlaykit} {demo} echo started; {overlaykit} {demo} /proc/self/exe; echo exit=$?")
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["2", "PermissionError: [Errno 13] Permission denied",
                                        "started", "exit=126"]
    assert proc.stderr == ALONE_MESSAGE.decode()
    with open(MEMFD_NOEXEC) as f:
        assert f.read() == host_scope  # the host's own value never changed
