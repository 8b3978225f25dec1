"""images, rmi, inspect, history, info and prune against real loaded stores."""

import json
import os

import pytest

from archives import OciLayout, layer_tar, write_tar
from overlaykit.linux.mountinfo import is_mounted
from overlaykit.linux.overlay import mount_overlay
from overlaykit.store import images, layers, overlay2, staging
from overlaykit.store.files import write_json

DEMO_OCI_ID = "sha256:8a624a77e87feb70cadb43e260a2c265c232554d5493b40f991db5b19e95e13c"
DEMO_DOCKER_ID = "sha256:744e494203ad2266c6c04661635018978638cad9a0cd38254b2f6597bd00433b"


@pytest.fixture
def both(cli, fixture_path):
    """demo:1 from skopeo's config, demo:oci25 on the same config, the docker-save config untagged."""
    for archive in ("demo-docker.tar", "demo-oci.tar", "demo-docker25.tar"):
        cli("load", fixture_path(archive), check=True)


def _container(layout, image_id: str, rw: str | None = None, init: str | None = None) -> None:
    cid = "c0ffee" * 10 + "abcd"
    write_json(layout.container_config(cid), {"Id": cid, "Image": image_id,
                                              "RWLayer": rw, "InitLayer": init})


def test_images_lists_each_tag_and_untagged_images(layout, cli, both):
    lines = cli("images", check=True).stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = [line.split()[:3] + [line.split()[-1]] for line in lines[1:]]
    assert rows == [["demo", "1", "8a624a77e87f", "1.98MB"], ["demo", "oci25", "8a624a77e87f", "1.98MB"],
                    ["<none>", "<none>", "744e494203ad", "1.98MB"]]


def test_images_json(layout, cli, both):
    rows = json.loads(cli("images", "--json", check=True).stdout)
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in rows] == [
        ("demo", "1", DEMO_OCI_ID), ("demo", "oci25", DEMO_OCI_ID), ("<none>", "<none>", DEMO_DOCKER_ID)]
    assert rows[0]["Size"] == sum(layers.layer_info(layout, c)["Size"]
                                  for c in images.resolve(layout, "demo:1").chain_ids)


def test_resolve_by_name_id_and_prefix(layout, both):
    assert images.resolve(layout, "demo:1").id == DEMO_OCI_ID
    assert images.resolve(layout, DEMO_DOCKER_ID).id == DEMO_DOCKER_ID
    assert images.resolve(layout, DEMO_DOCKER_ID[7:]).id == DEMO_DOCKER_ID
    assert images.resolve(layout, "744e").id == DEMO_DOCKER_ID


def test_unknown_image_is_one_line(layout, cli, both):
    proc = cli("rmi", "nothere")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: rmi: nothere: no such image\n")


def test_rmi_by_tag_untags_and_keeps_an_image_with_other_tags(layout, cli, both):
    before = sorted(os.listdir(layout.overlay2))
    proc = cli("rmi", "demo:oci25", check=True)
    assert proc.stdout == "Untagged: demo:oci25\n"
    assert images.resolve(layout, "demo:1").tags == ("demo:1",)
    assert sorted(os.listdir(layout.overlay2)) == before


def test_rmi_keeps_layers_another_image_uses_and_removes_the_last_user_s(layout, cli, both):
    cli("rmi", "demo:oci25", check=True)
    proc = cli("rmi", "demo:1", check=True)
    assert proc.stdout == f"Untagged: demo:1\nDeleted: {DEMO_OCI_ID}\n"
    assert len(layers.stored_chain_ids(layout)) == 3  # the untagged docker-save image still uses them
    chains = images.resolve(layout, DEMO_DOCKER_ID).chain_ids
    caches = [layers.cache_id(layout, c) for c in chains]
    proc = cli("rmi", DEMO_DOCKER_ID[7:19], check=True)
    assert proc.stdout == "".join(f"Deleted: {x}\n" for x in [DEMO_DOCKER_ID, *reversed(chains)])
    assert os.listdir(layout.overlay2) == ["l"] and os.listdir(layout.links) == []
    assert layers.stored_chain_ids(layout) == [] and images.list_images(layout) == []
    assert not any(os.path.exists(layout.layer_dir(c)) for c in caches)


def test_rmi_by_id_of_an_image_with_two_tags_needs_force(layout, cli, both):
    proc = cli("rmi", DEMO_OCI_ID)
    assert (proc.returncode, proc.stderr) == (1, (
        f"overlaykit: rmi: {DEMO_OCI_ID}: image is referenced in multiple repositories "
        "(demo:1, demo:oci25); use --force\n"))
    proc = cli("rmi", "-f", DEMO_OCI_ID, check=True)
    assert proc.stdout == f"Untagged: demo:1\nUntagged: demo:oci25\nDeleted: {DEMO_OCI_ID}\n"


def test_rmi_refuses_an_image_a_container_uses(layout, cli, fixture_path):
    cli("load", fixture_path("demo-oci.tar"), check=True)
    _container(layout, DEMO_OCI_ID)
    before = sorted(os.listdir(layout.overlay2))
    for args in (["demo:1"], ["-f", "demo:1"]):
        proc = cli("rmi", *args)
        assert (proc.returncode, proc.stderr) == (
            1, f"overlaykit: rmi: demo:1: image is used by container {'c0ffee' * 2}\n")
    assert images.resolve(layout, "demo:1").tags == ("demo:1",)
    assert sorted(os.listdir(layout.overlay2)) == before


