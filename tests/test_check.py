"""`overlaykit check`, and readers that meet a layer a power cut left with empty link/lower files."""

import json
from pathlib import Path


def _layer_dirs(layout) -> list[Path]:
    return [p for p in Path(layout.overlay2).iterdir() if p.name != "l"]


def _break_every_layer(layout) -> None:
    """What an ext4 snapshot taken right after an unsynced load showed: link and lower empty."""
    for d in _layer_dirs(layout):
        (d / "link").write_text("")
        if (d / "lower").exists():
            (d / "lower").write_text("")


def test_check_says_ok_on_a_sound_store(cli, demo):
    proc = cli("check", "--verify-digests")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", "")


def test_broken_layers_give_one_line_in_run_rmi_and_prune(cli, demo, layout):
    _break_every_layer(layout)
    run = cli("run", "--rm", demo, "true")
    assert run.returncode == 125
    assert run.stderr.startswith("overlaykit: run: layer sha256:")
    assert "is broken: its link file is empty; run `overlaykit check --repair`" in run.stderr
    assert len(run.stderr.splitlines()) == 1
    check = cli("check")
    assert check.returncode == 1
    assert len(check.stdout.splitlines()) == 3  # one line per layer of demo:1
    assert all("its link file is empty" in line for line in check.stdout.splitlines())
    rmi = cli("rmi", demo)
    assert rmi.returncode == 0, rmi.stderr
    assert cli("prune").returncode == 0
    assert _layer_dirs(layout) == []
    assert list(Path(layout.links).iterdir()) == []  # their l/ links found by where they lead
    assert cli("check").stdout == "ok\n"


def test_load_again_replaces_a_broken_layer(cli, demo, layout, fixture_path):
    _break_every_layer(layout)
    broken = {d.name for d in _layer_dirs(layout)}
    cli("load", fixture_path("demo-docker.tar"), check=True)
    assert broken.isdisjoint(d.name for d in _layer_dirs(layout))
    assert cli("check").stdout == "ok\n"
    assert cli("run", "--rm", demo, "cat", "/etc/hostname").returncode == 0


def test_repair_drops_a_broken_layer_with_its_image_and_containers(cli, demo, layout):
    cli("create", "--name", "c1", demo, "true", check=True)
    base = min(_layer_dirs(layout), key=lambda d: (d / "lower").exists())  # the one without lower
    assert not (base / "lower").exists()
    (base / "link").write_text("")
    repair = cli("check", "--repair")
    assert repair.returncode == 0, repair.stdout
    lines = repair.stdout.splitlines()
    assert any(line.startswith("Deleted broken layer sha256:") and "with 2 above it" in line
               and "and the images that use it (" in line for line in lines)
    assert lines[-1] == "ok"
    assert cli("images", "--json").stdout.strip() in ("[]", "")
    assert cli("ps", "-a", "--json").stdout.strip() in ("[]", "")
    assert _layer_dirs(layout) == []


def test_half_containers_dangling_links_and_orphans_are_reported_then_repaired(cli, demo, layout):
    Path(layout.containers, "f" * 64).mkdir(parents=True)
    Path(layout.links, "DANGLING").symlink_to("../nothing/diff")
    Path(layout.overlay2, "0" * 64, "diff").mkdir(parents=True)
    Path(layout.volumes, "novol").mkdir(parents=True)
    check = cli("check")
    assert check.returncode == 1
    assert sorted(check.stdout.splitlines()) == sorted([
        f"container {'f' * 64}: config.json is missing (half-created or half-removed)",
        "l/DANGLING: leads nowhere",
        f"overlay2/{'0' * 64}: no layer or container names it (left by a crash)",
        "volume novol: its _data is missing",
    ])
    repair = cli("check", "--repair")
    assert repair.returncode == 0
    assert sorted(repair.stdout.splitlines()) == sorted([
        f"Deleted container {'f' * 64}", "Deleted link l/DANGLING",
        f"Deleted layer directory overlay2/{'0' * 64}", "Deleted volume novol (no _data)", "ok"])
    assert cli("run", "--rm", demo, "true").returncode == 0


def test_garbled_records_are_reported(cli, demo, layout):
    cli("create", "--name", "c2", demo, "true", check=True)
    (cdir,) = Path(layout.containers).iterdir()
    (cdir / "state.json").write_text("{")
    cli("volume", "create", "vol1", check=True)
    Path(layout.volume_meta("vol1")).write_text("")
    check = cli("check")
    assert sorted(check.stdout.splitlines()) == sorted([
        f"container {cdir.name}: state.json is not valid JSON",
        "volume vol1: opts.json is missing or garbled"])
    assert cli("check", "--repair").stdout.splitlines()[-1] == "ok"
    assert json.loads((cdir / "state.json").read_text())["Status"] == "exited"


def test_verify_digests_finds_a_changed_file(cli, demo, layout):
    top = max(_layer_dirs(layout), key=lambda d: len((d / "lower").read_text().split(":"))
              if (d / "lower").exists() else 0)
    victim = next(p for p in (top / "diff").rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_size)
    victim.write_bytes(b"X" * victim.stat().st_size)
    assert cli("check").stdout == "ok\n"  # same size: only re-hashing sees it
    check = cli("check", "--verify-digests")
    assert check.returncode == 1
    assert "does not match" in check.stdout and "the layer's files changed after it was stored" in check.stdout
