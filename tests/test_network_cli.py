"""`network create|ls|inspect|rm|connect|disconnect`: Docker's commands and errors, each making
or removing its bridge and rules whole, in a network namespace of the test's own."""

import json
import os

from tests.network_helpers import devices, inspect, netns, overlaykit_rules

__all__ = ["netns"]  # the fixture


def _bridges() -> list[str]:
    return [d for d in devices() if d.startswith("okit")]


def test_create_ls_inspect_rm(cli, netns, layout):
    network_id = cli("network", "create", "--subnet", "10.50.0.0/24", "--gateway", "10.50.0.254",
                     "front", check=True).stdout.strip()
    assert len(network_id) == 64
    [bridge] = _bridges()
    assert bridge == f"okit-{network_id[:10]}"
    assert cli("network", "ls", check=True).stdout == (
        "NETWORK ID     NAME                DRIVER    SCOPE\n"
        f"{network_id[:12]}   front               bridge    local\n")
    [record] = json.loads(cli("network", "inspect", "front", check=True).stdout)
    assert record["IPAM"]["Config"] == [{"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.254"}]
    assert record["Options"] == {"com.docker.network.bridge.name": bridge}
    assert any("masquerade" not in c and " net " in c for c in overlaykit_rules())
    assert cli("network", "rm", network_id[:12], check=True).stdout == f"{network_id[:12]}\n"
    assert _bridges() == []
    assert overlaykit_rules() == []
    assert cli("network", "ls", "-q", check=True).stdout == ""


def test_a_subnet_is_picked_when_none_is_given(cli, netns):
    cli("network", "create", "a", check=True)
    cli("network", "create", "b", check=True)
    subnets = [json.loads(cli("network", "inspect", n, check=True).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
               for n in ("a", "b")]
    assert subnets == ["172.18.0.0/16", "172.19.0.0/16"]


def test_an_overlapping_subnet_is_refused_and_nothing_is_made(cli, netns, layout):
    cli("network", "create", "--subnet", "10.60.0.0/16", "a", check=True)
    before = (_bridges(), overlaykit_rules(), sorted(os.listdir(layout.networks)))
    proc = cli("network", "create", "--subnet", "10.60.5.0/24", "b")
    assert (proc.returncode, proc.stderr) == (
        1, "overlaykit: network create: subnet 10.60.5.0/24 overlaps network a (10.60.0.0/16)\n")
    assert (_bridges(), overlaykit_rules(), sorted(os.listdir(layout.networks))) == before


def test_bad_create_input_is_one_line(cli, netns):
    cases = [(["--subnet", "10.0.0.1/24", "x"], "--subnet 10.0.0.1/24: invalid subnet "
                                                 "(10.0.0.1/24 has host bits set)"),
             (["--subnet", "10.0.0.0/30", "x"], "--subnet 10.0.0.0/30: too small (at most /29)"),
             (["--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1", "x"],
              "--gateway 10.2.0.1: not a host address of 10.1.0.0/24"),
             (["--gateway", "10.2.0.1", "x"], "--gateway needs --subnet"),
             (["host"], "invalid network name 'host' (a predefined network mode)"),
             (["bad/name"], "invalid network name 'bad/name'")]
    for args, message in cases:
        proc = cli("network", "create", *args)
        assert (proc.returncode, proc.stderr) == (1, f"overlaykit: network create: {message}\n")
    assert _bridges() == []
    cli("network", "create", "x", check=True)
    proc = cli("network", "create", "x")
    assert proc.stderr == "overlaykit: network create: network with name x already exists\n"


def test_a_network_in_use_is_not_removed(cli, demo, netns):
    cli("network", "create", "net", check=True)
    cli("run", "-d", "--name", "web", "--network", "net", demo, "sleep", "300", check=True)
    proc = cli("network", "rm", "net")
    network_id = json.loads(cli("network", "inspect", "net", check=True).stdout)[0]["Id"]
    assert (proc.returncode, proc.stderr) == (
        1, f"overlaykit: network rm: error while removing network: network net id "
           f"{network_id[:12]} has active endpoints (web)\n")
    assert len(_bridges()) == 1
    cli("rm", "-f", "web", check=True)
    cli("network", "rm", "net", check=True)
    assert _bridges() == []


def test_the_default_bridge_cannot_be_removed(cli, demo, netns):
    cli("run", "--rm", "--network", "bridge", demo, "true", check=True)
    proc = cli("network", "rm", "bridge")
    assert (proc.returncode, proc.stderr) == (
        1, "overlaykit: network rm: bridge is a pre-defined network and cannot be removed\n")


def test_run_on_a_missing_network_is_125_and_leaves_no_container(cli, demo, netns, layout):
    proc = cli("run", "--rm", "--network", "nosuch", demo, "true")
    assert (proc.returncode, proc.stderr) == (125, "overlaykit: run: network nosuch not found\n")
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout) == []


