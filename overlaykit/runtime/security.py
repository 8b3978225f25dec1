"""A container's privileges, with Docker's options and meaning: capabilities, seccomp, no_new_privs.

`--cap-add`/`--cap-drop` (names with or without CAP_, or ALL) change Docker's default set as
moby's TweakCapabilities does; `--privileged` gives every capability and no seccomp filter;
`--security-opt seccomp=unconfined|PROFILE.json` and `no-new-privileges`. They are checked
when the container is made and recorded in HostConfig as Docker records them (a profile file's
JSON is kept in SecurityOpt as "seccomp=<json>"), so start and exec read the same choice.
"""

import json
from typing import NamedTuple

from overlaykit.errors import OverlaykitError
from overlaykit.linux.capabilities import DOCKER_DEFAULT, NAMES, NUMBERS, known
from overlaykit.linux.seccomp import Program
from overlaykit.runtime.seccomp import Profile, default_profile, filter_for, parse_text
from overlaykit.store.layout import Layout

ALL = "ALL"
_TRUE = ("1", "t", "T", "TRUE", "true", "True")    # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
# LSM options a Docker user passes to turn an LSM off: overlaykit applies none, so they hold already.
_NO_LSM = ("apparmor=unconfined", "label=disable", "label:disable")


class Security(NamedTuple):
    """What a container's processes may do, read from its record."""

    capabilities: tuple[str, ...]   # the bounding set, by name
    seccomp: Profile | None         # None: no filter
    no_new_privileges: bool


class Confinement(NamedTuple):
    """Security made ready before the fork, for the child to apply: the filter compiled."""

    capabilities: frozenset[int]
    seccomp: Program | None         # the seccomp program, not loaded yet
    no_new_privileges: bool


def _normalize(caps: tuple[str, ...] | list[str]) -> list[str]:
    """The Docker CLI's EffectiveCapAddCapDrop half: upper case, CAP_ added, ALL kept, sorted."""
    names = set()
    for cap in caps:
        cap = cap.strip().upper()
        if cap:
            names.add(cap if cap == ALL or cap.startswith("CAP_") else "CAP_" + cap)
    return sorted(names)


def _check_caps(caps: list[str], option: str, command: str) -> None:
    for cap in caps:
        if cap != ALL and cap not in NUMBERS:
            raise OverlaykitError(f'{command}: {option}: unknown capability: "{cap}"')


def _split(opt: str) -> tuple[str, str | None]:
    """KEY=VALUE (or Docker's old KEY:VALUE) of a --security-opt; a bare word has no value."""
    for sep in ("=", ":"):
        if sep in opt:
            key, _, value = opt.partition(sep)
            return key, value
    return opt, None


def _security_opts(opts: tuple[str, ...], command: str) -> list[str]:
    """The --security-opt list as recorded: checked, a profile file replaced by its JSON."""
    recorded = []
    for opt in (o.strip() for o in opts):
        key, value = _split(opt)
        where = f"{command}: --security-opt {opt}"
        if opt in _NO_LSM:
            pass
        elif key == "no-new-privileges":
            if value is not None and value not in _TRUE + _FALSE:
                raise OverlaykitError(f"{where}: the value must be true or false")
        elif key == "seccomp" and value:
            if value not in ("unconfined", "builtin"):
                opt = f"seccomp={_read_profile(value, f'{command}: --security-opt seccomp={value}')}"
        elif key in ("apparmor", "label"):
            raise OverlaykitError(f"{where}: overlaykit applies no AppArmor or SELinux profile")
        else:
            raise OverlaykitError(f"{where}: not one of seccomp=unconfined|PROFILE.json, "
                                  f"no-new-privileges[=true|false]")
        recorded.append(opt)
    return recorded


def _read_profile(path: str, where: str) -> str:
    """A profile file's JSON, compact, once it is known to be a profile overlaykit can load."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except OSError as e:
        raise OverlaykitError(f"{where}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise OverlaykitError(f"{where}: not a JSON seccomp profile: not UTF-8") from None
    parse_text(text, where)
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


def host_config(privileged: bool, cap_add: tuple[str, ...], cap_drop: tuple[str, ...],
                security_opt: tuple[str, ...], command: str) -> dict:
    """HostConfig's Privileged, CapAdd, CapDrop and SecurityOpt, as Docker records them.

    As the Docker CLI: a capability both added and dropped is added, and ALL on one side
    stands for every capability there.
    """
    add, drop = _normalize(cap_add), _normalize(cap_drop)
    _check_caps(add, "--cap-add", command)
    _check_caps(drop, "--cap-drop", command)
    if ALL in add:
        add = [ALL]
    if ALL in drop:
        drop = [ALL]
    drop = [c for c in drop if c not in add]
    opts = _security_opts(security_opt, command)
    return {"Privileged": privileged, "CapAdd": add or None, "CapDrop": drop or None,
            "SecurityOpt": opts or None}


def capabilities(host: dict) -> tuple[str, ...]:
    """moby's TweakCapabilities: the container's bounding set from HostConfig."""
    every = known()
    add, drop = host.get("CapAdd") or [], host.get("CapDrop") or []
    if host.get("Privileged"):
        caps = list(every)
    elif ALL in add:
        caps = [c for c in every if c not in drop]
    elif ALL in drop:
        caps = list(add)
    else:
        caps = [c for c in DOCKER_DEFAULT if c not in drop] + [c for c in add if c not in DOCKER_DEFAULT]
    return tuple(c for c in NAMES if c in caps and c in every)


def security_of(host: dict) -> Security:
    """A recorded container's Security; a record from before these options is Docker's default."""
    no_new_privileges, seccomp = False, "builtin"
    for opt in host.get("SecurityOpt") or []:
        key, value = _split(opt)
        if key == "no-new-privileges":
            no_new_privileges = value is None or value in _TRUE
        elif key == "seccomp":
            seccomp = value
    if host.get("Privileged") or seccomp == "unconfined":
        profile = None
    elif seccomp == "builtin":
        profile = default_profile()
    else:
        profile = parse_text(seccomp, "the container's seccomp profile")
    return Security(capabilities(host), profile, no_new_privileges)


def prepare(layout: Layout, security: Security) -> Confinement:
    """Compile the seccomp filter (or take it from the store's cache of them) on the host's
    side, so the child only loads it, and libseccomp never runs in a container's namespaces."""
    program = None
    if security.seccomp is not None:
        from overlaykit.runtime.seccomp_programs import program_for
        program = program_for(layout, filter_for(security.seccomp, set(security.capabilities)))
    return Confinement(frozenset(NUMBERS[c] for c in security.capabilities), program,
                       security.no_new_privileges)
