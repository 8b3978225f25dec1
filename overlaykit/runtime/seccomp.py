"""Docker's seccomp profiles, in Docker's JSON format: checked when a container is made, weighed at its start.

The default is moby's profiles/seccomp/default.json, shipped unmodified (profiles/NOTICE).
A profile's rules are weighed as moby's setupSeccomp does: a rule's "includes" must all hold
and none of its "excludes" may, against the container's bounding capabilities, the host's
architecture (Go's name: amd64, arm64) and kernel version; "archMap" picks the native
architecture's sub-architectures. What is left goes to libseccomp as runc gives it.
"""

import json
import os
from typing import NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux.release import kernel_version
from overlaykit.linux.seccomp import Filter, Rule

DEFAULT_PROFILE = os.path.join(os.path.dirname(__file__), "profiles", "seccomp-default.json")
# overlaykit's default is stricter than Docker's profile here: the keyrings are not namespaced.
KEYRING_SYSCALLS = ("add_key", "keyctl", "request_key")

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
ARCHITECTURES = tuple("SCMP_ARCH_" + a for a in (
    "X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL",
    "MIPSEL64", "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC",
    "PARISC64", "RISCV64"))
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")

# os.uname().machine -> (the name profiles' "arches" use, libseccomp's name of it)
_NATIVE = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
           "i686": ("x86", "SCMP_ARCH_X86"), "armv7l": ("arm", "SCMP_ARCH_ARM"),
           "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
           "riscv64": ("riscv64", "SCMP_ARCH_RISCV64")}


class Condition(NamedTuple):
    """A rule's "includes" or "excludes"."""

    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None


class Syscalls(NamedTuple):
    """One entry of "syscalls"."""

    rule: Rule
    includes: Condition
    excludes: Condition


class Profile(NamedTuple):
    """A profile as read from Docker's JSON, checked; weighed against a container's start to make a Filter."""

    default_action: str
    default_errno: int | None
    architectures: tuple[str, ...]
    arch_map: tuple[tuple[str, tuple[str, ...]], ...]
    syscalls: tuple[Syscalls, ...]
    flags: tuple[str, ...]


def default_profile() -> Profile:
    """Docker's default profile, less the keyring syscalls."""
    with open(DEFAULT_PROFILE) as f:
        profile = parse(json.load(f), DEFAULT_PROFILE)
    return _without(profile, KEYRING_SYSCALLS)


def _without(profile: Profile, names: tuple[str, ...]) -> Profile:
    """profile with names taken out of its rules, so the default action (refusal) applies to them."""
    def strip(entry: Syscalls) -> Syscalls:
        kept = tuple(n for n in entry.rule.names if n not in names)
        return Syscalls(Rule(kept, entry.rule.action, entry.rule.errno, entry.rule.conditions),
                        entry.includes, entry.excludes)
    return Profile(profile.default_action, profile.default_errno, profile.architectures,
                   profile.arch_map, tuple(strip(s) for s in profile.syscalls), profile.flags)


def parse_text(text: str, where: str) -> Profile | None:
    """A profile from its JSON text; None for a profile that asks for nothing (Docker: unconfined)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise OverlaykitError(f"{where}: not a JSON seccomp profile: {e}") from None
    if isinstance(data, dict) and not data.get("defaultAction") and not data.get("syscalls"):
        return None
    return parse(data, where)


def _fail(where: str, what: str):
    raise OverlaykitError(f"{where}: {what}")


def _strings(value, where: str, name: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(where, f"{name} must be a list of strings")
    for v in value:
        if allowed is not None and v not in allowed:
            _fail(where, f"{name}: unknown value {v!r}")
    return tuple(value)


def _errno(value, where: str, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 4096:
        _fail(where, f"{name} must be an errno number (0 to 4095)")
    return value


def _object(value, where: str, name: str) -> dict:
    if not isinstance(value, dict):
        _fail(where, f"{name} must be an object")
    return value


def _kernel(value, where: str, name: str) -> tuple[int, int] | None:
    """"<kernel>.<major>", as moby's KernelVersion."""
    if value is None or value == "":
        return None
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts == ["0", "0"]:
        _fail(where, f'{name}: {value!r} is not a kernel version "<kernel>.<major>"')
    return int(parts[0]), int(parts[1])


def _condition(value, where: str, name: str) -> Condition:
    if value is None:
        return Condition()
    value = _object(value, where, name)
    return Condition(_strings(value.get("caps"), where, f"{name}.caps"),
                     _strings(value.get("arches"), where, f"{name}.arches"),
                     _kernel(value.get("minKernel"), where, f"{name}.minKernel"))


