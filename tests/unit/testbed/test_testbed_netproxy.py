"""The blackholing proxy: what is held back while cut off, what arrives after the heal."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kvha_testbed.netproxy import BlackholeProxy


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1024):
                received.append(data)
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()
    server.close()


def _client(proxy: BlackholeProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    sock.settimeout(0.5)
    return sock


def test_a_live_connection_gets_what_it_sent_while_cut_off_after_the_heal(echo: tuple[str, int]) -> None:
    with BlackholeProxy(echo) as proxy:
        client = _client(proxy)
        client.sendall(b"before")
        assert client.recv(64) == b"before"
        proxy.blackhole()
        client.sendall(b"during")
        with pytest.raises(TimeoutError):
            client.recv(64)
        assert proxy.heal() == (1, 0)
        client.settimeout(3)
        assert client.recv(64) == b"during"
        client.close()


def test_a_connection_closed_while_cut_off_delivers_nothing(echo: tuple[str, int]) -> None:
    with BlackholeProxy(echo) as proxy:
        client = _client(proxy)
        client.sendall(b"hello")
        assert client.recv(64) == b"hello"
        proxy.blackhole()
        client.sendall(b"too late")
        client.close()  # the client timed out and gave up
        assert proxy.heal() == (0, 1)
        probe = _client(proxy)  # the proxy itself works again
        probe.sendall(b"probe")
        probe.settimeout(3)
        assert probe.recv(64) == b"probe"
        probe.close()
