"""The cgroup v2 device filter: an allow-list of device rules as a small eBPF program, as runc builds it.

cgroup v2 has no devices.allow; the kernel instead runs a BPF_PROG_TYPE_CGROUP_DEVICE
program on every open and mknod of a device node, with (access << 16 | type, major, minor)
in its context, and refuses the access (EPERM) when it returns 0. The program is a chain
of blocks, one per rule: a block that matches returns 1, one that does not jumps to the
next; the end returns 0. No helpers and no maps, so any kernel since 4.15 takes it.
"""

import os
import struct

from overlaykit.linux.bpf import (ACCESS_MKNOD, ACCESS_READ, ACCESS_WRITE, DEV_BLOCK, DEV_CHAR,
                                  attach_device_program, load_device_program)
from overlaykit.runtime.devices import ANY, DeviceRule

_LDX_W = 0x61      # dst = *(u32 *)(src + off)
_AND32_K = 0x54    # dst &= imm (32 bit)
_RSH32_K = 0x74    # dst >>= imm
_MOV32_X = 0xbc    # dst = src
_MOV32_K = 0xb4    # dst = imm
_JNE_K = 0x55      # if dst != imm: pc += off
_EXIT = 0x95

_TYPES = {"c": DEV_CHAR, "b": DEV_BLOCK}
_ACCESS = {"m": ACCESS_MKNOD, "r": ACCESS_READ, "w": ACCESS_WRITE}


def _insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


def _prologue() -> list[bytes]:
    """r2 = type, r3 = access, r4 = major, r5 = minor (r1 is the context)."""
    return [_insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),
            _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),
            _insn(_LDX_W, 4, 1, 4), _insn(_LDX_W, 5, 1, 8)]


def _block(rule: DeviceRule) -> list[bytes]:
    """Return 1 if the access matches rule; each failed check jumps past the block, to the next."""
    steps = []  # (op, dst, src, imm)
    if rule.type != "a":
        steps.append((_JNE_K, 2, 0, _TYPES[rule.type]))
    allowed = sum(_ACCESS[a] for a in rule.access)
    if allowed != ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE:
        # r1 = access & ~allowed: anything asked beyond the rule's access skips it
        steps += [(_MOV32_X, 1, 3, 0), (_AND32_K, 1, 0, ~allowed), (_JNE_K, 1, 0, 0)]
    if rule.major != ANY:
        steps.append((_JNE_K, 4, 0, rule.major))
    if rule.minor != ANY:
        steps.append((_JNE_K, 5, 0, rule.minor))
    steps += [(_MOV32_K, 0, 0, 1), (_EXIT, 0, 0, 0)]
    return [_insn(op, dst, src, len(steps) - n - 1 if op == _JNE_K else 0, imm)
            for n, (op, dst, src, imm) in enumerate(steps)]


def program(rules: tuple[DeviceRule, ...]) -> bytes:
    """The filter allowing exactly the accesses one of rules allows.

    It ends at the first rule that allows everything (--privileged's `a *:* rwm`): the
    verifier refuses a program with unreachable instructions, so nothing may follow it.
    """
    code = _prologue()
    for rule in rules:
        code += _block(rule)
        if _allows_all(rule):
            return b"".join(code)
    return b"".join(code + [_insn(_MOV32_K, 0, imm=0), _insn(_EXIT)])


def _allows_all(rule: DeviceRule) -> bool:
    return rule.type == "a" and rule.major == ANY and rule.minor == ANY and set(rule.access) == set("mrw")


def attach_filter(cgroup: str, rules: tuple[DeviceRule, ...]) -> None:
    """Load the filter for rules and attach it to the cgroup v2 directory."""
    fd = load_device_program(program(rules), "overlaykit_dev")
    try:
        attach_device_program(cgroup, fd)
    finally:
        os.close(fd)
