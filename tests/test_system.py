"""container/image/volume/system prune, system df, version, system repair and its old name,
the management spellings (container ls, image rm), rm/rmi/stop/kill going on past a missing
name, and the bash completion `make deps` installs."""

import json
import os
import subprocess
import sys

import pytest

from overlaykit.store import containers, images, layers

LOOP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
DOCKER_ID = "sha256:744e494203ad2266c6c04661635018978638cad9a0cd38254b2f6597bd00433b"
OCI_ID = "sha256:8a624a77e87feb70cadb43e260a2c265c232554d5493b40f991db5b19e95e13c"


def _ids(cli) -> list[str]:
    return cli("ps", "-aq", "--no-trunc", check=True).stdout.split()


def test_container_prune_removes_stopped_ones_and_counts_their_writes(cli, demo, layout):
    cli("create", "--name", "created", demo, "true", check=True)
    cli("run", "--name", "wrote", demo, "sh", "-c", "head -c 5000 /dev/zero > /f", check=True)
    running = cli("run", "-d", "--name", "up", demo, "sh", "-c", LOOP, check=True).stdout.strip()
    gone = [containers.find(layout, n) for n in ("created", "wrote")]
    written = os.path.getsize(os.path.join(layout.layer_diff(gone[1].config["RWLayer"]), "f"))
    assert written == 5000
    proc = cli("container", "prune", "-f", check=True)
    assert proc.stdout == ("Deleted Containers:\n" + "".join(f"{c.id}\n" for c in gone) +
                           "\nTotal reclaimed space: 5kB\n")
    assert _ids(cli) == [running]
    for c in gone:
        assert not os.path.exists(layout.layer_dir(c.config["RWLayer"]))
        assert not os.path.exists(layout.container_dir(c.id))
    assert cli("container", "prune", "-f", check=True).stdout == "Total reclaimed space: 0B\n"


def test_prune_asks_first_and_no_keeps_everything(cli, demo):
    cli("run", "--name", "done", demo, "true", check=True)
    for args, warning in [
        (("container", "prune"), "WARNING! This will remove all stopped containers."),
        (("image", "prune", "-a"), "WARNING! This will remove all images without at least one container "
                                   "associated to them."),
        (("system", "prune"), "WARNING! This will remove:\n  - all stopped containers\n  - all dangling images\n"),
    ]:
        proc = cli(*args, input="n\n")
        assert (proc.returncode, proc.stderr) == (0, "")
        assert proc.stdout == f"{warning}\nAre you sure you want to continue? [y/N] "
    assert len(_ids(cli)) == 1
    proc = cli("container", "prune", input="y\n", check=True)
    assert proc.stdout.endswith("Deleted Containers:\n" + _only(proc) + "\n\nTotal reclaimed space: 0B\n")
    assert _ids(cli) == []


def _only(proc) -> str:
    return proc.stdout.split("Deleted Containers:\n")[1].split("\n")[0]


def test_image_prune_takes_dangling_images_and_with_a_every_unused_one(cli, demo, layout, fixture_path):
    cli("load", fixture_path("demo-oci.tar"), check=True)  # demo:1 moves; the docker config dangles
    shared = set(images.resolve(layout, DOCKER_ID).chain_ids) & set(images.resolve(layout, OCI_ID).chain_ids)
    proc = cli("image", "prune", "-f", check=True)
    # the dangling image's layers are the OCI image's too: they stay, nothing is reclaimed
    assert proc.stdout == f"Deleted Images:\ndeleted: {DOCKER_ID}\n\nTotal reclaimed space: 0B\n"
    assert all(layers.layer_exists(layout, c) for c in shared)
    cli("tag", "demo:1", "kept:1", check=True)
    cli("create", "--name", "user", "kept:1", "true", check=True)
    cli("load", fixture_path("demo-docker.tar"), check=True)  # demo:1 back on the docker config
    proc = cli("image", "prune", "-a", "-f", check=True)
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["Deleted Images:", "untagged: demo:1", f"deleted: {DOCKER_ID}"]
    assert lines[-1] == "Total reclaimed space: 0B"  # its layers are kept:1's, which a container uses
    assert [i.id for i in images.list_images(layout)] == [OCI_ID]


