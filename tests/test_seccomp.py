"""The seccomp filter and no_new_privs, seen from inside real containers.

Busybox (the demo image) cannot make a raw syscall, so the probe is the host's Python, bound
read-only into the container (/usr, and /lib, /lib64 for its loader): it calls each syscall
through ctypes and prints the errno it got.
"""

import json
import platform
import time

import pytest

HOST_PYTHON = ("-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro")

# name: (x86_64 number, aarch64 number, arguments)
CLONE_NEWUSER, SIGCHLD, AF_VSOCK, ADDR_NO_RANDOMIZE = 0x10000000, 17, 40, 0x0040000
CALLS = {
    "clone_newuser": (56, 220, (CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)),
    "unshare_newuser": (272, 97, (CLONE_NEWUSER,)),  # after clone: it leaves the probe unmapped
    "clone3": (435, 435, (0, 0)),
    "keyctl": (250, 219, (0, -3, 0)),        # KEYCTL_GET_KEYRING_ID, the session keyring
    "add_key": (248, 217, (0, 0, 0, 0, 0)),
    "userfaultfd": (323, 282, (0,)),
    "perf_event_open": (298, 241, (0, 0, -1, -1, 0)),  # no attr: EFAULT if the kernel saw it
    "socket_vsock": (41, 198, (AF_VSOCK, 1, 0)),
    "personality_query": (135, 92, (0xFFFFFFFF,)),
    "personality_no_randomize": (135, 92, (ADDR_NO_RANDOMIZE,)),
}
PROBE = f"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
arch = {1 if platform.machine() == "aarch64" else 0}
found = {{}}
for name, spec in {CALLS!r}.items():
    ret = libc.syscall(ctypes.c_long(spec[arch]), *[ctypes.c_long(a) for a in spec[2]])
    if ret == 0 and name == "clone_newuser":
        os._exit(0)  # the clone's child: it did get a new user namespace
    found[name] = "ok" if ret >= 0 else os.strerror(ctypes.get_errno())
pid = os.fork()  # plain clone, no namespace flag: allowed
if pid == 0:
    os._exit(7)
