"""A network namespace per networking test, and what the tests look at inside it.

The session already runs in a namespace of its own (conftest.py); each networking test makes
another, so the bridges, veths and nftables rules it makes are its own, its "nothing left
behind" checks see only them, and whatever it leaks is gone with it when the test ends.
"""

import json
import os
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager

import pytest

from overlaykit.linux.namespaces import CLONE_NEWNET, setns, unshare
from overlaykit.linux.netdev import set_up


@contextmanager
def own_network_namespace():
    saved = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    unshare(CLONE_NEWNET)
    try:
        set_up("lo")
        yield
    finally:
        setns(saved, CLONE_NEWNET)
        os.close(saved)


@pytest.fixture
def netns(layout):
    """The test, and every overlaykit it runs, in a network namespace of its own (lo up).
    Depends on layout, so the containers are killed (by layout's teardown) after leaving it."""
    with own_network_namespace():
        yield


def devices() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def overlaykit_rules() -> list[str]:
    """The comments of the rules in table ip overlaykit (none if there is no table)."""
    proc = subprocess.run(["nft", "-j", "list", "table", "ip", "overlaykit"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    return [item["rule"].get("comment", "") for item in json.loads(proc.stdout)["nftables"]
            if "rule" in item]


def leases(layout, name: str) -> dict:
    path = layout.network_file(name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)["Leases"]


def inspect(cli, name: str) -> dict:
    return json.loads(cli("inspect", name, check=True).stdout)[0]


def address_of(cli, name: str, network: str) -> str:
    return inspect(cli, name)["NetworkSettings"]["Networks"][network]["IPAddress"]


HTTPD = ("mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && "
         "exec httpd -f -p 8080 -h /www")  # busybox's httpd, serving one page


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no http_proxy of the caller's


def fetch(url: str, timeout: float = 10) -> str:
    """GET url, retrying while the server is still starting (connection refused)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _DIRECT.open(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