def _argument(value, where: str, name: str) -> tuple[int, str, int, int]:
    value = _object(value, where, name)
    index, op = value.get("index"), value.get("op")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 5:
        _fail(where, f"{name}.index must be an argument number, 0 to 5")
    if op not in OPERATORS:
        _fail(where, f"{name}.op: {op!r} is not one of {', '.join(OPERATORS)}")
    numbers = []
    for key in ("value", "valueTwo"):
        number = value.get(key, 0)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2 ** 64:
            _fail(where, f"{name}.{key} must be a number from 0 to 2^64-1")
        numbers.append(number)
    return index, op, numbers[0], numbers[1]


def _action(value, where: str, name: str) -> str:
    if value == "SCMP_ACT_NOTIFY":
        _fail(where, f"{name}: SCMP_ACT_NOTIFY needs a seccomp agent, which overlaykit does not run")
    if value not in ACTIONS:
        _fail(where, f"{name}: {value!r} is not one of {', '.join(ACTIONS)}")
    return value


def _syscalls(value, where: str, name: str) -> Syscalls:
    value = _object(value, where, name)
    names = _strings(value.get("names"), where, f"{name}.names")
    if value.get("name"):
        if names:
            _fail(where, f"{name}: both 'name' and 'names' are given, use either 'name' or 'names'")
        if not isinstance(value["name"], str):
            _fail(where, f"{name}.name must be a string")
        names = (value["name"],)
    args = value.get("args") or []
    if not isinstance(args, list):
        _fail(where, f"{name}.args must be a list")
    rule = Rule(names, _action(value.get("action"), where, f"{name}.action"),
                _errno(value.get("errnoRet"), where, f"{name}.errnoRet"),
                tuple(_argument(a, where, f"{name}.args[{i}]") for i, a in enumerate(args)))
    return Syscalls(rule, _condition(value.get("includes"), where, f"{name}.includes"),
                    _condition(value.get("excludes"), where, f"{name}.excludes"))


def parse(data, where: str) -> Profile:
    """Check a profile decoded from Docker's JSON format; every fault is one line naming its place."""
    data = _object(data, where, "the profile")
    if data.get("listenerPath"):
        _fail(where, "listenerPath: overlaykit runs no seccomp agent")
    architectures = _strings(data.get("architectures"), where, "architectures", ARCHITECTURES)
    arch_map = data.get("archMap") or []
    if architectures and arch_map:
        _fail(where, "both 'architectures' and 'archMap' are given, use either 'architectures' or 'archMap'")
    if not isinstance(arch_map, list):
        _fail(where, "archMap must be a list")
    entries = []
    for i, entry in enumerate(arch_map):
        entry = _object(entry, where, f"archMap[{i}]")
        arch = entry.get("architecture")
        if arch not in ARCHITECTURES:
            _fail(where, f"archMap[{i}].architecture: unknown value {arch!r}")
        entries.append((arch, _strings(entry.get("subArchitectures"), where,
                                       f"archMap[{i}].subArchitectures", ARCHITECTURES)))
    syscalls = data.get("syscalls") or []
    if not isinstance(syscalls, list):
        _fail(where, "syscalls must be a list")
    return Profile(_action(data.get("defaultAction"), where, "defaultAction"),
                   _errno(data.get("defaultErrnoRet"), where, "defaultErrnoRet"),
                   architectures, tuple(entries),
                   tuple(_syscalls(s, where, f"syscalls[{i}]") for i, s in enumerate(syscalls)),
                   _strings(data.get("flags"), where, "flags", FLAGS))


def _applies(entry: Syscalls, capabilities: set[str], arch: str, kernel: tuple[int, int]) -> bool:
    """moby's setupSeccomp: any exclude that holds drops the rule, every include must hold."""
    out, into = entry.excludes, entry.includes
    if arch in out.arches or any(c in capabilities for c in out.caps):
        return False
    if out.min_kernel is not None and kernel >= out.min_kernel:
        return False
    if into.arches and arch not in into.arches:
        return False
    if not all(c in capabilities for c in into.caps):
        return False
    return into.min_kernel is None or kernel >= into.min_kernel


def filter_for(profile: Profile, capabilities: set[str]) -> Filter:
    """The filter profile gives a container whose bounding set is capabilities, on this host."""
    arch, seccomp_arch = _NATIVE.get(os.uname().machine, (os.uname().machine, ""))
    architectures = profile.architectures
    for native, subs in profile.arch_map:
        if native == seccomp_arch:
            architectures = (native, *subs)
            break
    kernel = kernel_version()
    rules = tuple(e.rule for e in profile.syscalls
                  if e.rule.names and _applies(e, capabilities, arch, kernel))
    return Filter(profile.default_action, profile.default_errno, architectures, rules,
                  profile.flags)
