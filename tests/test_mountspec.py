"""-v, --mount and --tmpfs parsed with Docker's rules, and each bad spec refused with one line."""


import pytest

from overlaykit.errors import OverlaykitError
from overlaykit.linux.mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY
from overlaykit.runtime.mountspec import (MountSpec, host_config, image_volumes, inspect_entry,
                                          parse_all, parse_mount, parse_tmpfs, parse_volume,
                                          specs_from_record, tmpfs_arguments)


def test_v_with_an_absolute_source_is_a_bind_that_may_create_its_source():
    assert parse_volume("/srv/data:/data") == MountSpec(
        "bind", "/data", "/srv/data", propagation="rprivate", create_source=True,
        option="-v /srv/data:/data")


def test_v_mode_field_sets_readonly_propagation_and_keeps_docker_mode():
    spec = parse_volume("/srv//data/:/data/./x/:ro,rslave,z")
    assert (spec.source, spec.destination, spec.readonly, spec.propagation, spec.mode) == (
        "/srv/data", "/data/x", True, "rslave", "ro,rslave,z")


def test_v_with_a_name_is_a_named_volume_and_with_a_path_only_an_anonymous_one():
    named = parse_volume("cache:/cache:nocopy")
    assert (named.type, named.source, named.nocopy, named.readonly, named.mode) == (
        "volume", "cache", True, False, "nocopy")
    anonymous = parse_volume("/data")
    assert (anonymous.type, anonymous.source, anonymous.destination, anonymous.mode) == (
        "volume", "", "/data", "")
    assert parse_volume("cache:/cache").mode == "z"  # Docker's default for a named -v volume


def test_mount_csv_bind_volume_and_tmpfs(tmp_path):
    bind = parse_mount(f"type=bind,source={tmp_path},target=/app,readonly,bind-propagation=shared")
    assert (bind.type, bind.source, bind.destination, bind.readonly, bind.propagation,
            bind.create_source) == ("bind", str(tmp_path), "/app", True, "shared", False)
    volume = parse_mount("src=myvol,dst=/data,volume-nocopy,ro=false")
    assert (volume.type, volume.source, volume.nocopy, volume.readonly, volume.mode) == (
        "volume", "myvol", True, False, "")
    tmpfs = parse_mount("type=tmpfs,destination=/run,tmpfs-size=64m,tmpfs-mode=1770")
    assert tmpfs.tmpfs_options == ("size=67108864", "mode=1770")


def test_tmpfs_options_become_docker_default_flags_with_the_users_on_top():
    spec = parse_tmpfs("/scratch:size=64m,mode=1777,uid=1000,exec,ro")
    assert spec.readonly and spec.destination == "/scratch"
    flags, data = tmpfs_arguments(spec.tmpfs_options)
    assert flags == MS_NOSUID | MS_NODEV | MS_RDONLY
    assert data == "size=64m,mode=1777,uid=1000"
    assert tmpfs_arguments(parse_tmpfs("/t").tmpfs_options) == (MS_NOEXEC | MS_NOSUID | MS_NODEV, "")


