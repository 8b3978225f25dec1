"""The errnos a seccomp profile names are the ones a refused syscall gets: a rule's errnoRet,
the profile's defaultErrnoRet, and EPERM where the profile names none, as runc gives them.

clone3 answered with ENOSYS (moby's rule) is what makes glibc fall back to clone; everything
the profile does not allow gets its defaultErrnoRet (EPERM in Docker's profile).
"""

import ctypes
import errno
import json
import os
import platform

from overlaykit.linux.seccomp import compile_program, load
from overlaykit.runtime.seccomp import DEFAULT_PROFILE, default_profile, filter_for
from overlaykit.runtime.security import capabilities
from tests.test_seccomp import probe

CLONE_NEWUSER = 0x10000000
NUMBERS = {"x86_64": {"clone3": 435, "unshare": 272}, "aarch64": {"clone3": 435, "unshare": 97}}


def _errnos_under(spec) -> dict[str, int]:
    """Load the filter built from spec in a forked child of this test and call clone3 and
    unshare(CLONE_NEWUSER) there through syscall(2); the errno each got (0: it ran)."""
    numbers = NUMBERS[platform.machine()]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            load(compile_program(spec))
            found = {}
            for name, args in (("clone3", (0, 0)), ("unshare", (CLONE_NEWUSER,))):
                ret = libc.syscall(ctypes.c_long(numbers[name]), *(ctypes.c_long(a) for a in args))
                found[name] = ctypes.get_errno() if ret < 0 else 0
            os.write(write_end, json.dumps(found).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_the_default_filter_gives_clone3_enosys_and_a_refused_call_eperm():
    caps = set(capabilities({}))
    assert _errnos_under(filter_for(default_profile(), caps)) == {
        "clone3": errno.ENOSYS, "unshare": errno.EPERM}


def test_with_cap_sys_admin_clone3_reaches_the_kernel():
    caps = set(capabilities({"CapAdd": ["CAP_SYS_ADMIN"]}))
    found = _errnos_under(filter_for(default_profile(), caps))
    assert found["clone3"] == errno.EINVAL  # the kernel read clone3's (empty) arguments


def test_a_profiles_default_errno_ret_is_what_refused_calls_get(cli, demo, tmp_path):
    with open(DEFAULT_PROFILE) as f:
        profile = json.load(f)
    profile["defaultErrnoRet"] = errno.EOPNOTSUPP
    path = tmp_path / "eopnotsupp.json"
    path.write_text(json.dumps(profile))
    found = probe(cli, demo, "--security-opt", f"seccomp={path}")
    assert found["unshare_newuser"] == "Operation not supported"  # defaultErrnoRet
    assert found["userfaultfd"] == "Operation not supported"
    assert found["clone3"] == "Function not implemented"  # the rule's own errnoRet wins
    assert found["personality_query"] == "ok" and found["fork"] == 7


def test_an_errno_rule_without_errno_ret_refuses_with_eperm(cli, demo, tmp_path):
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    proc = cli("run", "--rm", "--security-opt", f"seccomp={path}", demo, "mkdir", "/newdir")
    assert proc.returncode == 1
    assert proc.stderr == "mkdir: can't create directory '/newdir': Operation not permitted\n"
