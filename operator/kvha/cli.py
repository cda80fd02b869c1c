"""`kvha run` / `python -m kvha`: start the operator.

Order matters for safety: serve probes, start the caches (read-only, on every replica, so that a
standby is warm), win the leader Lease, only then start kopf; cancel kopf, running handlers
included, as soon as leadership cannot be proven. A replica that is not the leader never runs a
handler, and one that was the leader never writes past its deadline (the write guard refuses,
whatever a handler is in the middle of).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import kopf

from kvha.k8s.api import Kube, load_config
from kvha.k8s.informer import CACHES, open_session
from kvha.k8s.leader import LeaderElector, LeaseConfig
from kvha.leadership import WriteGuard
from kvha.metrics import observe_leadership
from kvha.probes import start_http
from kvha.settings import OperatorSettings

log = logging.getLogger("kvha")


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def run_operator(settings: OperatorSettings) -> int:
    import kvha.handlers  # noqa: F401, PLC0415 - importing registers the kopf handlers
    from kvha.handlers.freshness import caches_ready, caches_synced  # noqa: PLC0415 - as above

    api_client = load_config()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Leader or standby, a replica is ready once its caches are synced: only then can it act at once.
    runner = await start_http(
        host=settings.http_host, port=settings.http_port, healthy=lambda: True, ready=caches_ready
    )
    session = open_session(api_client, list_timeout=settings.list_timeout)
    caches = asyncio.create_task(CACHES.run(session, on_synced=caches_synced), name="caches")
    # The caches retry every API error themselves; if they end anyway (a bug), nothing may go on
    # deciding from caches that no longer change.
    caches.add_done_callback(lambda task: _caches_ended(task, stop))
    elector: LeaderElector | None = None
    lost = asyncio.Event()
    guard = WriteGuard() if settings.leader_election else WriteGuard.unguarded()
    try:
        if settings.leader_election:
            elector = LeaderElector(
                api_client,
                LeaseConfig(
                    namespace=settings.namespace,
                    name=settings.lease_name,
                    identity=settings.identity,
                    duration_seconds=settings.lease_seconds,
                    renew_every_seconds=max(settings.lease_seconds / 3, 1.0),
                    retry_every_seconds=max(settings.lease_seconds / 7, 0.5),
                    request_timeout_seconds=settings.api_timeout,
                ),
                guard=guard,
            )
            acquire = asyncio.create_task(elector.acquire())
            await _first(stop, _done_event(acquire))
            if stop.is_set():
                acquire.cancel()
                return 0
        observe_leadership(leader=True)
        holder = asyncio.create_task(elector.hold(lost)) if elector else None
        quit_flag = asyncio.Event()
        operator = asyncio.create_task(
            kopf.operator(
                clusterwide=True,
                standalone=True,  # leadership comes from our Lease, not from kopf peering
                stop_flag=quit_flag,
                memo=kopf.Memo(kube=Kube(api_client, guard=guard, timeout=settings.api_timeout), settings=settings),
            )
        )
        finished = _done_event(operator)
        await _first(stop, lost, finished)
        if not lost.is_set() and not finished.is_set():
            quit_flag.set()  # a clean stop lets a running step finish, still under the write guard
            await _first(lost, finished)
        if lost.is_set():
            # kopf's graceful stop waits for running handlers; past the deadline they must not
            # go on (their writes are refused anyway, but kopf's own patches and Events are not ours).
            operator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await operator
        if holder:
            holder.cancel()
        if lost.is_set():
            log.error("lost leadership; exiting so that the pod restarts as a standby")
            return 3
        return 4 if caches.done() and not caches.cancelled() else 0
    finally:
        observe_leadership(leader=False)
        if elector and not lost.is_set():
            await asyncio.to_thread(elector.release)
        caches.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await caches
        await session.close()
        await runner.cleanup()


def _caches_ended(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    if task.cancelled():
        return
    log.error("the caches stopped (%s); stopping the operator", task.exception())
    stop.set()


def _done_event(task: asyncio.Task[Any]) -> asyncio.Event:
    event = asyncio.Event()
    task.add_done_callback(lambda _: event.set())
    return event


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kvha", description="High availability for KubeVirt VMs.")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the operator (the default)")
    for target in (parser, run):
        target.add_argument("--log-format", choices=["plain", "json"], default="plain")
        target.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    code = 0
    with contextlib.suppress(KeyboardInterrupt), _profiled(os.environ.get("KVHA_PROFILE")):
        code = asyncio.run(run_operator(OperatorSettings()))
    sys.exit(code)


@contextlib.contextmanager
def _profiled(path: str | None) -> Iterator[None]:
    """KVHA_PROFILE=FILE: profile the whole run with cProfile and write the stats to FILE when the
    operator stops cleanly (SIGTERM): where its CPU goes at scale, measured rather than guessed."""
    if not path:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(path)