@pytest.mark.parametrize("parse, raw, message", [
    (parse_volume, "data:rel", "-v data:rel: invalid mount path: 'rel' mount path must be absolute"),
    (parse_volume, "/srv:/", "-v /srv:/: invalid specification: destination can't be '/'"),
    (parse_volume, "my$vol:/data",
     '-v my$vol:/data: "my$vol" includes invalid characters for a local volume name, only '
     '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed; to mount a host directory, use an absolute path'),
    (parse_volume, "./rel:/data",
     '-v ./rel:/data: "./rel" includes invalid characters for a local volume name, only '
     '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed; to mount a host directory, use an absolute path'),
    (parse_volume, "/a:/b:c:d", "-v /a:/b:c:d: invalid volume specification"),
    (parse_volume, "/a:/b:ro,rw", "-v /a:/b:ro,rw: invalid mode: ro,rw"),
    (parse_volume, "/a:/b:bogus", "-v /a:/b:bogus: invalid mode: bogus"),
    (parse_volume, "/data:ro", "-v /data:ro: invalid volume specification: an anonymous volume takes no mode"),
    (parse_volume, "vol:/data:shared", "-v vol:/data:shared: propagation shared applies to bind mounts, not to volumes"),
    (parse_volume, "/a:/b:nocopy", "-v /a:/b:nocopy: nocopy applies to volumes, not to bind mounts"),
    (parse_mount, "type=bind,src=/nonexistent-overlaykit,dst=/x",
     "--mount type=bind,src=/nonexistent-overlaykit,dst=/x: bind source path does not exist: /nonexistent-overlaykit"),
    (parse_mount, "type=bind,dst=/x", "--mount type=bind,dst=/x: missing field Source"),
    (parse_mount, "type=volume,src=v1", "--mount type=volume,src=v1: target is required"),
    (parse_mount, "type=volume,src=v1,dst=x", "--mount type=volume,src=v1,dst=x: invalid mount path: 'x' mount path must be absolute"),
    (parse_mount, "type=volume,src=v1,dst=/x,colour=red", "--mount type=volume,src=v1,dst=/x,colour=red: unexpected key 'colour' in 'colour=red'"),
    (parse_mount, "type=nfs,dst=/x", "--mount type=nfs,dst=/x: mount type unknown: nfs"),
    (parse_mount, "type=bind,src=/,dst=/x,volume-nocopy", "--mount type=bind,src=/,dst=/x,volume-nocopy: cannot mix 'volume-*' options with mount type 'bind'"),
    (parse_mount, "type=bind,src=/,dst=/x,bind-propagation=sideways", "--mount type=bind,src=/,dst=/x,bind-propagation=sideways: invalid propagation mode: sideways"),
    (parse_mount, "type=volume,dst=/x,readonly", "--mount type=volume,dst=/x,readonly: must not set ReadOnly mode when using anonymous volumes"),
    (parse_mount, "type=volume,dst=/x,readonly=maybe", "--mount type=volume,dst=/x,readonly=maybe: invalid value for readonly: maybe"),
    (parse_mount, "type=tmpfs,dst=/x,tmpfs-size=lots", "--mount type=tmpfs,dst=/x,tmpfs-size=lots: invalid size: 'lots'"),
    (parse_mount, "type=tmpfs,dst=/x,tmpfs-mode=999", "--mount type=tmpfs,dst=/x,tmpfs-mode=999: invalid tmpfs-mode: 999 (octal, like 1777)"),
    (parse_tmpfs, "scratch", "--tmpfs scratch: invalid mount path: 'scratch' mount path must be absolute"),
    (parse_tmpfs, "/s:size=64m,bind", "--tmpfs /s:size=64m,bind: unknown tmpfs option 'bind'"),
    (parse_tmpfs, "/s:size=huge", "--tmpfs /s:size=huge: invalid size: 'huge'"),
    (parse_tmpfs, "/s:mode=rwx", "--tmpfs /s:mode=rwx: invalid mode: 'rwx' (octal, like 1777)"),
])
def test_bad_specs_are_refused_with_one_line_naming_the_option(parse, raw, message):
    with pytest.raises(OverlaykitError) as err:
        parse(raw)
    assert str(err.value) == message


def test_two_mounts_on_one_target_are_refused():
    with pytest.raises(OverlaykitError) as err:
        parse_all(volumes=["/srv:/data"], tmpfs=["/data/"])
    assert str(err.value) == "duplicate mount point: /data (-v /srv:/data and --tmpfs /data/)"


def test_record_round_trip_gives_back_the_same_mounts(tmp_path):
    specs = parse_all(volumes=[f"{tmp_path}:/src:ro,rslave", "cache:/cache:nocopy", "/anon"],
                      mounts=["type=tmpfs,dst=/run/t,tmpfs-size=1m,tmpfs-mode=1700",
                              f"type=bind,src={tmp_path},dst=/b,bind-propagation=shared,ro",
                              "type=volume,dst=/v,volume-nocopy"],
                      tmpfs=["/scratch:size=64m,uid=1000", "/plain"])
    specs += image_volumes({"/data": {}, "/anon": {}}, specs)
    assert [s.destination for s in specs][-1] == "/data"  # /anon was taken by -v
    named = [s._replace(source=f"v{i:02d}") if s.type == "volume" and not s.source else s
             for i, s in enumerate(specs)]
    mounts = [e for e in (inspect_entry(s, "/vol") for s in named) if e is not None]
    config = {"HostConfig": host_config(specs), "Config": {"Volumes": {"/data": {}, "/anon": {}}},
              "Mounts": mounts}
    again = specs_from_record(config)
    strip = lambda s: s._replace(option="")  # noqa: E731 - options are re-spelled from the record
    assert sorted(map(strip, again), key=lambda s: s.destination) == sorted(
        map(strip, named), key=lambda s: s.destination)
    assert config["HostConfig"]["Tmpfs"] == {"/scratch": "size=64m,uid=1000", "/plain": ""}
    assert {"Type": "volume", "Name": "cache", "Source": "/vol", "Destination": "/cache",
            "Driver": "local", "Mode": "nocopy", "RW": True, "Propagation": ""} in mounts
    assert len(mounts) == 7  # three -v, three --mount, one image VOLUME; docker lists no --tmpfs
