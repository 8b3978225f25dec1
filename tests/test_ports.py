"""-p and -P: a published port answers on 127.0.0.1 (the userland proxy) and on the host's
other addresses (nftables DNAT), is refused when taken, and goes with the container."""

import json
import os
import socket
import threading
import time

from overlaykit.runtime import network_proxy
from overlaykit.runtime.network_ports import Binding
from tests.network_helpers import HTTPD, devices, fetch, inspect, leases, netns, overlaykit_rules

__all__ = ["netns"]  # the fixture


def test_a_published_port_answers_on_127_0_0_1(cli, demo, netns):
    cli("run", "-d", "--name", "web", "-p", "127.0.0.1:18080:8080", "--network", "bridge", demo,
        "sh", "-c", HTTPD, check=True)
    assert fetch("http://127.0.0.1:18080/").startswith("hello from ")
    ports = inspect(cli, "web")["NetworkSettings"]["Ports"]
    assert ports == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}
    assert inspect(cli, "web")["HostConfig"]["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}


def test_a_published_port_is_translated_for_the_hosts_own_address(cli, demo, netns):
    """The DNAT rule, not the proxy: the output hook sends the host's own address to the container."""
    cli("run", "-d", "--name", "web", "-p", "18082:8080", "--network", "bridge", demo,
        "sh", "-c", HTTPD, check=True)
    comments = overlaykit_rules()
    assert sum(" ctr " in c for c in comments) == 2  # prerouting and output
    # The gateway is an address of this host: its packets pass the output hook's DNAT.
    assert fetch("http://172.30.0.1:18082/").startswith("hello from ")


def test_publish_without_a_host_port_gets_one_from_the_kernel(cli, demo, netns):
    cli("run", "-d", "--name", "web", "-p", "8080", "--network", "bridge", demo,
        "sh", "-c", HTTPD, check=True)
    [binding] = inspect(cli, "web")["NetworkSettings"]["Ports"]["8080/tcp"]
    assert int(binding["HostPort"]) > 0
    assert fetch(f"http://127.0.0.1:{binding['HostPort']}/").startswith("hello from ")


def test_port_lists_the_published_ports_as_docker_port(cli, demo, netns):
    cli("run", "-d", "--name", "web", "-p", "127.0.0.1:18087:8080", "-p", "18088:53/udp",
        "--network", "bridge", demo, "sleep", "300", check=True)
    assert cli("port", "web", check=True).stdout == ("53/udp -> 0.0.0.0:18088\n"
                                                     "8080/tcp -> 127.0.0.1:18087\n")
    assert cli("port", "web", "8080", check=True).stdout == "127.0.0.1:18087\n"
    proc = cli("port", "web", "81")
    assert (proc.returncode, proc.stderr) == (
        1, "overlaykit: port: no public port '81/tcp' published for web\n")


def test_publish_all_publishes_what_was_exposed(cli, demo, netns):
    cli("run", "-d", "--name", "web", "-P", "-p", "8080", "--network", "bridge", demo,
        "sh", "-c", HTTPD, check=True)
    record = inspect(cli, "web")
    assert record["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert record["HostConfig"]["PublishAllPorts"] is True
    port = record["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hello from ")


def test_a_port_in_use_fails_the_run_and_makes_nothing(cli, demo, netns, layout):
    with socket.create_server(("127.0.0.1", 18083)):
        proc = cli("run", "--rm", "-p", "127.0.0.1:18083:80", "--network", "bridge", demo, "true")
    assert proc.returncode == 125
    assert proc.stderr == "overlaykit: run: Bind for 127.0.0.1:18083 failed: port is already allocated\n"
    assert leases(layout, "bridge") == {}
    assert [d for d in devices() if d.startswith("okv")] == []
    assert not any(" ctr " in c for c in overlaykit_rules())
    assert json.loads(cli("ps", "-a", "--json", check=True).stdout) == []  # --rm took it


def test_bad_publish_specs_are_one_line_and_125(cli, demo, netns, layout):
    for spec, message in [("80/sctp", "invalid protocol 'sctp' (tcp or udp)"),
                          ("99999:80", "invalid host port '99999'"),
                          ("1.2.3:80:80", "invalid IP address '1.2.3'"),
                          ("8000-8001:80", "port ranges are not supported")]:
        proc = cli("run", "--rm", "-p", spec, "--network", "bridge", demo, "true")
        assert (proc.returncode, proc.stderr) == (125, f"overlaykit: run: -p {spec}: {message}\n")
    proc = cli("run", "--rm", "-p", "80:80", "--network", "none", demo, "true")
    assert (proc.returncode, proc.stderr) == (
        125, "overlaykit: run: conflicting options: port publishing and --network none\n")
    assert not os.path.exists(layout.containers) or os.listdir(layout.containers) == []


def test_ports_with_network_host_are_dropped_with_a_warning(cli, demo, netns):
    proc = cli("run", "--rm", "-p", "18086:80", "--network", "host", demo, "true")
    assert (proc.returncode, proc.stderr) == (
        0, "overlaykit: run: warning: published ports are discarded when using host network mode\n")


def test_ports_and_proxy_go_when_the_container_stops(cli, demo, netns):
    cli("run", "-d", "--name", "web", "-p", "127.0.0.1:18084:8080", "--network", "bridge", demo,
        "sh", "-c", HTTPD, check=True)
    fetch("http://127.0.0.1:18084/")
    cli("stop", "-t", "1", "web", check=True)
    assert not any(" ctr " in c for c in overlaykit_rules())
    with socket.create_server(("127.0.0.1", 18084)):  # free again: the proxy is gone
        pass
    cli("start", "web", check=True)  # and made again at the next start
    assert fetch("http://127.0.0.1:18084/").startswith("hello from ")


def test_the_proxy_relays_udp_both_ways(netns):
    """UDP through the userland proxy, to an echo server on 127.0.0.1 (busybox in the test image
    has no UDP server): each client gets its answers back through the published port."""
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))

    def serve():
        while True:
            data, peer = echo.recvfrom(100)
            echo.sendto(data.upper(), peer)
    threading.Thread(target=serve, daemon=True).start()
    bound = network_proxy.bind_all([Binding("udp", "127.0.0.1", 0, echo.getsockname()[1])], "run")
    port = bound[0][0].host_port
    pid = network_proxy.start(bound, "127.0.0.1")
    try:
        for word in (b"one", b"two"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(10)
                client.sendto(word, ("127.0.0.1", port))
                assert client.recvfrom(100)[0] == word.upper()
    finally:
        network_proxy.stop(pid)
        echo.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the proxy is gone, and its port with it


def test_a_restarted_container_is_published_again(cli, demo, netns):
    script = ("if [ -e /second ]; then exec httpd -f -p 8080 -h /www; fi; "
              "mkdir /www; echo again > /www/index.html; touch /second; exit 3")
    cli("run", "-d", "--name", "web", "--restart", "on-failure:2", "-p", "127.0.0.1:18085:8080",
        demo, "sh", "-c", script, check=True)
    assert fetch("http://127.0.0.1:18085/") == "again\n"  # served by the second start
    # rm -f once the second start is recorded (httpd may answer before it is), so it kills
    # that one; else the policy restarts what the teardown kills
    while inspect(cli, "web")["RestartCount"] != 1 or not inspect(cli, "web")["State"]["Running"]:
        time.sleep(0.05)
    cli("rm", "-f", "web", check=True)
