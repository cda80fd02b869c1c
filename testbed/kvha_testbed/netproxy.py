"""A TCP proxy on loopback that can blackhole one client's traffic to the API server, and heal.

The split-brain question for leader election is what an operator does while its network is gone
and what it sends when the network comes back. A process cannot be cut off from 127.0.0.1 without
privileges, so a replica under test reaches the API server through this proxy instead (TLS stays
end to end: the proxy moves bytes, and the server's certificate names 127.0.0.1).

* `blackhole()`: nothing more is forwarded, either way. Connections stay open and what the client
  sends waits, unread, as it would in TCP retransmission buffers; new connections are accepted
  and hang too.
* `heal()`: connections whose client is still there resume, and what they sent meanwhile arrives
  now, late (a partition that heals); connections the client closed meanwhile (it timed out, or
  exited) are closed without delivering anything, as TCP would drop them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

__all__ = ["BlackholeProxy"]

_CHUNK = 65536
_POLL = 0.1


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket, forwarding: threading.Event) -> None:
        self.client = client
        self.upstream = upstream
        self.forwarding = forwarding
        self.closed = threading.Event()
        self.pending = b""  # read from the client while healing, forwarded first
        self._lock = threading.Lock()

    def start(self) -> None:
        for source, target, name in ((self.client, self.upstream, "up"), (self.upstream, self.client, "down")):
            threading.Thread(target=self._pump, args=(source, target), name=f"proxy-{name}", daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                if not self.forwarding.wait(_POLL):
                    continue  # blackholed: leave the bytes unread where they are
                if source is self.client:
                    with self._lock:
                        pending, self.pending = self.pending, b""
                    if pending:
                        target.sendall(pending)
                readable, _, _ = select.select([source], [], [], _POLL)
                if not readable or not self.forwarding.is_set():
                    continue
                data = source.recv(_CHUNK)
                if not data:
                    break
                target.sendall(data)
        except (OSError, ValueError):  # ValueError: select() on a socket closed by the other pump
            pass
        self.close()

    def settle(self) -> bool:
        """Before healing: keep the connection if its client is still there (what it sent while
        cut off is kept for delivery); close it if the client has gone. True if kept."""
        buffered = []
        try:
            while True:
                data = self.client.recv(_CHUNK, socket.MSG_DONTWAIT)
                if not data:
                    self.close()  # the client closed its end while cut off: its bytes are lost
                    return False
                buffered.append(data)
        except BlockingIOError:
            with self._lock:
                self.pending += b"".join(buffered)
            return True
        except OSError:
            self.close()
            return False

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class BlackholeProxy:
    """`with BlackholeProxy(("127.0.0.1", port)) as proxy:` then point a kubeconfig at `proxy.url`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def blackholed(self) -> bool:
        return not self._forwarding.is_set()

    def start(self) -> BlackholeProxy:
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], _POLL)
            except (OSError, ValueError):
                return  # closed
            if not readable:
                continue
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            connection = _Connection(client, upstream, self._forwarding)
            with self._lock:
                self._connections = [c for c in self._connections if not c.closed.is_set()]
                self._connections.append(connection)
            connection.start()

    def blackhole(self) -> None:
        self._forwarding.clear()

    def heal(self) -> tuple[int, int]:
        """Resume forwarding; returns (connections resumed, connections dropped)."""
        with self._lock:
            connections = [c for c in self._connections if not c.closed.is_set()]
        kept = sum(1 for c in connections if c.settle())
        self._forwarding.set()
        return kept, len(connections) - kept

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for connection in self._connections:
                connection.close()

    def __enter__(self) -> BlackholeProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()
