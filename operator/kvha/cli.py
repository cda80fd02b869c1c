"""`kvha run` / `python -m kvha`: start the operator; `kvha plan` and `kvha status` (also as the
kubectl plugin `kubectl kvha …`): read-only what-if and incident views for people.

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
import signal
import sys
from collections.abc import Iterator
from typing import Any

import kopf

from kvha.k8s.api import Kube, api_executor, load_config
from kvha.k8s.informer import CACHES, open_session
from kvha.k8s.leader import LeaderElector, LeaseConfig
from kvha.k8s.listing import Lister, user_client
from kvha.leadership import WriteGuard
from kvha.metrics import observe_leadership
from kvha.models.base import Priority
from kvha.models.hapolicy import HAPolicyStatus
from kvha.probes import start_http
from kvha.settings import OperatorSettings, SettingsError

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
    loop.set_default_executor(api_executor())
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


def _node_list(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected one or more node names, separated by commas")
    return names


def _priority(value: str) -> Priority:
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_read_only_commands(sub: Any) -> None:
    plan = sub.add_parser(
        "plan",
        help="what kvha would do if these nodes failed now (read-only)",
        description="Replays the operator's own failover steps on one read of the cluster; writes nothing.",
    )
    plan.add_argument("--fail", type=_node_list, default=[], metavar="NODE[,NODE...]", help="nodes to fail")
    plan.add_argument("--fail-worst", type=int, default=0, metavar="N", help="fail the N hosts whose loss hurts most")
    plan.add_argument("--policy", help="only this HAPolicy (default: every policy)")
    plan.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    plan.add_argument(
        "--require",
        type=_priority,
        metavar="PRIORITY",
        help="exit 1 if a protected VM of this priority or higher would not run again",
    )
    plan.add_argument("--context", help="kubeconfig context")
    status = sub.add_parser("status", help="open and recent NodeFailovers with their per-VM timelines")
    status.add_argument("--watch", "-w", action="store_true", help="follow live until interrupted")
    status.add_argument("--recent", type=int, default=3, help="finished NodeFailovers to show (default 3)")
    status.add_argument("--context", help="kubeconfig context")


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from kvha.console.plan import PolicyRecord, exit_status, make_report, render  # noqa: PLC0415 - only for plan
    from kvha.handlers.snapshot import parse_policy  # noqa: PLC0415

    if not args.fail and not args.fail_worst:
        parser.error("plan needs --fail NODE[,NODE...] or --fail-worst N")
    lister = Lister(user_client(context=args.context))
    records = []
    for obj in sorted(lister.policies(), key=lambda o: str(o["metadata"]["name"])):
        name = str(obj["metadata"]["name"])
        if args.policy and name != args.policy:
            continue
        spec, problem = parse_policy(obj.get("spec") or {})
        if spec is None:
            print(f"skipping HAPolicy {name}: {problem}", file=sys.stderr)
            continue
        records.append(PolicyRecord(name, spec, HAPolicyStatus.model_validate(obj.get("status") or {})))
    if not records:
        print(f"no HAPolicy {args.policy}" if args.policy else "no valid HAPolicy in the cluster", file=sys.stderr)
        return 2
    read = lister.cluster()
    unknown = [n for n in args.fail if n not in {node.name for node in read.nodes}]
    if unknown:
        print(f"no such node: {', '.join(unknown)}", file=sys.stderr)
        return 2
    report = make_report(
        server=lister.server,
        policies=records,
        read=read,
        failed=args.fail,
        fail_worst=args.fail_worst,
        require=args.require,
    )
    print(render(report, args.output))
    return exit_status(report)


def _status(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415

    from kvha.console.status import render_status  # noqa: PLC0415 - only for status

    lister = Lister(user_client(context=args.context))
    shown = ""
    while True:
        text = render_status(lister.failovers(), recent=args.recent)
        if text != shown:
            if args.watch and sys.stdout.isatty():
                sys.stdout.write("\033[H\033[2J")  # redraw in place, as `watch` does
            print(text, flush=True)
            shown = text
        if not args.watch:
            return 0
        time.sleep(2.0)


def make_parser(prog: str = "kvha") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="High availability for KubeVirt VMs.")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the operator (the default)")
    # The flags may come before or after `run`. argparse applies a subcommand's defaults over what
    # was parsed before it, so the subcommand's copies have none: `kvha --log-format json run`
    # would otherwise log plain text.
    for target, top_level in ((parser, True), (run, False)):
        target.add_argument(
            "--log-format", choices=["plain", "json"], default="plain" if top_level else argparse.SUPPRESS
        )
        target.add_argument("--verbose", action="store_true", default=False if top_level else argparse.SUPPRESS)
    _add_read_only_commands(sub)
    return parser


def configure_logging(*, log_format: str, verbose: bool) -> None:
    """One handler on the root logger, so kopf's loggers and kvha's (`kvha.*`, which propagate)
    write in the same format: JSON lines for production, plain text for people."""
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN)


def main(argv: list[str] | None = None, *, prog: str = "kvha") -> None:
    parser = make_parser(prog)
    args = parser.parse_args(argv)
    if args.command in ("plan", "status"):
        with contextlib.suppress(KeyboardInterrupt):
            sys.exit(_plan(args, parser) if args.command == "plan" else _status(args))
        return
    configure_logging(log_format=args.log_format, verbose=args.verbose)
    try:
        settings = OperatorSettings.from_env()
    except SettingsError as exc:
        log.error("invalid setting %s", exc)  # one line (in the chosen format), not a traceback
        sys.exit(2)
    code = 0
    with contextlib.suppress(KeyboardInterrupt), _profiled(settings.profile_path):
        code = asyncio.run(run_operator(settings))
    sys.exit(code)


@contextlib.contextmanager
def _profiled(path: str | None) -> Iterator[None]:
    """KVHA_PROFILE=FILE (`settings.profile_path`): profile the whole run with cProfile and write
    the stats to FILE when the operator stops cleanly (SIGTERM): where its CPU goes at scale,
    measured rather than guessed."""
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


def kubectl_main() -> None:
    """`kubectl kvha plan|status …`: kubectl finds the plugin as `kubectl-kvha` on PATH."""
    main(prog="kubectl kvha")
