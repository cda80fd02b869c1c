"""A proxy between one client (the operator under test) and the API server that makes chosen watch
events reach that client late.

An operator's view of the cluster can lag behind the API by seconds or minutes: a watch backlog
after a restart at scale, a starved event loop, a slow link. To reproduce "kvha sees this node's
Lease renewals late while the node is perfectly alive" deterministically, the proxy holds back
the watch events that match a predicate for a fixed delay (in order), while every other request
and event passes at once. Lists and single reads are never delayed: they show the API as it is.

The client talks plain HTTP to 127.0.0.1 without credentials; the proxy talks TLS to the API server
with the credentials it was given (use an admin's, or the identity the client should have).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3
import yaml

from kvha_testbed.kube import Credentials, Obj

EventMatch = Callable[[Obj], bool]
"""Called with each watch event ({"type": ..., "object": ...}); True delays it."""

# Headers of one hop, never forwarded; Accept-Encoding is dropped so watch streams stay parseable.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "accept-encoding",
    "content-length",
}


class DelayingProxy:
    """`start()`, point a client at `kubeconfig()`, then `delay_watch_events(match, seconds)` or
    `delay_requests(match, seconds)`."""

    def __init__(self, credentials: Credentials) -> None:
        self.upstream = credentials.server
        context = ssl.create_default_context(cafile=str(credentials.ca))
        if credentials.cert and credentials.key:
            context.load_cert_chain(str(credentials.cert), str(credentials.key))
        self._auth = {"Authorization": f"Bearer {credentials.token}"} if credentials.token else {}
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=64, block=False, ssl_context=context)
        self._rules: list[tuple[EventMatch, float]] = []
        self._request_rules: list[tuple[Callable[[str, str], bool], float]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.delayed_events = 0

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DelayingProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._pool.clear()

    def delay_watch_events(self, match: EventMatch, seconds: float) -> None:
        with self._lock:
            self._rules.append((match, seconds))

    def delay_requests(self, match: Callable[[str, str], bool], seconds: float) -> None:
        """Hold back the requests `match(method, path)` selects, before forwarding them (a slow
        initial list, for example)."""
        with self._lock:
            self._request_rules.append((match, seconds))

    def request_delay(self, method: str, path: str) -> float:
        with self._lock:
            rules = list(self._request_rules)
        return max((seconds for match, seconds in rules if match(method, path)), default=0.0)

    def delay_of(self, event: Obj) -> float:
        with self._lock:
            rules = list(self._rules)
        delays = [seconds for match, seconds in rules if match(event)]
        return max(delays, default=0.0)

    def kubeconfig(self, path: Path, *, user: str = "via-proxy") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {}}],
            "contexts": [{"name": user, "context": {"cluster": "proxy", "user": user}}],
            "current-context": user,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Any:
        watch = _is_watch(path)
        return self._pool.request(
            method,
            self.upstream + path,
            body=body,
            headers={**headers, **self._auth},
            preload_content=False,
            redirect=False,
            retries=False,
            timeout=urllib3.Timeout(connect=10, read=None if watch else 120),
        )


def _is_watch(path: str) -> bool:
    query = path.partition("?")[2]
    return any(part in ("watch=true", "watch=1") for part in query.split("&"))


def _handler_for(proxy: DelayingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: the operator's own log says what it asked

        def do_GET(self) -> None:
            self._relay()

        def do_POST(self) -> None:
            self._relay()

        def do_PUT(self) -> None:
            self._relay()

        def do_PATCH(self) -> None:
            self._relay()

        def do_DELETE(self) -> None:
            self._relay()

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            time.sleep(proxy.request_delay(self.command, self.path))
            try:
                upstream = proxy.forward(self.command, self.path, headers, body)
            except urllib3.exceptions.HTTPError as error:
                self.send_error(502, str(error))
                return
            try:
                self.send_response(upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                if _is_watch(self.path) and upstream.status == 200:
                    self._stream(upstream)
                else:
                    data = upstream.read(decode_content=False)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client went away
            finally:
                with contextlib.suppress(Exception):
                    upstream.release_conn()

        def _stream(self, upstream: Any) -> None:
            """Relay a watch stream line by line, each matching event held back by its delay."""
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            due: list[tuple[float, int, bytes | None]] = []
            order = itertools.count()
            ready = threading.Condition()

            def read() -> None:
                buffer = b""
                latest = 0.0
                try:
                    for chunk in upstream.stream(amt=None, decode_content=False):
                        buffer += chunk
                        while b"\n" in buffer:
                            line, buffer = buffer.split(b"\n", 1)
                            if not line.strip():
                                continue
                            delay = proxy.delay_of(json.loads(line))
                            if delay:
                                proxy.delayed_events += 1
                            at = time.monotonic() + delay
                            latest = max(latest, at)
                            with ready:
                                heapq.heappush(due, (at, next(order), line + b"\n"))
                                ready.notify()
                except (urllib3.exceptions.HTTPError, OSError, ValueError):
                    pass
                with ready:  # the end of the stream, after whatever is still held back
                    heapq.heappush(due, (max(latest, time.monotonic()), next(order), None))
                    ready.notify()

            reader = threading.Thread(target=read, name="api-proxy-watch", daemon=True)
            reader.start()
            try:
                while True:
                    with ready:
                        while not due or due[0][0] > time.monotonic():
                            ready.wait(timeout=(due[0][0] - time.monotonic()) if due else None)
                        _, _, line = heapq.heappop(due)
                    if line is None:
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            finally:
                with contextlib.suppress(Exception):
                    upstream.shutdown()
                self.close_connection = True

    return Handler
