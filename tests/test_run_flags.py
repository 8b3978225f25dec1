"""run and create flags with Docker's meaning, on real containers of demo:1: --init, --add-host,
--dns*, --shm-size, --label/--label-file, -e NAME, --pull, --platform, -v ./rel, --ulimit."""

import json
import os
import subprocess
import sys
import time

import pytest


def _inspect(cli, name: str) -> dict:
    (data,) = json.loads(cli("inspect", name, check=True).stdout)
    return data


def _states(cli, name: str) -> list[str]:
    """(command, state) of every process of the container but the one looking."""
    out = cli("exec", name, "sh", "-c", "for s in /proc/[0-9]*/stat; do echo $(cut -d' ' -f2,3 $s); "
              "done", check=True).stdout
    return sorted(line for line in out.splitlines() if "(sh)" not in line and "(cut)" not in line)


def test_init_runs_tini_as_pid_1_which_reaps_orphans_and_passes_the_exit_code(cli, demo):
    # an orphan that exits at once is left to PID 1; `sleep` as PID 1 never reaps it
    orphan = "(sleep 0.2 &); echo started; exec sleep 1000"
    for name, options, expected in (("bare", (), ["(sleep) S", "(sleep) Z"]),
                                    ("init", ("--init",), ["(docker-init) S", "(sleep) S"])):
        cli("run", "-d", "--name", name, *options, demo, "sh", "-c", orphan, check=True)
        deadline = time.monotonic() + 20
        while (states := _states(cli, name)) != expected:
            assert time.monotonic() < deadline, states
            time.sleep(0.1)
    out = cli("run", "--rm", "--init", demo, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 7")
    assert (out.returncode, out.stdout) == (7, "/sbin/docker-init -- sh -c cat /proc/1/cmdline | "
                                               "tr '\\0' ' '; exit 7 ")
    # the init is the host's tini-static, bound read-only: the container cannot write it
    before = open("/usr/bin/tini-static", "rb").read()
    out = cli("run", "--rm", "--init", demo, "sh", "-c",
              "grep ' /sbin/docker-init ' /proc/self/mountinfo | cut -d' ' -f6; "
              "echo x >> /sbin/docker-init; echo x >> /proc/1/exe")
    assert out.returncode != 0 and out.stdout.split(",")[0] == "ro", out.stdout
    assert out.stderr.count("can't create") == 2, out.stderr
    assert open("/usr/bin/tini-static", "rb").read() == before
    cid = cli("create", "--init", demo, "true", check=True).stdout.strip()
    assert _inspect(cli, cid)["HostConfig"]["Init"] is True
    assert _inspect(cli, cid)["Path"] == "true"  # as Docker: the init is not the command


def test_init_forwards_stop_signal_to_the_command(cli, demo):
    cli("run", "-d", "--init", "--name", "web", demo, "sh", "-c",
        'trap "echo got TERM; exit 5" TERM; echo started; while true; do sleep 0.1; done',
        check=True)
    deadline = time.monotonic() + 20
    while "started" not in cli("logs", "web", check=True).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cli("stop", "web", check=True)
    assert _inspect(cli, "web")["State"]["ExitCode"] == 5
    assert "got TERM" in cli("logs", "web", check=True).stdout


def test_add_host_and_dns_options_write_the_etc_files(cli, demo):
    out = cli("run", "--rm", "--add-host", "db:10.1.2.3", "--add-host", "v6:fd00::1",
              "--add-host", "gw:host-gateway", "--dns", "192.0.2.53", "--dns-search", "example.org",
              "--dns-option", "ndots:2", demo, "sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
              check=True).stdout
    hosts, resolv = out.split("---\n")
    assert hosts.endswith("10.1.2.3\tdb\nfd00::1\tv6\n172.30.0.1\tgw\n")
    assert resolv == "nameserver 192.0.2.53\nsearch example.org\noptions ndots:2\n"
    cid = cli("create", "--add-host", "db:10.1.2.3", "--dns", "192.0.2.53", demo, "true",
              check=True).stdout.strip()
    host = _inspect(cli, cid)["HostConfig"]
    assert (host["ExtraHosts"], host["Dns"], host["DnsSearch"]) == (["db:10.1.2.3"], ["192.0.2.53"], [])
    for args, message in (
            (("--add-host", "nocolon"), "run: --add-host nocolon: bad format, it is NAME:IP"),
            (("--add-host", "db:999.1.1.1"), "run: --add-host db:999.1.1.1: invalid IP address"),
            (("--dns", "dns.example"), "run: --dns dns.example: invalid IP address")):
        bad = cli("run", "--rm", *args, demo, "true")
        assert (bad.returncode, bad.stderr) == (125, f"overlaykit: {message}\n")


def test_shm_size_sizes_dev_shm(cli, demo):
    out = cli("run", "--rm", "--shm-size", "8m", demo, "df", "-k", "/dev/shm", check=True).stdout
    assert out.splitlines()[1].split()[1] == "8192"
    out = cli("run", "--rm", demo, "df", "-k", "/dev/shm", check=True).stdout
    assert out.splitlines()[1].split()[1] == "65536"  # Docker's 64 MiB
    bad = cli("run", "--rm", "--shm-size", "lots", demo, "true")
    assert (bad.returncode, bad.stderr) == (
        125, "overlaykit: run: --shm-size lots: invalid size: 'lots'\n")


def test_labels_from_options_and_files_merge_over_the_images(cli, demo, tmp_path):
    (tmp_path / "labels").write_text("# team labels\nteam=storage\n\ntier=db\n")
    cid = cli("create", "-l", "tier=web", "--label", "flag", "--label-file", str(tmp_path / "labels"),
              demo, "true", check=True).stdout.strip()
    labels = _inspect(cli, cid)["Config"]["Labels"]
    assert labels == {"team": "storage", "tier": "web", "flag": ""}
    bad = cli("create", "--label-file", str(tmp_path / "missing"), demo, "true")
    assert (bad.returncode, bad.stderr) == (
        125, f"overlaykit: create: --label-file {tmp_path / 'missing'}: No such file or directory\n")


def test_env_name_alone_takes_the_callers_value_or_is_absent(cli, demo):
    out = cli("run", "--rm", "-e", "FROM_HOST", "-e", "NOT_SET_ANYWHERE", demo, "sh", "-c",
              "echo \"$FROM_HOST\"; env | grep -c NOT_SET_ANYWHERE",
              env={"FROM_HOST": "value from the caller"})
    assert out.stdout == "value from the caller\n0\n"


def test_pull_policies_and_platform(cli, demo):
    never = cli("run", "--rm", "--pull", "never", "nosuch:1", "true")
    assert (never.returncode, never.stderr) == (125, "overlaykit: run: No such image: nosuch:1\n")
    assert cli("run", "--rm", "--pull", "never", demo, "true").returncode == 0
    assert cli("run", "--rm", "--pull", "missing", demo, "true").returncode == 0
    # always pulls first, even what the store has: here (the tests' own network namespace)
    # no registry answers, which is one line and nothing run
    always = cli("run", "--rm", "--pull", "always", demo, "echo", "ran")
    assert always.returncode == 125 and always.stdout == ""
    assert always.stderr.startswith("overlaykit: run: pull: demo:1: ") and always.stderr.count("\n") == 1
    bad = cli("run", "--rm", "--pull", "sometimes", demo, "true")
    assert bad.returncode == 125 and "--pull" in bad.stderr
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    other = "arm64" if arch == "amd64" else "amd64"
    assert cli("run", "--rm", "--platform", f"linux/{arch}", demo, "true").returncode == 0
    wrong = cli("run", "--rm", "--platform", f"linux/{other}", demo, "true")
    assert (wrong.returncode, wrong.stderr) == (
        125, f"overlaykit: run: image with reference demo:1 was found but does not match the "
             f"specified platform: wanted linux/{other}, actual: linux/{arch}\n")
    garbled = cli("create", "--platform", "amd64", demo, "true")
    assert (garbled.returncode, garbled.stderr) == (
        125, "overlaykit: create: --platform amd64: it is OS/ARCH[/VARIANT] (linux/amd64)\n")


def test_relative_bind_source_is_relative_to_the_current_directory(layout, demo, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("relative\n")
    (tmp_path / ".hidden").mkdir()
    out = subprocess.run([sys.executable, "-m", "overlaykit", "--root", layout.root, "run", "--rm",
                          "-v", "./data:/data:ro", "-v", ".hidden:/h", "-v", ".:/all", demo, "sh", "-c",
                          "cat /data/f; ls -a /h | wc -l; ls /all | grep -c data"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "relative\n2\n1\n"), out.stderr


def test_ulimit_is_set_in_the_container(cli, demo):
    out = cli("run", "--rm", "--ulimit", "nofile=1024:2048", "--ulimit", "core=0", demo, "sh", "-c",
              "ulimit -Sn; ulimit -Hn; ulimit -c", check=True).stdout
    assert out == "1024\n2048\n0\n"
    cid = cli("create", "--ulimit", "nproc=64", demo, "true", check=True).stdout.strip()
    assert _inspect(cli, cid)["HostConfig"]["Ulimits"] == [{"Name": "nproc", "Soft": 64, "Hard": 64}]
    for value, message in (("nofile=10:5", "ulimit soft limit must be less than or equal to hard "
                                           "limit: 10 > 5"),
                           ("bogus=1", "invalid ulimit type: bogus"),
                           ("nofile", "invalid ulimit argument, it is NAME=SOFT[:HARD]")):
        bad = cli("run", "--rm", "--ulimit", value, demo, "true")
        assert (bad.returncode, bad.stderr) == (125, f"overlaykit: run: --ulimit {value}: {message}\n")


@pytest.mark.parametrize("flag", ["--init", "--add-host=a:1.2.3.4", "--ulimit=nofile=64"])
def test_a_refused_flag_leaves_nothing_in_the_store(cli, demo, layout, flag):
    bad = cli("run", "--rm", flag, "--ulimit", "nofile=x", demo, "true")
    assert bad.returncode == 125
    assert cli("ps", "-a", "-q", check=True).stdout == ""
