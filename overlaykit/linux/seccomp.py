"""A seccomp filter built by libseccomp and loaded into this process.

libseccomp is reached through pyseccomp (ctypes over Debian's libseccomp2, with the API of
libseccomp's own Python binding), imported only by build(), which the container's start must
do before pivot_root and nobody else needs. pyseccomp looks its libraries up with
ctypes.util.find_library, which runs `ldconfig -p` once per library: two processes in every
container start (5-20 ms here), so build() names them by their ABI sonames instead.
The filter is given as plain data (Filter) in the words of Docker's profiles; build() hands
it to libseccomp the way runc does.
"""

from dataclasses import dataclass

EPERM = 1
_UNKNOWN_SYSCALL = -1  # __NR_SCMP_ERROR: a name this libseccomp does not know
_OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
              "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC", "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB"}


@dataclass(frozen=True)
class Rule:
    """One rule: the action for these syscalls when every condition holds.

    A condition is (argument index, SCMP_CMP_* operator, value, value two); for MASKED_EQ
    value is the mask and value two what the masked argument must equal.
    """

    names: tuple[str, ...]
    action: str                       # SCMP_ACT_*
    errno: int | None                 # for SCMP_ACT_ERRNO and SCMP_ACT_TRACE; None: EPERM
    conditions: tuple[tuple[int, str, int, int], ...] = ()


@dataclass(frozen=True)
class Filter:
    default_action: str
    default_errno: int | None
    architectures: tuple[str, ...]    # SCMP_ARCH_*, besides the native one
    rules: tuple[Rule, ...]
    flags: tuple[str, ...] = ()       # SECCOMP_FILTER_FLAG_*


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


def build(spec: Filter):
    """The libseccomp filter for spec, not loaded yet."""
    seccomp = _pyseccomp()
    default = _action(seccomp, spec.default_action, spec.default_errno)
    result = seccomp.SyscallFilter(default)
    result.set_attr(seccomp.Attr.CTL_NNP, 0)  # no_new_privs is --security-opt's choice, not the filter's
    for flag in spec.flags:
        result.set_attr(getattr(seccomp.Attr, _FLAGS[flag]), 1)
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
    return result


def load(built) -> None:
    """Load a filter from build() into this process; it survives execve and cannot be removed."""
    try:
        built.load()
    except OSError as e:
        raise OSError(e.errno, e.strerror, "load the seccomp filter") from None
