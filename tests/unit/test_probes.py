"""The operator's probes: alive while it runs, ready only when it can judge (caches synced)."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from kvha.probes import start_http


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readyz_answers_503_until_the_caches_are_synced_while_healthz_stays_ok() -> None:
    synced = [False]

    async def probe() -> list[tuple[str, int]]:
        port = _free_port()
        runner = await start_http(host="127.0.0.1", port=port, healthy=lambda: True, ready=lambda: synced[0])
        answers = []
        try:
            async with aiohttp.ClientSession() as session:
                for path in ("/healthz", "/readyz"):
                    async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                        answers.append((path, resp.status))
                synced[0] = True
                async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    answers.append(("/readyz", resp.status))
        finally:
            await runner.cleanup()
        return answers

    assert asyncio.run(probe()) == [("/healthz", 200), ("/readyz", 503), ("/readyz", 200)]
