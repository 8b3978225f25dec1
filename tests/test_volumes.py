"""`overlaykit volume` through the real CLI: Docker's create, ls, inspect, rm and prune semantics."""

import json
import os

from overlaykit.store.files import write_json


def _record_user(layout, container_id: str, volume: str) -> None:
    """A container record that mounts volume, as run/create write it."""
    write_json(layout.container_config(container_id), {"Id": container_id, "Mounts": [
        {"Type": "volume", "Name": volume, "Source": layout.volume_data(volume),
         "Destination": "/data", "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]})


def test_create_makes_data_dir_and_is_idempotent(cli, layout):
    assert cli("volume", "create", "myvol", check=True).stdout == "myvol\n"
    (open(os.path.join(layout.volume_data("myvol"), "kept"), "w")).close()
    assert cli("volume", "create", "myvol", check=True).stdout == "myvol\n"
    assert os.listdir(layout.volume_data("myvol")) == ["kept"]
    assert cli("volume", "ls", check=True).stdout == "DRIVER    VOLUME NAME\nlocal     myvol\n"


def test_create_without_a_name_gives_64_hex(cli, layout):
    name = cli("volume", "create", check=True).stdout.strip()
    assert len(name) == 64 and int(name, 16) >= 0
    assert os.path.isdir(layout.volume_data(name))


def test_inspect_has_dockers_shape(cli, layout):
    cli("volume", "create", "--label", "team=storage", "--label", "tier=", "labelled", check=True)
    [info] = json.loads(cli("volume", "inspect", "labelled", check=True).stdout)
    assert set(info) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert (info["Name"], info["Driver"], info["Scope"], info["Mountpoint"], info["Labels"]) == (
        "labelled", "local", "local", layout.volume_data("labelled"), {"team": "storage", "tier": ""})
    assert info["CreatedAt"].endswith("Z")
    assert json.loads(cli("volume", "ls", "--json", check=True).stdout) == [info]


def test_bad_name_and_missing_volume_are_one_line_errors(cli):
    proc = cli("volume", "create", "a")
    assert proc.returncode == 1
    assert proc.stderr == ('overlaykit: volume create a: "a" includes invalid characters for a local '
                           'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed; to mount a '
                           'host directory, use an absolute path\n')
    proc = cli("volume", "inspect", "ghost")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: volume inspect: no such volume: ghost\n")
    proc = cli("volume", "rm", "ghost")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: volume rm: no such volume: ghost\n")


def test_rm_removes_an_unused_volume_and_force_forgives_only_a_missing_one(cli, layout):
    cli("volume", "create", "gone", check=True)
    assert cli("volume", "rm", "gone", check=True).stdout == "gone\n"
    assert not os.path.exists(layout.volume_dir("gone"))
    proc = cli("volume", "rm", "-f", "gone")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_rm_refuses_a_volume_a_container_uses_even_with_force(cli, layout):
    cli("volume", "create", "busy", check=True)
    cli("volume", "create", "idle", check=True)
    _record_user(layout, "c0ffee" * 10 + "c0ff", "busy")
    for args in (("volume", "rm", "busy", "idle"), ("volume", "rm", "-f", "busy")):
        proc = cli(*args)
        assert proc.returncode == 1
        assert proc.stderr == ("overlaykit: volume rm: remove busy: volume is in use - "
                               f"[{'c0ffee' * 10 + 'c0ff'}]\n")
    assert os.path.isdir(layout.volume_data("busy"))
    assert not os.path.exists(layout.volume_dir("idle"))  # the other name was still removed


def test_prune_removes_unused_anonymous_volumes_and_all_unused_with_a(cli, layout):
    from overlaykit.store import volumes
    volumes.create(layout, "a" * 64, anonymous=True)
    volumes.create(layout, "b" * 64, anonymous=True)
    volumes.create(layout, "named")
    _record_user(layout, "1" * 64, "b" * 64)
    with open(os.path.join(layout.volume_data("a" * 64), "blob"), "wb") as f:
        f.write(b"x" * 5000)
    proc = cli("volume", "prune", "-f", check=True)
    assert proc.stdout == f"Deleted Volumes:\n{'a' * 64}\n\nTotal reclaimed space: 8.192kB\n"
    assert volumes.names(layout) == ["b" * 64, "named"]
    proc = cli("volume", "prune", "-a", "-f", check=True)
    assert proc.stdout == "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"
    assert volumes.names(layout) == ["b" * 64]


def test_prune_asks_first(cli, layout):
    cli("volume", "create", "named", check=True)
    proc = cli("volume", "prune", "-a", input="n\n")
    assert (proc.returncode, proc.stderr) == (0, "")  # Docker's answer to no
    assert proc.stdout == ("WARNING! This will remove all local volumes not used by at least one container.\n"
                           "Are you sure you want to continue? [y/N] ")
    assert os.path.isdir(layout.volume_data("named"))