def test_image_prune_a_reclaims_the_layers_it_removes(cli, demo, layout):
    image = images.resolve(layout, demo)
    size = sum(layers.layer_info(layout, c)["Size"] for c in image.chain_ids)
    proc = cli("image", "prune", "-a", "-f", check=True)
    assert proc.stdout.splitlines()[-1] == f"Total reclaimed space: {size / 1e6:.4g}MB"
    assert layers.stored_chain_ids(layout) == [] and images.list_images(layout) == []


def test_system_prune_all_with_volumes(cli, demo, layout):
    cli("volume", "create", "named", check=True)
    cli("run", "--name", "old", "-v", "named:/named", demo, "true", check=True)  # anonymous /data too
    anonymous = [v for v in json.loads(cli("volume", "ls", "--json", check=True).stdout) if v["Name"] != "named"]
    proc = cli("system", "prune", "-a", "--volumes", input="y\n", check=True)
    old = proc.stdout.split("Deleted Containers:\n")[1].split("\n")[0]
    assert proc.stdout.startswith("WARNING! This will remove:\n  - all stopped containers\n"
                                  "  - all anonymous volumes not used by at least one container\n"
                                  "  - all images without at least one container associated to them\n\n"
                                  "Are you sure you want to continue? [y/N] Deleted Containers:\n")
    assert f"\n\nDeleted Volumes:\n{anonymous[0]['Name']}\n\nDeleted Images:\nuntagged: demo:1\n" in proc.stdout
    assert len(old) == 64
    assert cli("volume", "ls", "-q", check=True).stdout == "named\n"  # named volumes stay (Docker 23+)
    assert images.list_images(layout) == [] and cli("ps", "-aq", check=True).stdout == ""


def test_system_df_counts_images_containers_and_volumes(cli, demo, layout):
    cli("run", "--name", "wrote", demo, "sh", "-c", "head -c 3000 /dev/zero > /f", check=True)
    cli("run", "-d", "--name", "up", demo, "sh", "-c", LOOP, check=True)
    size = sum(layers.layer_info(layout, c)["Size"] for c in images.resolve(layout, demo).chain_ids)
    lines = cli("system", "df", check=True).stdout.splitlines()
    assert lines[0] == "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    assert lines[1] == f"Images          1         1         {size / 1e6:.4g}MB   0B (0%)"
    assert lines[2] == "Containers      2         1         3kB       3kB (100%)"
    assert lines[3] == "Local Volumes   2         2         0B        0B"
    assert lines[4] == "Build Cache     0         0         0B        0B"
    rows = cli("system", "df", "--format", "{{.Type}}={{.TotalCount}}", check=True).stdout
    assert rows == "Images=1\nContainers=2\nLocal Volumes=2\nBuild Cache=0\n"


def test_version_and_its_format(cli):
    from overlaykit import __version__
    out = cli("version", check=True).stdout
    assert out.startswith(f"Client:\n Version:           {__version__}\n")
    assert f" Kernel Version:    {os.uname().release}\n" in out
    assert cli("version", "-f", "{{.Client.Version}} {{.Server.Os}}", check=True).stdout == f"{__version__} linux\n"
    proc = cli("version", "-f", "{{.Client.Nope}}")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: version: --format: can't evaluate field Nope in type Client\n")


def test_system_repair_is_the_old_prune_which_stays_as_an_alias(cli, demo, layout):
    orphan = os.path.join(layout.overlay2, "0" * 64)
    os.makedirs(os.path.join(orphan, "diff"))
    proc = cli("system", "repair", check=True)
    assert (proc.stdout, proc.stderr) == (f"Deleted layer directory: {'0' * 64}\n", "")
    os.makedirs(os.path.join(orphan, "diff"))
    proc = cli("prune", check=True)
    assert proc.stdout == f"Deleted layer directory: {'0' * 64}\n"
    assert proc.stderr.count("\n") == 1 and "`prune` is now `system repair`" in proc.stderr
    assert images.list_images(layout) != []  # never what a user made
    assert "prune" not in cli("--help", check=True).stdout.split("Commands:")[1].split()