def test_inspect_image_shows_config_layers_and_their_directories(layout, cli, both):
    (data,) = json.loads(cli("inspect", "demo:oci25", check=True).stdout)
    image = images.resolve(layout, "demo:1")
    assert data["Id"] == DEMO_OCI_ID and data["RepoTags"] == ["demo:1", "demo:oci25"]
    assert (data["Architecture"], data["Os"]) == ("amd64", "linux")
    assert data["Config"]["WorkingDir"] == "/opt/app" and data["Config"]["Cmd"] == ["sh"]
    assert data["RootFS"]["Layers"] == image.config["rootfs"]["diff_ids"]
    assert [l["ChainID"] for l in data["Layers"]] == list(image.chain_ids)
    assert data["Layers"][-1]["Dir"] == layout.layer_dir(image.top_cache_id)
    assert data["GraphDriver"]["Data"]["UpperDir"] == layout.layer_diff(image.top_cache_id)
    assert all(os.path.isdir(l["Dir"] + "/diff") for l in data["Layers"])
    proc = cli("inspect", "demo:1", "nothing")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: inspect: No such object: nothing\n")


def test_history_lists_steps_newest_first_with_layer_sizes(layout, cli, both):
    lines = cli("history", "demo:1", check=True).stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[1].startswith("8a624a77e87f ") and lines[1].split()[-1] == "0B"
    assert all(line.startswith("<missing>") for line in lines[2:])
    assert lines[-1].endswith("1.98MB   Imported from -")
    assert len(lines) == 1 + len(images.resolve(layout, "demo:1").config["history"])


def test_info_reports_root_kernel_and_counts(layout, cli, both):
    facts = json.loads(cli("info", "--json", check=True).stdout)
    assert facts["Root"] == layout.root and facts["Kernel"] == os.uname().release
    assert (facts["Images"], facts["Layers"], facts["Containers"]) == (2, 3, 0)
    release = tuple(int(n) for n in os.uname().release.split("-")[0].split(".")[:2])
    assert facts["LowerdirPlus"] is (release >= (6, 8))  # the 6.1 guest of make vm-test says no
    assert facts["OverlayParameters"]["index"] in ("Y", "N")
    word = "supported" if release >= (6, 8) else "not supported"
    assert f"Overlay lowerdir+ (new mount API, Linux 6.8+): {word}\n" in cli("info", check=True).stdout


def test_prune_removes_crash_leftovers_and_keeps_what_is_used(layout, cli, fixture_path, tmp_path):
    cli("load", fixture_path("demo-oci.tar"), check=True)
    image = images.resolve(layout, "demo:1")
    # a container's own layers, recorded in containers/<id>/config.json, must survive
    init = overlay2.create(layout, image.top_cache_id)
    rw = overlay2.create(layout, init, writable=True)
    _container(layout, image.id, rw=rw, init=init)
    # what a crash leaves: a staging dir, an overlay2 dir nobody names, a layer no image uses,
    # a half-written layerdb entry, a dangling link, a lost link, a mount of a dead container
    orphan = overlay2.create(layout, None)
    unused = layer_tar({"x": b"x"})
    oci = OciLayout()
    oci.add(oci.manifest([unused]), ref="gone:1")
    cli("load", write_tar(str(tmp_path / "gone.tar"), oci.all_files()), check=True)
    gone = images.resolve(layout, "gone:1")
    os.unlink(layout.image_config(gone.id))
    # after the load: whoever takes the store lock next clears what a dead process staged
    os.makedirs(os.path.join(layout.staging, "half-unpacked", "diff"))
    os.makedirs(layout.chain_dir("sha256:" + "ab" * 32))
    os.symlink("../nowhere/diff", layout.link("DANGLINGDANGLINGDANGLING00"))
    lost = open(layout.layer_link_file(init)).read()
    os.unlink(layout.link(lost))
    dead = overlay2.create(layout, image.top_cache_id, writable=True)
    mount_overlay(overlay2.mounts(layout, dead), layout.layer_merged(dead))

    lines = cli("prune", check=True).stdout.splitlines()
    assert lines == [
        "Deleted staging: half-unpacked",
        f"Unmounted: {layout.layer_merged(dead)}",
        *sorted(f"Deleted layer: {x}" for x in (gone.chain_ids[0], "sha256:" + "ab" * 32)),
        *sorted(f"Deleted layer directory: {x}" for x in (orphan, dead)),
        "Deleted link: l/DANGLINGDANGLINGDANGLING00",
        f"Restored link: l/{lost}",
    ]
    assert not is_mounted(layout.layer_merged(dead))
    assert sorted(os.listdir(layout.overlay2)) == sorted(
        [layers.cache_id(layout, c) for c in image.chain_ids] + [init, rw, "l"])
    assert os.readlink(layout.link(lost)) == f"../{init}/diff"
    # only this (live) test process's own staging directory stays, empty
    own = staging.own_dir(layout)
    assert os.listdir(layout.staging) == [os.path.basename(own)] and os.listdir(own) == []
    assert cli("prune", check=True).stdout == ""
    cli("load", fixture_path("demo-oci.tar"), check=True)
    assert len(layers.stored_chain_ids(layout)) == 3


@pytest.mark.parametrize("created", ["yesterday", "2024-13-45T99:00:00Z", "", None])
def test_an_images_odd_created_time_shows_as_na(layout, cli, tmp_path, created):
    """created comes from the archive: whatever it holds, images and history print a line."""
    from archives import OciLayout, config_for, layer_tar, write_tar
    layer = layer_tar({"hello": b"hi\n"})
    oci = OciLayout()
    oci.add(oci.manifest([layer], config_for([layer], created=created)), ref="odd:1")
    cli("load", write_tar(str(tmp_path / "odd.tar"), oci.all_files()), check=True)
    row = cli("images", check=True).stdout.splitlines()[1].split()
    assert row[:2] == ["odd", "1"] and row[3] == "N/A"
    history = cli("history", "odd:1", check=True).stdout.splitlines()
    assert history[1].split()[1] == "N/A"
