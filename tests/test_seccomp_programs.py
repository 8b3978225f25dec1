"""Compiled seccomp programs are kept in the store and loaded from there, and a kept program
that is not whole is compiled again, never loaded."""

import hashlib
import os

from overlaykit.linux.seccomp import compile_program
from overlaykit.runtime.seccomp import default_profile, filter_for
from overlaykit.runtime.seccomp_programs import program_for
from overlaykit.runtime.security import capabilities

DIGEST = hashlib.sha256().digest_size


def kept(layout) -> dict[str, bytes]:
    directory = os.path.join(layout.root, "seccomp")
    if not os.path.isdir(directory):
        return {}
    return {name: open(os.path.join(directory, name), "rb").read() for name in os.listdir(directory)}


def refuses_user_namespaces(cli, demo) -> bool:
    proc = cli("run", "--rm", "--network", "none", demo, "unshare", "-U", "true")
    return proc.returncode != 0 and "Operation not permitted" in proc.stderr


def test_a_start_keeps_the_program_libseccomp_compiled(layout):
    spec = filter_for(default_profile(), set(capabilities({})))
    program = program_for(layout, spec)
    assert program == compile_program(spec)
    [(name, data)] = kept(layout).items()
    assert name.endswith(".bpf")
    assert data == hashlib.sha256(program.code).digest() + program.code
    assert program_for(layout, spec) == program  # read back
    assert len(kept(layout)) == 1


def test_each_capability_set_has_a_program_of_its_own(cli, demo, layout):
    cli("run", "--rm", "--network", "none", demo, "true", check=True)
    cli("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", demo, "true", check=True)
    cli("run", "--rm", "--network", "none", demo, "true", check=True)
    programs = kept(layout)
    assert len(programs) == 2
    default = compile_program(filter_for(default_profile(), set(capabilities({})))).code
    admin = compile_program(filter_for(default_profile(),
                                       set(capabilities({"CapAdd": ["CAP_SYS_ADMIN"]})))).code
    assert sorted(data[DIGEST:] for data in programs.values()) == sorted([default, admin])


def test_a_cut_program_is_compiled_again_and_the_container_stays_confined(cli, demo, layout):
    assert refuses_user_namespaces(cli, demo)
    [(name, whole)] = kept(layout).items()
    path = os.path.join(layout.root, "seccomp", name)
    cut = len(whole) - 8 * 40  # a power cut's torn file, on an instruction boundary
    with open(path, "r+b") as f:
        f.truncate(cut)
    assert refuses_user_namespaces(cli, demo)
    assert kept(layout) == {name: whole}


def test_an_unwritable_store_still_starts_a_confined_container(cli, demo, layout):
    os.makedirs(os.path.join(layout.root, "seccomp"), exist_ok=True)
    os.rmdir(os.path.join(layout.root, "seccomp"))
    with open(os.path.join(layout.root, "seccomp"), "w") as f:
        f.write("not a directory")  # the program cannot be kept
    assert refuses_user_namespaces(cli, demo)