def test_management_spellings_reach_the_same_commands(cli, demo):
    cid = cli("container", "run", "-d", "--name", "c", demo, "sh", "-c", LOOP, check=True).stdout.strip()
    assert cli("container", "ls", "-q", "--no-trunc", check=True).stdout == cid + "\n"
    assert cli("image", "ls", "--format", "{{.Repository}}", check=True).stdout == "demo\n"
    cli("image", "tag", "demo:1", "other:1", check=True)
    assert cli("image", "rm", "other:1", check=True).stdout == "Untagged: other:1\n"
    assert cli("container", "rm", "-f", "c", check=True).stdout == "c\n"
    assert cli("container", "nosuch").returncode == 125


@pytest.mark.parametrize("verb", ["rm", "stop", "kill"])
def test_several_names_go_on_past_a_missing_one(cli, demo, verb):
    for name in ("a", "b"):
        cli("run", "-d", "--name", name, demo, "sh", "-c", LOOP, check=True)
    args = ("-f",) if verb == "rm" else ()
    proc = cli(verb, *args, "a", "nothere", "b")
    if verb == "rm":  # rm -f forgives a missing name (still said), as Docker 23+
        assert proc.returncode == 0
    else:
        assert proc.returncode == 1
    assert proc.stdout == "a\nb\n"
    assert proc.stderr == f"overlaykit: {verb}: nothere: no such container\n"
    running = cli("ps", "-q", check=True).stdout
    assert running == ""


def test_rm_and_rmi_without_force_exit_1_and_report_each(cli, demo):
    cli("create", "--name", "a", demo, "true", check=True)
    proc = cli("rm", "x", "a", "y")
    assert (proc.returncode, proc.stdout) == (1, "a\n")
    assert proc.stderr == "overlaykit: rm: x: no such container\noverlaykit: rm: y: no such container\n"
    cli("tag", "demo:1", "two:1", check=True)
    proc = cli("rmi", "nothere", "two:1", "docker.io/library/gone")
    assert (proc.returncode, proc.stdout) == (1, "Untagged: two:1\n")
    assert proc.stderr == ("overlaykit: rmi: nothere: no such image\n"
                           "overlaykit: rmi: docker.io/library/gone: no such image\n")


def test_bash_completion_completes_verbs_and_subcommands(layout):
    def complete(words: str, cword: int) -> str:
        env = {**os.environ, "_OVERLAYKIT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        return subprocess.run([sys.executable, "-c", "from overlaykit.cli.main import main; main()"],
                              env=env, capture_output=True, text=True, timeout=60).stdout
    assert complete("overlaykit ta", 1) == "plain,tag\n"
    assert set(complete("overlaykit system ", 2).split()) == {"plain,df", "plain,info", "plain,prune", "plain,repair"}
    source = subprocess.run([sys.executable, "-c", "from overlaykit.cli.main import main; main()"],
                            env={**os.environ, "_OVERLAYKIT_COMPLETE": "bash_source"},
                            capture_output=True, text=True, timeout=60).stdout
    assert "complete -o nosort -F _overlaykit_completion overlaykit" in source


def test_prune_filters_by_label_and_age(cli, demo, layout):
    names = lambda: cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    cli("run", "--name", "web", "--label", "tier=web", demo, "true", check=True)
    cli("run", "--name", "db", "--label", "tier=db", demo, "true", check=True)
    cli("container", "prune", "-f", "--filter", "label=tier=web", check=True)
    assert names() == ["db"]
    proc = cli("container", "prune", "-f", "--filter", "until=1h", check=True)  # db is seconds old
    assert (proc.stdout, names()) == ("Total reclaimed space: 0B\n", ["db"])
    cli("container", "prune", "-f", "--filter", "label!=tier=web", check=True)
    assert names() == []
    # demo:1 was built days before the test: made before 2000-01-01 it is not, before 24h ago it is
    assert cli("image", "prune", "-a", "-f", "--filter", "until=2000-01-01", check=True).stdout == \
        "Total reclaimed space: 0B\n"
    assert "untagged: demo:1" in cli("image", "prune", "-a", "-f", "--filter", "until=24h", check=True).stdout
    assert images.list_images(layout) == []
    proc = cli("container", "prune", "-f", "--filter", "until=tomorrow")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: container prune: --filter invalid value for "
                                                 'until: failed to parse value as time or duration: "tomorrow"\n')
