"""The test session runs in a network namespace of its own (tests/conftest.py), so nothing a
test makes reaches the machine's own network."""

import os
import socket


def test_the_session_is_not_in_the_network_namespace_it_was_started_from():
    assert os.readlink("/proc/self/ns/net") != os.readlink(f"/proc/{os.getppid()}/ns/net")


def test_loopback_is_up_for_tests_that_serve_on_127_0_0_1():
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname(), timeout=5):
        conn, _ = server.accept()
        conn.close()
