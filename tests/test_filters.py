"""ps and images --filter, -q, -n and -l, on real containers and images, with Docker's logic:
values of one key are alternatives, different keys must all hold."""

import pytest

from overlaykit.store import containers

LOOP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


@pytest.fixture
def four(cli, demo, layout):
    """created a, exited b (0), exited c (3), running d; b labelled tier=web, d tier=db.
    Returns their full ids by name."""
    cli("create", "--name", "a", demo, "true", check=True)
    cli("run", "--name", "b", demo, "true", check=True)
    assert cli("run", "--name", "c", demo, "sh", "-c", "exit 3").returncode == 3
    cli("run", "-d", "--name", "d", demo, "sh", "-c", LOOP, check=True)
    for name, tier in (("b", "web"), ("d", "db")):  # labels as `run --label` records them
        c = containers.find(layout, name)
        c.config["Config"]["Labels"] = {"tier": tier, "owner": "me"}
        containers.save(layout, c)
    return {name: containers.find(layout, name).id for name in "abcd"}


def names(cli, *args: str) -> list[str]:
    return cli("ps", "--format", "{{.Names}}", *args, check=True).stdout.split()


def test_status_exited_name_id_and_ancestor(cli, four):
    assert names(cli) == ["d"]
    assert names(cli, "-a") == ["d", "c", "b", "a"]
    assert names(cli, "-f", "status=exited") == ["c", "b"]  # a status filter looks at every state
    assert names(cli, "-f", "status=exited", "-f", "status=created") == ["c", "b", "a"]
    assert names(cli, "-a", "-f", "exited=3") == ["c"]
    assert names(cli, "-a", "-f", "exited=0") == ["b"]  # a created container has no exit code yet
    assert names(cli, "-a", "-f", "name=^[ab]$") == ["b", "a"]
    assert names(cli, "-a", "-f", f"id={four['c'][:5]}") == ["c"]
    assert names(cli, "-a", "-f", "ancestor=docker.io/library/demo:1") == ["d", "c", "b", "a"]
    assert names(cli, "-a", "-f", "ancestor=nothere") == []
    assert names(cli, "-a", "-f", "name=b", "-f", "status=running") == []


def test_label_before_and_since(cli, four):
    assert names(cli, "-a", "-f", "label=tier") == ["d", "b"]
    assert names(cli, "-a", "-f", "label=tier=web") == ["b"]
    assert names(cli, "-a", "-f", "label=tier=web", "-f", "label=owner") == ["b"]
    assert names(cli, "-a", "-f", "label=tier=web", "-f", "label=owner=you") == []
    assert names(cli, "-a", "-f", "before=c") == ["b", "a"]
    assert names(cli, "-a", "-f", "since=b") == ["d", "c"]


def test_quiet_last_and_latest(cli, four):
    assert cli("ps", "-q", check=True).stdout == four["d"][:12] + "\n"
    assert cli("ps", "-aq", "--no-trunc", check=True).stdout.split() == [four[n] for n in "dcba"]
    assert names(cli, "-n", "2") == ["d", "c"]
    assert names(cli, "-l") == ["d"]
    assert names(cli, "-l", "-f", "status=exited") == ["c"]
    assert cli("ps", "-q", "-f", "status=exited", check=True).stdout.split() == [four["c"][:12], four["b"][:12]]


@pytest.mark.parametrize("args, message", [
    (("-f", "bogus=1"), "overlaykit: ps: invalid filter 'bogus' (known: name, id, status, ancestor, label, "
                        "exited, before, since)\n"),
    (("-f", "status=sleeping"), "overlaykit: ps: invalid filter 'status=sleeping'\n"),
    (("-f", "nothing"), "overlaykit: ps: bad format of filter 'nothing' (expected name=value)\n"),
    (("-f", "exited=x"), "overlaykit: ps: invalid filter 'exited=x': not an integer\n"),
    (("-f", "before=nosuch"), "overlaykit: ps: filter 'before=nosuch': No such container: nosuch\n"),
    (("-f", "name=("), None),
])
def test_a_bad_filter_is_one_line(cli, demo, args, message):
    proc = cli("ps", *args)
    assert proc.returncode == 1 and proc.stdout == ""
    if message is None:
        assert proc.stderr.startswith("overlaykit: ps: invalid filter 'name=(': ") and proc.stderr.count("\n") == 1
    else:
        assert proc.stderr == message


def test_images_filters(cli, demo, fixture_path):
    cli("load", fixture_path("demo-oci.tar"), check=True)  # demo:1 moves; the docker config dangles
    cli("run", "--name", "c", "demo:1", "true", check=True)
    cli("commit", "-c", "LABEL tier=base", "c", "labelled:1", check=True)
    listed = lambda *args: [tuple(line.split()) for line in
                            cli("images", "--format", "{{.Repository}} {{.Tag}}", *args, check=True).stdout.splitlines()]
    assert listed() == [("labelled", "1"), ("demo", "1"), ("<none>", "<none>")]
    assert listed("-f", "dangling=true") == [("<none>", "<none>")]
    assert listed("-f", "dangling=false") == [("labelled", "1"), ("demo", "1")]
    assert listed("-f", "reference=lab*") == [("labelled", "1")]
    assert listed("-f", "reference=*:1") == [("labelled", "1"), ("demo", "1")]
    assert listed("-f", "reference=docker.io/library/demo") == [("demo", "1")]
    assert listed("-f", "label=tier=base") == [("labelled", "1")]
    assert listed("-f", "label=tier=other") == []
    assert listed("-f", "since=demo:1") == [("labelled", "1")]
    assert listed("-f", "before=labelled:1") == [("demo", "1"), ("<none>", "<none>")]
    assert cli("images", "-q", "-f", "dangling=true", check=True).stdout.strip() == "744e494203ad"
    proc = cli("images", "-f", "dangling=maybe")
    assert (proc.returncode, proc.stderr) == (1, "overlaykit: images: invalid filter 'dangling=maybe': use true or false\n")
    proc = cli("images", "-f", "until=1h")
    assert proc.returncode == 1 and proc.stderr.startswith("overlaykit: images: invalid filter 'until'")
