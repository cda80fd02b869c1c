"""Leader election with a coordination.k8s.io Lease, so two replicas never act at once.

kopf's peering only freezes peers of equal priority; it does not elect a leader. kvha therefore
holds a Lease before it starts any handler and stops the operator the moment it cannot prove it
still holds it. A standby takes over within one lease duration after the leader dies, or at once
when the leader releases the Lease on a clean shutdown.

The judgement is `kvha.leadership`'s (pure, monotonic); this module only reads and writes the
Lease, each request bounded by the API timeout so that a hung call never outlives the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvha.leadership import (
    Clock,
    LeaderTerm,
    LeaseObservation,
    LeaseRecord,
    WriteGuard,
    lease_is_free,
    observe,
)
from kvha.models.timeutil import format_micro_time, parse_time, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    duration_seconds: int = 15
    renew_every_seconds: float = 5.0
    retry_every_seconds: float = 2.0
    request_timeout_seconds: float = 3.0


class LeaderElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        cfg: LeaseConfig,
        *,
        guard: WriteGuard | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.sanitize = api_client.sanitize_for_serialization
        self.cfg = cfg
        self.clock = clock
        self.guard = guard if guard is not None else WriteGuard(clock=clock)
        self.observation: LeaseObservation | None = None

    def _body(self, *, transitions: int, acquired: datetime, now: datetime) -> dict[str, Any]:
        # acquireTime and renewTime are for people reading the Lease; no replica decides by them.
        return {
            "holderIdentity": self.cfg.identity,
            "leaseDurationSeconds": self.cfg.duration_seconds,
            "acquireTime": format_micro_time(acquired),
            "renewTime": format_micro_time(now),
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True while we hold the Lease. Conflicts mean another replica won."""
        started = self.clock()  # a standby can see our renewal no earlier than this
        now = utcnow()
        timeout = self.cfg.request_timeout_seconds
        try:
            current = self.sanitize(
                self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace, _request_timeout=timeout)
            )  # type: ignore[no-untyped-call]
        except ApiException as exc:
            if exc.status != 404:
                raise
            spec = self._body(transitions=0, acquired=now, now=now)
            body = {"metadata": {"name": self.cfg.name}, "spec": spec}
            try:
                self.api.create_namespaced_lease(self.cfg.namespace, body, _request_timeout=timeout)  # type: ignore[arg-type]  # dicts are accepted
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            self._won(started, LeaseRecord.from_spec(spec))
            return True
        spec = current.get("spec") or {}
        self.observation = observe(self.observation, LeaseRecord.from_spec(spec), now=self.clock())
        if not lease_is_free(self.observation, identity=self.cfg.identity, now=self.clock()):
            return False
        ours = spec.get("holderIdentity") == self.cfg.identity
        if not ours and spec.get("holderIdentity"):
            self._log_expiry(self.observation)
        acquired = parse_time(spec.get("acquireTime")) if ours else now
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        new_spec = self._body(transitions=transitions, acquired=acquired or now, now=now)
        body = {
            "metadata": {"name": self.cfg.name, "resourceVersion": current["metadata"]["resourceVersion"]},
            "spec": new_spec,
        }
        try:
            self.api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, body, _request_timeout=timeout)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._won(started, LeaseRecord.from_spec(new_spec))
        return True

    def _won(self, started: float, record: LeaseRecord) -> None:
        self.observation = LeaseObservation(record=record, observed_at=self.clock())
        self.guard.renewed(
            LeaderTerm(
                renew_started=started,
                duration_seconds=self.cfg.duration_seconds,
                write_margin_seconds=self.cfg.request_timeout_seconds,
            )
        )

    def _log_expiry(self, observation: LeaseObservation) -> None:
        """When the previous holder's Lease ran out by our clock, in wall time for the record: the
        moment from which no write of the previous holder may reach the API server."""
        free_since = utcnow() - timedelta(seconds=self.clock() - observation.expires_at)
        log.warning(
            "lease %s/%s of %s unchanged for %ss by our clock: free since %s",
            self.cfg.namespace,
            self.cfg.name,
            observation.record.holder,
            observation.record.duration_seconds,
            format_micro_time(free_since),
        )

    def release(self) -> None:
        """Hand the Lease over at once on a clean shutdown, instead of making the standby wait."""
        timeout = self.cfg.request_timeout_seconds
        try:
            current = self.sanitize(
                self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace, _request_timeout=timeout)
            )  # type: ignore[no-untyped-call]
            if (current.get("spec") or {}).get("holderIdentity") != self.cfg.identity:
                return
            self.guard.check("releasing the leader lease")
            current["spec"]["holderIdentity"] = None
            self.api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, current, _request_timeout=timeout)
        except ApiException as exc:
            log.warning("could not release leader lease: %s", exc.reason)
        except Exception as exc:  # a timeout or lost leadership: the standby waits out the lease instead
            log.warning("did not release leader lease: %s", exc)

    async def acquire(self) -> None:
        waited = False
        while True:
            try:
                if await asyncio.to_thread(self.try_acquire_or_renew):
                    log.info("became leader as %s", self.cfg.identity)
                    return
            except ApiException as exc:
                log.warning("leader election failed (%s); retrying", exc.reason)
            except Exception as exc:  # timeouts, refused connections: keep standing by
                log.warning("leader election failed (%s); retrying", exc)
            if not waited:
                log.info("standing by: another replica holds lease %s/%s", self.cfg.namespace, self.cfg.name)
                waited = True
            await asyncio.sleep(self.cfg.retry_every_seconds)

    async def hold(self, lost: asyncio.Event) -> None:
        """Renew until the write deadline passes unrenewed or another replica holds the Lease;
        then revoke the write guard and set `lost`.

        The deadline is checked on our monotonic clock whatever the renewal is doing: a renewal
        that hangs is abandoned at the deadline, not awaited (its thread ends at its own timeout,
        and a renewal that lands later no longer re-arms the revoked guard).
        """
        next_attempt = self.clock() + self.cfg.renew_every_seconds
        while (remaining := self.guard.remaining()) > 0:
            wait = min(next_attempt - self.clock(), remaining)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                held = await asyncio.wait_for(asyncio.to_thread(self.try_acquire_or_renew), timeout=remaining)
            except TimeoutError:
                log.error("leader lease renewal still hanging at the write deadline; stopping")
                break
            except ApiException as exc:
                log.warning("could not renew leader lease: %s", exc.reason)
                next_attempt = self.clock() + self.cfg.retry_every_seconds
                continue
            except Exception as exc:  # network errors and timeouts: retry until the deadline
                log.warning("could not renew leader lease: %s", exc)
                next_attempt = self.clock() + self.cfg.retry_every_seconds
                continue
            if not held:
                log.error("leader lease taken by another replica; stopping")
                break
            next_attempt = self.clock() + self.cfg.renew_every_seconds
        else:
            log.error("leader lease not renewed in time (write deadline passed); stopping")
        self.guard.revoke()
        lost.set()
