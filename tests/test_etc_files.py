"""A container's /etc/hosts, /etc/hostname and /etc/resolv.conf: mode 0644, as Docker makes them."""

import json
import os
import stat

from overlaykit.store.files import write_text


def test_a_non_root_user_reads_the_etc_files(cli, demo):
    proc = cli("run", "--rm", "-u", "1000", demo, "sh", "-c",
               "id -u; cat /etc/hosts /etc/hostname /etc/resolv.conf >/dev/null && echo read; "
               "stat -c '%a %n' /etc/hosts /etc/hostname /etc/resolv.conf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1000", "read", "644 /etc/hosts", "644 /etc/hostname",
                                        "644 /etc/resolv.conf"]


def test_cat_etc_hosts_as_uid_1000_shows_localhost(cli, demo):
    proc = cli("run", "--rm", "-u", "1000", demo, "cat", "/etc/hosts")
    assert proc.returncode == 0, proc.stderr
    assert "127.0.0.1\tlocalhost" in proc.stdout


def test_the_record_files_on_the_host_are_0644_whatever_the_umask(cli, demo, layout):
    old = os.umask(0o077)
    try:
        cli("create", "--name", "c", demo, check=True)
    finally:
        os.umask(old)
    container_id = json.loads(cli("inspect", "c", check=True).stdout)[0]["Id"]
    for name in ("hosts", "hostname", "resolv.conf"):
        path = layout.container_file(container_id, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, name


def test_store_records_stay_private_by_default(tmp_path):
    write_text(str(tmp_path / "config.json"), "{}\n")
    assert stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode) == 0o600
