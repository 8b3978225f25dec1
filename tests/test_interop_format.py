"""The same templates through real Docker and overlaykit, on the same image and the same kind
of container: inspect -f, images --format and ps --format print the same bytes
(make test-interop; the dockerd is tests/test_interop.py's, on a socket of its own)."""

import pytest

from tests.test_interop import docker  # noqa: F401  (the fixture)

pytestmark = pytest.mark.interop

IMAGE_TEMPLATES = [
    "{{.Id}}",
    "{{.RepoTags}}",
    "{{.Config.Env}}",
    "{{json .Config.Env}}",
    "{{json .Config.Cmd}}",
    "{{json .Config}}",
    "{{.Config.WorkingDir}}|{{.Config.Volumes}}|{{json .Config.Volumes}}",
    "{{.Config.Labels}}|{{index .Config.Labels \"x\"}}|{{.Config.Entrypoint}}",
    "{{.Os}}/{{.Architecture}} {{upper .Os}}",
    "{{range .RootFS.Layers}}{{.}} {{end}}",
    "{{len .RootFS.Layers}} {{.RootFS.Type}}",
    "{{if .Config.Entrypoint}}entry{{else}}none{{end}} {{with .Config.WorkingDir}}{{.}}{{end}}",
    '{{printf "%s-%d" .Os (len .RootFS.Layers)}} {{join .Config.Env ";"}}',
    "{{range $i, $e := .Config.Env}}{{if $i}},{{end}}{{$i}}={{$e}}{{end}}",
    "{{.Created}}",
]


@pytest.fixture
def both(docker, cli, demo, fixture_path):  # noqa: F811
    """demo:1 in both, from the same docker-save archive, tagged once more as other:2."""
    docker("load", "-i", fixture_path("demo-docker.tar"))
    for tool in (docker, cli):
        tool("tag", "demo:1", "other:2")
    return docker


@pytest.mark.parametrize("template", IMAGE_TEMPLATES)
def test_inspect_format_of_an_image_is_dockers(both, cli, template):
    expected = both("inspect", "-f", template, "demo:1").stdout
    assert cli("inspect", "-f", template, "demo:1", check=True).stdout == expected


@pytest.mark.parametrize("args", [
    ("--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.CreatedAt}}"),
    ("--format", "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Digest}}"),
    ("--no-trunc", "--format", "{{.ID}} {{.Containers}} {{.SharedSize}}"),
    ("--format", "{{json .Repository}} {{lower .Tag}} {{.CreatedSince}}"),
    ("-q",),
    ("other", "--format", "{{.Repository}}"),
    ("--filter", "reference=dem*", "--format", "{{.Repository}}:{{.Tag}}"),
    ("--filter", "dangling=false", "--format", "{{.Tag}}"),
])
def test_images_format_is_dockers(both, cli, args):
    ours, theirs = cli("images", *args, check=True).stdout, both("images", *args).stdout
    # Docker's CLI groups an image's tags by repository in a Go map, so the order of two
    # repositories' rows of one image changes from run to run: the rows are compared as a set
    table = any(a.startswith("table") for a in args)
    assert _rows(ours, table) == _rows(theirs, table)


def _rows(text: str, table: bool) -> tuple[str, list[str]]:
    """A table's header (or "") and the rows sorted; every line ends with \n."""
    lines = text.split("\n")
    assert lines[-1] == ""
    header, rows = (lines[0], lines[1:-1]) if table else ("", lines[:-1])
    return header, sorted(rows)


@pytest.mark.parametrize("args", [
    ("-a", "--format", "{{.Image}} {{.Command}} {{.State}} {{.Names}} {{.Networks}} {{.LocalVolumes}}"),
    ("-a", "--format", "table {{.Image}}\\t{{.Command}}\\t{{.Names}}\\t{{.Label \"x\"}}"),
    ("-a", "--no-trunc", "--format", "{{.Command}}|{{.Labels}}|{{.Ports}}"),
    ("-a", "--filter", "status=exited", "--filter", "exited=3", "--format", "{{.Names}}"),
    ("--filter", "status=exited", "--format", "{{.Names}}"),
    ("-a", "--filter", "name=^tw", "--format", "{{.Names}}"),
    ("-n", "1", "--format", "{{.Names}}"),
])
def test_ps_format_is_dockers(both, cli, args):
    for tool in (both, cli):
        tool("run", "--name", "one", "--network", "none", "demo:1", "true")
        tool("run", "--name", "two", "--network", "none", "demo:1", "sh", "-c", "echo a long command line; exit 3",
             check=False)
    assert cli("ps", *args, check=True).stdout == both("ps", *args).stdout