found["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(found))
"""


def probe(cli, image: str, *options: str) -> dict:
    proc = cli("run", "--rm", *HOST_PYTHON, *options, image, "/usr/bin/python3", "-c", PROBE)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def status(cli, *args: str) -> dict:
    """/proc/self/status of a command, as {field: value}."""
    proc = cli(*args, "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(":\t", 1) for line in proc.stdout.splitlines())


def wait_running(cli, name: str) -> None:
    for _ in range(100):
        if cli("exec", name, "true").returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never ran")


def test_default_filter_refuses_namespaces_keyrings_and_kernel_attack_surface(cli, demo):
    found = probe(cli, demo)
    denied = "Operation not permitted"
    assert found == {
        "unshare_newuser": denied, "clone_newuser": denied, "keyctl": denied, "add_key": denied,
        "userfaultfd": denied, "perf_event_open": denied, "socket_vsock": denied,
        "clone3": "Function not implemented",  # ENOSYS, so libc falls back to clone
        "personality_query": "ok", "personality_no_randomize": denied, "fork": 7}


def test_unconfined_container_gets_past_the_filter(cli, demo):
    found = probe(cli, demo, "--security-opt", "seccomp=unconfined")
    assert found["unshare_newuser"] == "ok"
    assert found["clone_newuser"] == "ok"
    assert found["perf_event_open"] == "Bad address"  # the kernel read the (missing) attr
    assert found["clone3"] == "Invalid argument"
    assert found["personality_no_randomize"] == "ok"


def test_busybox_unshare_of_a_user_namespace_needs_unconfined(cli, demo):
    refused = cli("run", "--rm", demo, "unshare", "-U", "true")
    assert refused.returncode != 0
    assert "Operation not permitted" in refused.stderr
    assert cli("run", "--rm", "--security-opt", "seccomp=unconfined", demo,
               "unshare", "-U", "true").returncode == 0


def test_cap_sys_admin_opens_the_profiles_namespace_rules(cli, demo):
    found = probe(cli, demo, "--cap-add", "SYS_ADMIN")
    assert found["unshare_newuser"] == "ok"
    assert found["clone3"] == "Invalid argument"  # no longer ENOSYS: the kernel saw it
    assert found["keyctl"] == "Operation not permitted"


def test_status_shows_the_filter_and_no_new_privs(cli, demo):
    default = status(cli, "run", "--rm", demo)
    assert default["Seccomp"] == "2"
    assert default["NoNewPrivs"] == "0"
    nnp = status(cli, "run", "--rm", "--security-opt", "no-new-privileges", demo)
    assert (nnp["Seccomp"], nnp["NoNewPrivs"]) == ("2", "1")
    unconfined = status(cli, "run", "--rm", "--security-opt", "seccomp=unconfined", demo)
    assert unconfined["Seccomp"] == "0"


def test_profile_file_refuses_mkdir_with_its_errno(cli, demo, tmp_path):
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}))
    proc = cli("run", "--rm", "--security-opt", f"seccomp={profile}", demo, "mkdir", "/newdir")
    assert proc.returncode == 1
    assert proc.stderr == "mkdir: can't create directory '/newdir': Disk quota exceeded\n"
    assert cli("run", "--rm", demo, "mkdir", "/newdir").returncode == 0


def test_profile_is_kept_in_the_record_for_start_and_exec(cli, demo, tmp_path):
    profile = tmp_path / "no-mkdir.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "mkdir", '
                       '"action": "SCMP_ACT_ERRNO", "errnoRet": 122}, {"names": ["mkdirat"], '
                       '"action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}')
    cli("create", "--name", "c", "--security-opt", f"seccomp={profile}", demo,
        "sh", "-c", "mkdir /a; sleep 100", check=True)
    profile.unlink()  # read at create: start and exec do not need the file
    host = json.loads(cli("inspect", "c", check=True).stdout)[0]["HostConfig"]
    assert host["SecurityOpt"] == [
        'seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"mkdir","action":'
        '"SCMP_ACT_ERRNO","errnoRet":122},{"names":["mkdirat"],"action":"SCMP_ACT_ERRNO",'
        '"errnoRet":122}]}']
    cli("start", "c", check=True)
    wait_running(cli, "c")
    proc = cli("exec", "c", "mkdir", "/b")
    assert proc.stderr == "mkdir: can't create directory '/b': Disk quota exceeded\n"
    assert cli("logs", "c").stderr == "mkdir: can't create directory '/a': Disk quota exceeded\n"
    cli("rm", "-f", "c", check=True)


def test_exec_gets_the_containers_filter(cli, demo):
    cli("run", "-d", "--name", "c", demo, "sleep", "100", check=True)
    wait_running(cli, "c")
    assert status(cli, "exec", "c")["Seccomp"] == "2"
    refused = cli("exec", "c", "unshare", "-U", "true")
    assert "Operation not permitted" in refused.stderr
    cli("run", "-d", "--name", "u", "--security-opt", "seccomp=unconfined",
        "--security-opt", "no-new-privileges=true", demo, "sleep", "100", check=True)
    wait_running(cli, "u")
    exec_status = status(cli, "exec", "u")
    assert (exec_status["Seccomp"], exec_status["NoNewPrivs"]) == ("0", "1")
    cli("rm", "-f", "c", "u", check=True)


@pytest.mark.parametrize("nnp, euid", [(False, "0"), (True, "1000")])
def test_no_new_privileges_keeps_a_setuid_binary_from_gaining_root(cli, demo, nnp, euid):
    """A setuid-root copy of the host's Python, run by uid 1000 (busybox would drop the
    privilege itself, so it cannot show this)."""
    options = ("--security-opt", "no-new-privileges") if nnp else ()
    cli("run", "-d", "--name", "c", *HOST_PYTHON, *options, demo, "sh", "-c",
        "cp /usr/bin/python3 /suid-python && chmod 4755 /suid-python && sleep 100", check=True)
    for _ in range(100):
        if cli("exec", "c", "test", "-u", "/suid-python").returncode == 0:
            break
        time.sleep(0.1)
    proc = cli("exec", "-u", "1000", "c", "/suid-python", "-c", "import os; print(os.geteuid())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == euid + "\n"
    cli("rm", "-f", "c", check=True)


@pytest.mark.parametrize("option, message", [
    ("seccomp=/nonexistent.json", "--security-opt seccomp=/nonexistent.json: No such file or directory"),
    ("seccomp={bad}", "--security-opt seccomp={bad}: No such file or directory"),
    ("apparmor=docker-default", "--security-opt apparmor=docker-default: overlaykit applies no "
                                "AppArmor or SELinux profile"),
    ("no-new-privileges=maybe", "--security-opt no-new-privileges=maybe: the value must be true or false"),
    ("nonsense", "--security-opt nonsense: not one of seccomp=unconfined|PROFILE.json, "
                 "no-new-privileges[=true|false]"),
])
def test_bad_security_opt_is_one_line_and_makes_nothing(cli, demo, option, message):
    proc = cli("run", "--security-opt", option, demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == f"overlaykit: run: {message}\n"
    assert json.loads(cli("ps", "-a", "--json").stdout) == []


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON seccomp profile: Expecting property name enclosed in double quotes: "
                  "line 1 column 2 (char 1)"),
    ('{"defaultAction": "SCMP_ACT_NOPE"}', "defaultAction: 'SCMP_ACT_NOPE' is not one of "
     "SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, "
     "SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": '
     '"SCMP_ACT_ERRNO", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
     "syscalls[0].args[0].index must be an argument number, 0 to 5"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "read", "names": ["write"], '
     '"action": "SCMP_ACT_ALLOW"}]}',
     "syscalls[0]: both 'name' and 'names' are given, use either 'name' or 'names'"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}',
     "architectures: unknown value 'SCMP_ARCH_VAX'"),
])
def test_invalid_profile_is_one_line_and_makes_nothing(cli, demo, tmp_path, content, message):
    profile = tmp_path / "profile.json"
    profile.write_text(content)
    proc = cli("create", "--security-opt", f"seccomp={profile}", demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == f"overlaykit: create: --security-opt seccomp={profile}: {message}\n"
    assert json.loads(cli("ps", "-a", "--json").stdout) == []


def test_privileged_container_has_no_filter(cli, demo):
    found = status(cli, "run", "--rm", "--privileged", demo)
    assert found["Seccomp"] == "0"
    own = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
    assert found["CapBnd"] == own["CapBnd"]
