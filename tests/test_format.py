"""--format for ps and images and inspect -f: Docker's contexts, tables and Go templates on real
containers and images, byte for byte where Docker's text is known."""

import json
import os

LOOP = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


def test_ps_format_fields_table_and_no_trunc(cli, demo, layout):
    cid = cli("run", "-d", "--network", "none", "--name", "web", demo, "sh", "-c", LOOP,
              check=True).stdout.strip()
    out = cli("ps", "--format", "{{.ID}}|{{.Names}}|{{.Image}}|{{.State}}|{{.Command}}", check=True).stdout
    assert out == f'{cid[:12]}|web|demo:1|running|"sh -c \'trap \'exit 0…"\n'  # Docker quotes an argument with a space
    out = cli("ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}", check=True).stdout
    assert out == f'{cid} "sh -c \'{LOOP}\'"\n'
    table = cli("ps", "--format", "table {{.Names}}\\t{{upper .State}}\\t{{.Networks}}", check=True).stdout
    assert table == "NAMES     STATE     NETWORKS\nweb       RUNNING   none\n"
    row = json.loads(cli("ps", "--format", "{{json .}}", check=True).stdout)
    assert sorted(row) == ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                           "Names", "Networks", "Platform", "Ports", "RunningFor", "Size", "State", "Status"]
    assert row["CreatedAt"].endswith(" +0000 UTC") and row["LocalVolumes"] == "1"  # the image's VOLUME /data


def test_ps_default_table_is_dockers(cli, demo):
    cid = cli("run", "-d", "--name", "web", demo, "sleep", "30", check=True).stdout.strip()
    lines = cli("ps", check=True).stdout.splitlines()
    assert lines[0].startswith("CONTAINER ID   IMAGE     COMMAND      CREATED ")
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert lines[1].startswith(f'{cid[:12]}   demo:1    "sleep 30"   ')
    assert lines[0].index("NAMES") == lines[1].index("web") and lines[1].endswith("web")
    again = cli("ps", "--format", "table", check=True).stdout.splitlines()
    assert again[0].split() == lines[0].split() and again[1].startswith(f'{cid[:12]}   demo:1    "sleep 30"   ')


def test_inspect_format_reads_the_fields_scripts_read(cli, demo, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cli("run", "-d", "--name", "web", "-v", f"{data}:/srv", demo, "sh", "-c", LOOP, check=True)
    inspected = json.loads(cli("inspect", "web", check=True).stdout)[0]
    pid = cli("inspect", "-f", "{{.State.Pid}}", "web", check=True).stdout
    assert pid == f"{inspected['State']['Pid']}\n" and os.path.exists(f"/proc/{pid.strip()}")
    assert json.loads(cli("inspect", "--format", "{{json .Config}}", "web", check=True).stdout) == inspected["Config"]
    sources = cli("inspect", "-f", "{{range .Mounts}}{{.Source}} {{end}}", "web", check=True).stdout
    assert str(data) in sources.split()
    assert cli("inspect", "-f", '{{index .Config.Labels "nope"}}|{{.Config.Labels}}|{{.Config.Entrypoint}}',
               "web", check=True).stdout == "|map[]|[]\n"
    assert cli("inspect", "-f", "{{if .State.Running}}up{{else}}down{{end}} {{.Name}}", "web", demo,
               check=True).stdout == "up /web\ndown <no value>\n"
    assert cli("inspect", "-f", "{{join .Config.Env \",\"}}", demo, check=True).stdout == \
        "PATH=/usr/local/bin:/usr/bin:/bin,GREETING=hello\n"


def test_inspect_goes_on_past_a_missing_name(cli, demo):
    proc = cli("inspect", "-f", "{{.Id}}", "nothere", demo)
    assert proc.returncode == 1
    assert proc.stdout.startswith("sha256:") and proc.stdout.count("\n") == 1
    assert proc.stderr == "overlaykit: inspect: No such object: nothere\n"


def test_images_format(cli, demo):
    out = cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}", check=True).stdout
    assert out == "demo:1 744e494203ad 1.98MB\n"
    full = cli("images", "--no-trunc", "--format", "{{.ID}}", check=True).stdout
    assert full == "sha256:744e494203ad2266c6c04661635018978638cad9a0cd38254b2f6597bd00433b\n"
    table = cli("images", "--format", "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}", check=True).stdout
    assert table == "REPOSITORY   TAG       IMAGE ID\ndemo         1         744e494203ad\n"
    row = json.loads(cli("images", "--format", "{{json .}}", check=True).stdout)
    assert (row["Digest"], row["Containers"], row["VirtualSize"]) == ("<none>", "N/A", "1.982MB")


def test_a_bad_template_is_one_line_exit_1(cli, demo):
    for args, message in [
        (("images", "--format", "{{.Nope}}"),
         "overlaykit: images: --format: can't evaluate field Nope in type *formatter.ImageContext\n"),
        (("ps", "--format", "{{.ID"), "overlaykit: ps: --format: unclosed action\n"),
        (("images", "--format", "{{.ID"), "overlaykit: images: --format: unclosed action\n"),
        (("inspect", "-f", '{{template "x"}}', demo),
         "overlaykit: inspect: --format: {{template}} is not supported by overlaykit's Go templates\n"),
        (("inspect", "-f", "{{nosuch .Id}}", demo), 'overlaykit: inspect: --format: function "nosuch" not defined\n'),
    ]:
        proc = cli(*args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", message)
