"""tag, and Docker's name normalisation in every command that takes an image: demo:1 is
docker.io/library/demo:1 is index.docker.io/library/demo:1."""

import json
import tarfile

DOCKER_ID = "sha256:744e494203ad2266c6c04661635018978638cad9a0cd38254b2f6597bd00433b"
OCI_ID = "sha256:8a624a77e87feb70cadb43e260a2c265c232554d5493b40f991db5b19e95e13c"
FULL = "docker.io/library/demo:1"


def _tags(cli) -> dict[str, str]:
    return {f"{r['Repository']}:{r['Tag']}": r["ID"] for r in json.loads(cli("images", "--json", check=True).stdout)}


def test_tag_gives_the_image_another_name_in_any_spelling(cli, demo):
    proc = cli("tag", FULL, "docker.io/library/other:2", check=True)
    assert (proc.stdout, proc.stderr) == ("", "")
    cli("tag", DOCKER_ID[7:19], "localhost:5000/team/app:v1", check=True)
    assert _tags(cli) == {"demo:1": DOCKER_ID, "other:2": DOCKER_ID, "localhost:5000/team/app:v1": DOCKER_ID}
    with open(_repositories(cli)) as f:
        repos = json.load(f)
    assert repos["Repositories"]["other"] == {"other:2": DOCKER_ID}


def _repositories(cli) -> str:
    root = json.loads(cli("info", "--json", check=True).stdout)["Root"]
    return f"{root}/image/overlay2/repositories.json"


def test_tag_moves_a_name_from_another_image_which_is_left_dangling(cli, demo, fixture_path):
    cli("load", fixture_path("demo-oci.tar"), check=True)  # demo:1 moves to the OCI config
    cli("tag", "sha256:" + DOCKER_ID[7:], "demo:old", check=True)
    cli("tag", "demo:1", "demo:old", check=True)
    rows = json.loads(cli("images", "--json", check=True).stdout)
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in rows] == [
        ("demo", "1", OCI_ID), ("demo", "old", OCI_ID), ("<none>", "<none>", DOCKER_ID)]


def test_tag_refuses_a_bad_target_or_a_missing_source_in_one_line(cli, demo):
    proc = cli("tag", "demo:1", "Bad:Name")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: tag: invalid reference 'Bad:Name'\n")
    proc = cli("tag", "demo:1", f"demo@sha256:{'a' * 64}")
    assert proc.returncode == 1 and proc.stderr.startswith("overlaykit: tag: invalid reference")
    proc = cli("tag", "nothere", "x")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: tag: nothere: no such image\n")
    proc = cli("tag", "demo:1")
    assert proc.returncode == 125 and proc.stderr.startswith("overlaykit: tag: Missing argument")
    assert _tags(cli) == {"demo:1": DOCKER_ID}


def test_load_says_when_it_moves_a_tag_away_from_another_image(cli, demo, fixture_path):
    proc = cli("load", fixture_path("demo-oci.tar"), check=True)
    assert proc.stdout == (f"The image demo:1 already exists, renaming the old one with ID {DOCKER_ID} "
                           "to empty string\nLoaded image: demo:1\n")
    assert cli("load", fixture_path("demo-oci.tar"), check=True).stdout == "Loaded image: demo:1\n"


def test_every_command_that_takes_an_image_accepts_every_spelling(cli, demo, tmp_path):
    for spelling in (FULL, "index.docker.io/library/demo:1", "library/demo:1"):
        assert cli("images", "-q", spelling, check=True).stdout == DOCKER_ID[7:19] + "\n"
        assert cli("inspect", "-f", "{{.Id}}", spelling, check=True).stdout == DOCKER_ID + "\n"
        assert cli("history", spelling, check=True).stdout.splitlines()[1].startswith(DOCKER_ID[7:19])
    assert cli("run", "--rm", FULL, "cat", "/etc/motd", check=True).returncode == 0
    cli("save", "-o", str(tmp_path / "out.tar"), FULL, check=True)
    with tarfile.open(tmp_path / "out.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["demo:1"]
    cli("tag", "demo:1", "demo:latest", check=True)
    # a name without a tag lists every tag of it, a line each, as `docker images -q demo`
    assert cli("images", "-q", "docker.io/library/demo", check=True).stdout == (DOCKER_ID[7:19] + "\n") * 2
    assert cli("rmi", "docker.io/library/demo", check=True).stdout == "Untagged: demo:latest\n"
    assert cli("rmi", FULL, check=True).stdout.splitlines()[:2] == ["Untagged: demo:1", f"Deleted: {DOCKER_ID}"]
    assert _tags(cli) == {}


def test_images_repository_argument_lists_its_tags_and_globs_as_docker(cli, demo, fixture_path):
    cli("load", fixture_path("demo-docker25.tar"), check=True)
    cli("tag", "demo:1", "demo:two", check=True)
    cli("tag", "demo:1", "other:1", check=True)
    listed = lambda *args: [tuple(line.split()[:2]) for line in cli("images", *args, check=True).stdout.splitlines()[1:]]
    assert sorted(listed("demo")) == [("demo", "1"), ("demo", "oci25"), ("demo", "two")]
    assert listed("demo:two") == [("demo", "two")]
    assert sorted(listed("*:1")) == [("demo", "1"), ("other", "1")]
    assert listed("nothere") == []
    proc = cli("images", "Bad!")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: images: Bad!: invalid reference 'Bad!'\n")
