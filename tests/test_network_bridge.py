"""--network bridge and user networks: a veth per container, an address, a route, names, and
nothing left behind. Every test runs in a network namespace of its own (network_helpers.netns)."""

import os
import signal
import subprocess
import time

import psutil

from tests.network_helpers import (HTTPD, address_of, devices, fetch, inspect, leases, netns,
                                   overlaykit_rules)

__all__ = ["netns"]  # the fixture


def test_default_bridge_gives_eth0_an_address_a_default_route_and_hosts(cli, demo, netns, layout):
    out = cli("run", "--rm", "--network", "bridge", demo, "sh", "-c",
              "ip -o -4 addr show eth0; ip route; cat /etc/hosts; hostname", check=True).stdout
    hostname = out.split()[-1]
    assert "inet 172.30.0.2/16" in out
    assert "default via 172.30.0.1 dev eth0" in out
    assert f"172.30.0.2\t{hostname}\n" in out
    assert "okit0" in devices()  # made on first use, kept as Docker keeps docker0
    assert [d for d in devices() if d.startswith("okv")] == []
    assert leases(layout, "bridge") == {}


def test_the_host_reaches_a_container_on_the_bridge(cli, demo, netns):
    cli("run", "-d", "--name", "web", "--network", "bridge", demo, "sh", "-c", HTTPD, check=True)
    address = address_of(cli, "web", "bridge")
    assert fetch(f"http://{address}:8080/").startswith("hello from ")


def test_containers_of_a_user_network_reach_each_other_by_name(cli, demo, netns, layout):
    cli("network", "create", "net", check=True)
    cli("run", "-d", "--name", "web", "--network", "net", demo, "sh", "-c", HTTPD, check=True)
    fetch(f"http://{address_of(cli, 'web', 'net')}:8080/")  # httpd listens
    proc = cli("run", "--rm", "--network", "net", demo, "wget", "-qO-", "http://web:8080/")
    assert (proc.returncode, proc.stdout) == (0, f"hello from {inspect(cli, 'web')['Config']['Hostname']}\n")


def test_names_on_a_user_network_follow_who_runs(cli, demo, netns):
    cli("network", "create", "net", check=True)
    cli("run", "-d", "--name", "a", "--network", "net", demo, "sleep", "300", check=True)
    cli("run", "-d", "--name", "b", "--network", "net", demo, "sleep", "300", check=True)
    b = address_of(cli, "b", "net")
    assert f"{b}\tb " in cli("exec", "a", "cat", "/etc/hosts", check=True).stdout
    cli("rm", "-f", "b", check=True)
    assert "\tb " not in cli("exec", "a", "cat", "/etc/hosts", check=True).stdout


def test_the_default_bridge_gives_no_names(cli, demo, netns):
    cli("run", "-d", "--name", "web", "--network", "bridge", demo, "sleep", "300", check=True)
    proc = cli("run", "--rm", "--network", "bridge", demo, "sh", "-c", "grep -c web /etc/hosts")
    assert proc.stdout == "0\n"  # as Docker's default network: names need a user network


def test_an_internal_network_reaches_its_members_but_not_the_host(cli, demo, netns):
    cli("network", "create", "--internal", "--subnet", "10.77.0.0/24", "inner", check=True)
    cli("run", "-d", "--name", "web", "--network", "inner", demo, "sh", "-c", HTTPD, check=True)
    proc = cli("run", "--rm", "--network", "inner", demo, "sh", "-c",
               "sleep 0.3; wget -qO- http://web:8080/ && ip route")
    assert proc.stdout.startswith("hello from ")
    assert "10.77.0.0/24 dev eth0" in proc.stdout
    assert "okit " in " ".join(overlaykit_rules())  # its drop rules


def test_rm_leaves_no_veth_no_lease_and_no_rule(cli, demo, netns, layout):
    cli("network", "create", "net", check=True)
    cli("run", "-d", "--name", "web", "--network", "net", "-p", "18080:8080", demo,
        "sleep", "300", check=True)
    assert [d for d in devices() if d.startswith("okv")] != []
    assert len(leases(layout, "net")) == 1
    assert any(" ctr " in c for c in overlaykit_rules())
    cli("rm", "-f", "web", check=True)
    assert [d for d in devices() if d.startswith("okv")] == []
    assert leases(layout, "net") == {}
    assert not any(" ctr " in c for c in overlaykit_rules())
    cli("network", "rm", "net", check=True)
    assert [d for d in devices() if d.startswith("okit-")] == []
    assert overlaykit_rules() == []


def test_a_killed_supervisor_leaves_what_check_repair_removes(cli, demo, netns, layout):
    cli("network", "create", "net", check=True)
    cli("run", "-d", "--name", "web", "--network", "net", "-p", "18081:8080", demo,
        "sleep", "300", check=True)
    pid = inspect(cli, "web")["State"]["Pid"]
    supervisor = psutil.Process(pid).ppid()
    os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(leases(layout, "net")) == 1  # what the kernel does not take with the container
    assert any(" ctr " in c for c in overlaykit_rules())
    found = cli("check")
    assert found.returncode != 0
    assert "is leased to" in found.stdout + found.stderr
    cli("check", "--repair", check=True)
    assert leases(layout, "net") == {}
    assert not any(" ctr " in c for c in overlaykit_rules())
    assert [d for d in devices() if d.startswith("okv")] == []
    assert subprocess.run(["pgrep", "-f", "overlaykit.*18081"], capture_output=True).stdout == b""
    cli("check", check=True)


def test_the_default_bridge_avoids_a_subnet_the_host_routes(cli, demo, netns, layout):
    """As dockerd picks docker0's subnet: 172.30.0.0/16 is routed here (a VPN, say), so the
    default network takes the first free pool instead."""
    subprocess.run(["ip", "link", "add", "vpn0", "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "172.30.5.1/24", "dev", "vpn0"], check=True)
    subprocess.run(["ip", "link", "set", "vpn0", "up"], check=True)
    out = cli("run", "--rm", demo, "ip", "-o", "-4", "addr", "show", "eth0", check=True).stdout
    assert "inet 172.18.0.2/16" in out
