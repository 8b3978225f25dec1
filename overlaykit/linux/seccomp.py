"""A seccomp filter compiled by libseccomp into a classic BPF program, and loaded by seccomp(2).

The filter is given as plain data (Filter) in the words of Docker's profiles; compile_program()
hands it to libseccomp the way runc does and takes back the program libseccomp would load (its
export_bpf), so a caller can keep it: load() is then one syscall, with no libseccomp at all.
libseccomp is reached through pyseccomp (ctypes over Debian's libseccomp2, with the API of
libseccomp's own Python binding), imported only by compile_program(). pyseccomp looks its
libraries up with ctypes.util.find_library, which runs `ldconfig -p` once per library, so they
are named by their ABI sonames instead.
"""

import ctypes
import os
from errno import EINVAL, EPERM
from typing import NamedTuple

from overlaykit.linux.libc import syscall

_UNKNOWN_SYSCALL = -1  # __NR_SCMP_ERROR: a name this libseccomp does not know
_OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
              "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# seccomp(2)'s flags (linux/seccomp.h), which libseccomp's CTL_TSYNC, CTL_LOG and CTL_SSB set
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
SECCOMP_SET_MODE_FILTER = 1
INSTRUCTION_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class Rule(NamedTuple):
    """One rule: the action for these syscalls when every condition holds.

    A condition is (argument index, SCMP_CMP_* operator, value, value two); for MASKED_EQ
    value is the mask and value two what the masked argument must equal.
    """

    names: tuple[str, ...]
    action: str                       # SCMP_ACT_*
    errno: int | None                 # for SCMP_ACT_ERRNO and SCMP_ACT_TRACE; None: EPERM
    conditions: tuple[tuple[int, str, int, int], ...] = ()


class Filter(NamedTuple):
    """A filter as plain data in the words of Docker's profiles, for compile_program() to hand over."""

    default_action: str
    default_errno: int | None
    architectures: tuple[str, ...]    # SCMP_ARCH_*, besides the native one
    rules: tuple[Rule, ...]
    flags: tuple[str, ...] = ()       # SECCOMP_FILTER_FLAG_*


class Program(NamedTuple):
    """A compiled filter: its BPF instructions as the kernel takes them, and seccomp(2)'s flags."""

    code: bytes
    flags: int


def _action(seccomp, name: str, errno: int | None) -> int:
    """libseccomp's value of a Docker action name."""
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(EPERM if errno is None else errno)
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(EPERM if errno is None else errno)
    return {"SCMP_ACT_KILL": seccomp.KILL, "SCMP_ACT_KILL_THREAD": seccomp.KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": seccomp.KILL_PROCESS, "SCMP_ACT_TRAP": seccomp.TRAP,
            "SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_LOG": seccomp.LOG}[name]


def _condition_sets(seccomp, conditions) -> list[list]:
    """runc's rule: conditions on different arguments must all hold (one rule), but two on
    the same argument are alternatives (one rule each)."""
    args = [seccomp.Arg(index, _OPERATORS[op], value, value_two)
            for index, op, value, value_two in conditions]
    indexes = [index for index, _, _, _ in conditions]
    if len(set(indexes)) < len(indexes):
        return [[arg] for arg in args]
    return [args]


_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}  # glibc's and libseccomp2's ABI names


def _pyseccomp():
    """pyseccomp, imported with its two find_library calls answered without running ldconfig
    (any other name is still looked up as usual)."""
    import ctypes.util
    find_library = ctypes.util.find_library
    ctypes.util.find_library = lambda name: _SONAMES.get(name) or find_library(name)
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = find_library
    return pyseccomp


def compile_program(spec: Filter) -> Program:
    """The program libseccomp makes of spec (for this libseccomp and this machine)."""
    seccomp = _pyseccomp()
    default = _action(seccomp, spec.default_action, spec.default_errno)
    result = seccomp.SyscallFilter(default)
    for arch in spec.architectures:
        value = getattr(seccomp.Arch, arch.removeprefix("SCMP_ARCH_"))
        if not result.exist_arch(value):
            result.add_arch(value)
    for rule in spec.rules:
        action = _action(seccomp, rule.action, rule.errno)
        if action == default:
            continue  # libseccomp refuses a rule that changes nothing
        for name in rule.names:
            number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
            if number == _UNKNOWN_SYSCALL:
                continue  # newer than this libseccomp: skipped, as runc does
            for args in _condition_sets(seccomp, rule.conditions):
                try:
                    result.add_rule(action, number, *args)
                except OSError as e:
                    raise OSError(e.errno, e.strerror, f"seccomp rule for {name}") from None
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        with open(fd, "w+b", closefd=False) as out:
            result.export_bpf(out)
            out.seek(0)
            code = out.read()
    finally:
        os.close(fd)
    return Program(code, flags_of(spec))


def flags_of(spec: Filter) -> int:
    """seccomp(2)'s flags for spec's SECCOMP_FILTER_FLAG_* names."""
    return sum(FLAGS[flag] for flag in spec.flags)


def library_version() -> str:
    """libseccomp's version: a program compiled by one libseccomp is kept for that one only."""
    lib = ctypes.CDLL(_SONAMES["seccomp"])
    lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
    return ".".join(str(n) for n in lib.seccomp_version().contents)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load(program: Program) -> None:
    """Load program into this process; it survives execve and cannot be removed. Without
    no_new_privs the kernel asks for CAP_SYS_ADMIN, which the caller must still have."""
    count, rest = divmod(len(program.code), INSTRUCTION_SIZE)
    if rest or not 0 < count <= 0xFFFF:
        raise OSError(EINVAL, f"a seccomp program of {len(program.code)} bytes", "load the seccomp filter")
    code = ctypes.create_string_buffer(program.code, len(program.code))
    fprog = _SockFprog(count, ctypes.addressof(code))
    syscall("seccomp", ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(program.flags),
            ctypes.byref(fprog), what="load the seccomp filter")