def test_connect_and_disconnect_a_running_container(cli, demo, netns, layout):
    cli("network", "create", "--subnet", "10.70.0.0/24", "back", check=True)
    cli("run", "-d", "--name", "app", "--network", "bridge", demo, "sleep", "300", check=True)
    cli("network", "connect", "back", "app", check=True)
    out = cli("exec", "app", "ip", "-4", "addr", "show", "eth1", check=True).stdout
    assert "inet 10.70.0.2/24" in out
    networks = inspect(cli, "app")["NetworkSettings"]["Networks"]
    assert set(networks) == {"bridge", "back"}
    assert networks["back"]["IPAddress"] == "10.70.0.2"
    proc = cli("network", "connect", "back", "app")
    assert proc.stderr == "overlaykit: network connect: endpoint with name app already exists in network back\n"
    cli("network", "disconnect", "back", "app", check=True)
    assert "10.70.0.2" not in cli("exec", "app", "ip", "-4", "addr", check=True).stdout
    assert list(inspect(cli, "app")["NetworkSettings"]["Networks"]) == ["bridge"]
    assert json.loads(cli("network", "inspect", "back", check=True).stdout)[0]["Containers"] == {}
    cli("network", "rm", "back", check=True)  # no endpoint left


def test_a_host_network_container_cannot_be_connected(cli, demo, netns):
    cli("network", "create", "net", check=True)
    cli("create", "--name", "h", "--network", "host", demo, "true", check=True)
    proc = cli("network", "connect", "net", "h")
    assert (proc.returncode, proc.stderr) == (
        1, "overlaykit: network connect: container h uses --network host; "
           "it cannot be connected to a network\n")


def test_a_bridge_and_rules_without_a_record_are_found_and_removed(cli, netns, layout):
    """What a create killed between making its devices and writing its record leaves: check
    names the bridge and its rule, check --repair (or prune) removes them, by their labels."""
    network_id = cli("network", "create", "--subnet", "10.80.0.0/24", "lost", check=True).stdout.strip()
    os.unlink(layout.network_file("lost"))
    found = cli("check")
    assert found.returncode != 0
    problems = found.stdout + found.stderr
    assert f"device okit-{network_id[:10]} (\"overlaykit " in problems
    assert f"net {network_id[:12]}\"): its network is gone" in problems
    repaired = cli("check", "--repair", check=True)
    assert f"Deleted device: okit-{network_id[:10]}" in repaired.stdout + repaired.stderr
    assert _bridges() == [] and overlaykit_rules() == []
    cli("network", "create", "--subnet", "10.80.0.0/24", "lost2", check=True)
    os.unlink(layout.network_file("lost2"))
    pruned = cli("prune", check=True).stdout
    assert "Deleted device: okit-" in pruned and "Deleted nftables rule: postrouting" in pruned
    assert _bridges() == [] and overlaykit_rules() == []
    cli("check", check=True)
