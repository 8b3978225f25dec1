"""The exec trampoline: a tiny static ELF in a sealed memfd, so no container can reach a writable host binary.

CVE-2019-5736: a process the container can see that runs the host's Python exposes it as
/proc/<pid>/exe (and a `#!/proc/self/exe` entrypoint re-runs it); once nothing runs it, the
container could open it for writing. runc re-execs itself from a sealed memfd copy; overlaykit
does not re-exec Python (that would double the start cost) but makes its final exec through
this program instead: the command's process briefly runs the trampoline, whose
/proc/self/exe is a memfd that refuses every write, and the trampoline execs the command.

The contract, kept by exec_trampoline:
  argv = [path, command argv...], envp = the command's environment;
  fd 3 = the report channel, open and inheritable.
The trampoline marks fd 3 close-on-exec, execve(argv[0], &argv[1], envp) and, only if that
fails, writes b"X" + the errno byte to fd 3 and exits 126, so the parent still sees end of
file exactly when the command runs and a message naming the errno when it does not. Run any
other way (fd 3 closed or close-on-exec: by `#!/proc/self/exe`, or a container process
exec'ing /proc/<pid>/exe) it writes ALONE_MESSAGE to stderr and exits 126, so every loop
through /proc/self/exe ends at the second hop.
"""

import errno
import fcntl
import os
import struct
from typing import NoReturn

from overlaykit.linux.readonly_trampoline import (memfd_exec_forbidden, memfd_noexec_scope,
                                                  readonly_program)

REPORT_FD = 3
ALONE_MESSAGE = (b"overlaykit: /proc/self/exe is overlaykit's exec trampoline: "
                 b"it runs no command on its own\n")

_MFD_EXEC = 0x10  # Linux 6.3+: executable even under vm.memfd_noexec=1 (and no warning)
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_BASE = 0x400000  # where the one PT_LOAD segment (the whole file) is mapped
_MESSAGE_AT = 0x88  # the message follows the code on both architectures (asserted below)


def _x86_64() -> list[bytes]:
    """syscall numbers (eax): fcntl 72, execve 59, write 1, exit_group 231; arguments in
    rdi, rsi, rdx. The kernel's initial stack: argc, argv[0..argc-1], NULL, envp..."""
    return [
        bytes.fromhex("bf03000000"),        # mov edi, 3
        bytes.fromhex("be01000000"),        # mov esi, 1            F_GETFD
        bytes.fromhex("b848000000"),        # mov eax, 72           fcntl
        bytes.fromhex("0f05"),              # syscall
        bytes.fromhex("4885c0"),            # test rax, rax
        bytes.fromhex("754e"),              # jnz refuse            closed (-EBADF) or close-on-exec (1)
        bytes.fromhex("bf03000000"),        # mov edi, 3
        bytes.fromhex("be02000000"),        # mov esi, 2            F_SETFD
        bytes.fromhex("ba01000000"),        # mov edx, 1            FD_CLOEXEC
        bytes.fromhex("b848000000"),        # mov eax, 72           fcntl
        bytes.fromhex("0f05"),              # syscall
        bytes.fromhex("488b0c24"),          # mov rcx, [rsp]        argc
        bytes.fromhex("488b7c2408"),        # mov rdi, [rsp+8]      argv[0]: the path
        bytes.fromhex("488d742410"),        # lea rsi, [rsp+16]     &argv[1]: the command's argv
        bytes.fromhex("488d54cc10"),        # lea rdx, [rsp+rcx*8+16]  envp, past argv's NULL
        bytes.fromhex("b83b000000"),        # mov eax, 59           execve
        bytes.fromhex("0f05"),              # syscall               returns only on failure: -errno
        bytes.fromhex("f7d8"),              # neg eax
        bytes.fromhex("c1e008"),            # shl eax, 8
        bytes.fromhex("b058"),              # mov al, 'X'
        bytes.fromhex("50"),                # push rax              "X", errno
        bytes.fromhex("bf03000000"),        # mov edi, 3
        bytes.fromhex("4889e6"),            # mov rsi, rsp
        bytes.fromhex("ba02000000"),        # mov edx, 2
        bytes.fromhex("b801000000"),        # mov eax, 1            write
        bytes.fromhex("0f05"),              # syscall
        bytes.fromhex("eb18"),              # jmp out
        # refuse:
        bytes.fromhex("bf02000000"),        # mov edi, 2
        bytes.fromhex("488d3518000000"),    # lea rsi, [rip+0x18]   message
        b"\xba" + struct.pack("<I", len(ALONE_MESSAGE)),  # mov edx, len(message)
        bytes.fromhex("b801000000"),        # mov eax, 1            write
        bytes.fromhex("0f05"),              # syscall
        # out:
        bytes.fromhex("bf7e000000"),        # mov edi, 126
        bytes.fromhex("b8e7000000"),        # mov eax, 231          exit_group
        bytes.fromhex("0f05"),              # syscall
    ]


