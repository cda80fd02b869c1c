"""The concurrency a failover's restarts were given is the concurrency they get.

asyncio's default executor has os.cpu_count() + 4 threads: on the 2-core benchmark machine 6,
which held `CONCURRENT_ACTIONS` (16) restarts to 6 at a time without anything saying so.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from kubernetes import config

from kvha.actuation.executor import CONCURRENT_ACTIONS
from kvha.k8s.api import API_THREADS, _threaded, api_executor, load_config


def test_the_api_threads_leave_room_for_every_concurrent_restart_and_the_leader_s_own_calls() -> None:
    executor = api_executor()
    try:
        assert executor._max_workers == API_THREADS
        assert API_THREADS >= CONCURRENT_ACTIONS + 4  # status writes and lease renewals never queue behind restarts
    finally:
        executor.shutdown()


def test_one_connection_per_api_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_cluster() -> None:
        raise config.ConfigException("no cluster here")

    monkeypatch.setattr(config, "load_incluster_config", no_cluster)
    monkeypatch.setattr(config, "load_kube_config", lambda: None)
    assert load_config().configuration.connection_pool_maxsize == API_THREADS


def test_threaded_calls_run_in_the_loop_s_default_executor() -> None:
    """run_operator installs `api_executor` as the default executor; `_threaded` must use it."""
    names: list[str] = []

    @_threaded
    def call() -> None:
        names.append(threading.current_thread().name)

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(api_executor())
        await asyncio.gather(*(call() for _ in range(CONCURRENT_ACTIONS)))

    asyncio.run(main())
    assert all(name.startswith("kvha-api") for name in names)
