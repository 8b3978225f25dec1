"""The test session runs in a network namespace of its own (tests/conftest.py), so nothing a
test makes reaches the machine's own network."""

import socket


def test_the_session_sees_only_its_own_loopback():
    assert [name for _, name in socket.if_nameindex()] == ["lo"]


def test_loopback_is_up_for_tests_that_serve_on_127_0_0_1():
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname(), timeout=5):
        conn, _ = server.accept()
        conn.close()
