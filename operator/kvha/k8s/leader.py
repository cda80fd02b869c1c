"""Leader election with a coordination.k8s.io Lease, so two replicas never act at once.

kopf's peering only freezes peers of equal priority; it does not elect a leader. kvha therefore
holds a Lease before it starts any handler and stops the operator the moment it cannot prove it
still holds it. A standby takes over within one lease duration after the leader dies, or at once
when the leader releases the Lease on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

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


def lease_is_free(spec: dict[str, Any], *, identity: str, now: datetime) -> bool:
    """Ours, unheld, or expired (renewTime + leaseDurationSeconds is in the past)."""
    holder = spec.get("holderIdentity")
    if not holder or holder == identity:
        return True
    renewed = parse_time(spec.get("renewTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or renewed + timedelta(seconds=duration) < now


class LeaderElector:
    def __init__(self, api_client: client.ApiClient, cfg: LeaseConfig) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.sanitize = api_client.sanitize_for_serialization
        self.cfg = cfg

    def _body(self, *, transitions: int, acquired: datetime, now: datetime) -> dict[str, Any]:
        return {
            "holderIdentity": self.cfg.identity,
            "leaseDurationSeconds": self.cfg.duration_seconds,
            "acquireTime": format_micro_time(acquired),
            "renewTime": format_micro_time(now),
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True while we hold the Lease. Conflicts mean another replica won."""
        now = utcnow()
        try:
            current = self.sanitize(self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace))  # type: ignore[no-untyped-call]
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"metadata": {"name": self.cfg.name}, "spec": self._body(transitions=0, acquired=now, now=now)}
            try:
                self.api.create_namespaced_lease(self.cfg.namespace, body)  # type: ignore[arg-type]  # dicts are accepted
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            return True
        spec = current.get("spec") or {}
        if not lease_is_free(spec, identity=self.cfg.identity, now=now):
            return False
        ours = spec.get("holderIdentity") == self.cfg.identity
        acquired = parse_time(spec.get("acquireTime")) if ours else now
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        body = {
            "metadata": {"name": self.cfg.name, "resourceVersion": current["metadata"]["resourceVersion"]},
            "spec": self._body(transitions=transitions, acquired=acquired or now, now=now),
        }
        try:
            self.api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Hand the Lease over at once on a clean shutdown, instead of making the standby wait."""
        try:
            current = self.sanitize(self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace))  # type: ignore[no-untyped-call]
            if (current.get("spec") or {}).get("holderIdentity") != self.cfg.identity:
                return
            current["spec"]["holderIdentity"] = None
            self.api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, current)
        except ApiException as exc:
            log.warning("could not release leader lease: %s", exc.reason)

    async def acquire(self) -> None:
        waited = False
        while True:
            try:
                if await asyncio.to_thread(self.try_acquire_or_renew):
                    log.info("became leader as %s", self.cfg.identity)
                    return
            except ApiException as exc:
                log.warning("leader election failed (%s); retrying", exc.reason)
            if not waited:
                log.info("standing by: another replica holds lease %s/%s", self.cfg.namespace, self.cfg.name)
                waited = True
            await asyncio.sleep(self.cfg.retry_every_seconds)

    async def hold(self, lost: asyncio.Event) -> None:
        """Renew until we cannot prove leadership for a whole lease duration, then set `lost`."""
        last_renewed = utcnow()
        while not lost.is_set():
            await asyncio.sleep(self.cfg.renew_every_seconds)
            try:
                if await asyncio.to_thread(self.try_acquire_or_renew):
                    last_renewed = utcnow()
                    continue
                log.error("leader lease taken by another replica; stopping")
                lost.set()
            except ApiException as exc:
                log.warning("could not renew leader lease: %s", exc.reason)
            except Exception:  # network errors: keep trying until the lease would have expired
                log.exception("could not renew leader lease")
            # Stop before the lease expires (one renew interval of margin), so a standby that
            # takes over never overlaps with us.
            margin = timedelta(seconds=self.cfg.duration_seconds - self.cfg.renew_every_seconds)
            if utcnow() - last_renewed > margin:
                log.error("leader lease not renewed for %ss; stopping", self.cfg.duration_seconds)
                lost.set()