def _aarch64() -> list[bytes]:
    """syscall numbers (x8): fcntl 25, execve 221, write 64, exit_group 94; arguments in x0-x2."""
    words = [
        0xd2800060,  # mov x0, #3
        0xd2800021,  # mov x1, #1              F_GETFD
        0xd2800328,  # mov x8, #25             fcntl
        0xd4000001,  # svc #0
        0xb50002c0,  # cbnz x0, refuse         closed (-EBADF) or close-on-exec (1)
        0xd2800060,  # mov x0, #3
        0xd2800041,  # mov x1, #2              F_SETFD
        0xd2800022,  # mov x2, #1              FD_CLOEXEC
        0xd2800328,  # mov x8, #25             fcntl
        0xd4000001,  # svc #0
        0xf94003e3,  # ldr x3, [sp]            argc
        0xf94007e0,  # ldr x0, [sp, #8]        argv[0]: the path
        0x910043e1,  # add x1, sp, #16         &argv[1]: the command's argv
        0x8b030c22,  # add x2, x1, x3, lsl #3  envp, past argv's NULL
        0xd2801ba8,  # mov x8, #221            execve
        0xd4000001,  # svc #0                  returns only on failure: -errno
        0xcb0003e0,  # neg x0, x0
        0xd378dc00,  # lsl x0, x0, #8
        0x91016000,  # add x0, x0, #'X'
        0xf81f0fe0,  # str x0, [sp, #-16]!     "X", errno
        0x910003e1,  # mov x1, sp
        0xd2800060,  # mov x0, #3
        0xd2800042,  # mov x2, #2
        0xd2800808,  # mov x8, #64             write
        0xd4000001,  # svc #0
        0x14000006,  # b out
        # refuse:
        0xd2800040,  # mov x0, #2
        0x100000e1,  # adr x1, message
        0xd2800002 | len(ALONE_MESSAGE) << 5,  # mov x2, #len(message)
        0xd2800808,  # mov x8, #64             write
        0xd4000001,  # svc #0
        # out:
        0xd2800fc0,  # mov x0, #126
        0xd2800bc8,  # mov x8, #94             exit_group
        0xd4000001,  # svc #0
    ]
    return [struct.pack("<I", word) for word in words]


_MACHINES = {"x86_64": (62, _x86_64), "aarch64": (183, _aarch64)}  # e_machine, code


def elf(machine: str) -> bytes:
    """The trampoline as an ELF64 executable: header, PT_LOAD (r-x, the whole file),
    PT_GNU_STACK (rw-), code, message."""
    e_machine, instructions = _MACHINES[machine]
    code = b"".join(instructions())
    assert len(code) == _MESSAGE_AT and len(ALONE_MESSAGE) < 4096
    header_size, phdr_size = 64, 56
    start = header_size + 2 * phdr_size
    size = start + len(code) + len(ALONE_MESSAGE)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, _BASE + start, header_size, 0,
                                 0, header_size, phdr_size, 2, 64, 0, 0)  # ET_EXEC, no sections
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x10000)  # PT_LOAD, R+X
    stack = struct.pack("<IIQQQQQQ", 0x6474e551, 6, 0, 0, 0, 0, 0, 16)  # PT_GNU_STACK, RW
    return header + load + stack + code + ALONE_MESSAGE


def sealed_trampoline() -> int:
    """A close-on-exec memfd holding this machine's trampoline, sealed against every change;
    where vm.memfd_noexec=2 forbids executing memfds, the same program on a read-only
    detached tmpfs instead (linux/readonly_trampoline.py)."""
    machine = os.uname().machine
    if machine not in _MACHINES:
        raise OSError(errno.ENOSYS, f"no exec trampoline for {machine}", "memfd_create")
    if memfd_exec_forbidden(memfd_noexec_scope()):
        return readonly_program(elf(machine))
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create("overlaykit-exec", flags | _MFD_EXEC)
    except OSError as e:
        if e.errno != errno.EINVAL:  # before 6.3, MFD_EXEC is unknown (and every memfd executable)
            raise
        fd = os.memfd_create("overlaykit-exec", flags)
    try:
        os.write(fd, elf(machine))
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exec_trampoline(trampoline: int, report: int, path: str, argv: list[str],
                    env: dict[str, str]) -> NoReturn:
    """execveat(trampoline, "", [path, *argv], env, AT_EMPTY_PATH) with report as fd 3 (fexecve).

    The caller has made every other fd close-on-exec. On failure the OSError names the
    trampoline: the command itself was never tried.
    """
    if trampoline == REPORT_FD:
        trampoline = fcntl.fcntl(trampoline, fcntl.F_DUPFD_CLOEXEC, REPORT_FD + 1)
    os.dup2(report, REPORT_FD)
    os.set_inheritable(REPORT_FD, True)  # dup2 onto itself would leave close-on-exec as it was
    try:
        os.execve(trampoline, [path, *argv], env)
    except OSError as e:
        raise OSError(e.errno, e.strerror, "exec trampoline") from None
