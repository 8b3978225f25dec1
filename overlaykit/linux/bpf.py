"""bpf(2), only what a cgroup v2 device filter needs: load a BPF_PROG_TYPE_CGROUP_DEVICE program
and attach it to a cgroup (BPF_CGROUP_DEVICE), where v1 had devices.allow and devices.deny.

glibc has no wrapper, so it is called through syscall(2). A program attached with BPF_PROG_ATTACH stays
attached after its fd is closed, until the cgroup is removed.
"""

import ctypes
import os

from overlaykit.linux.libc import syscall

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6

# struct bpf_cgroup_dev_ctx (include/uapi/linux/bpf.h): access_type is (access << 16) | type
DEV_BLOCK, DEV_CHAR = 1, 2
ACCESS_MKNOD, ACCESS_READ, ACCESS_WRITE = 1, 2, 4


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]


class _ProgAttach(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


def _bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    return syscall("bpf", ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)),
                   what=what)


def load_device_program(code: bytes, name: str) -> int:
    """Load a cgroup device program (8-byte instructions); its fd. The verifier's log is in the error."""
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(65536)
    attr = _ProgLoad(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(code) // 8,
                     insns=ctypes.addressof(insns), license=ctypes.addressof(license),
                     log_level=1, log_size=len(log), log_buf=ctypes.addressof(log),
                     prog_name=name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr, f"bpf load {name}")
    except OSError as e:
        verifier = log.value.decode(errors="replace").strip().splitlines()
        if verifier:
            raise OSError(e.errno, f"{e.strerror} (verifier: {verifier[-1]})", e.filename) from None
        raise


def attach_device_program(cgroup: str, program_fd: int) -> None:
    """Attach the program to the cgroup (a cgroup v2 directory); no cgroup below may override it."""
    target = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _bpf(BPF_PROG_ATTACH, _ProgAttach(target_fd=target, attach_bpf_fd=program_fd,
                                          attach_type=BPF_CGROUP_DEVICE), f"bpf attach {cgroup}")
    finally:
        os.close(target)
