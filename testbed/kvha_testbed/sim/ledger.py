"""Which guests are really running: the ground truth the API cannot show.

The API server only knows what components reported. A partitioned node keeps running its guests
while the cluster sees it as dead; restarting those VMs elsewhere without fencing gives two live
copies of one VM writing to the same disks - split brain, the failure kvha must never cause. The
ledger records every guest instance's real life (started on node X, stopped because ...) and checks
the invariant "at most one live instance per VM" at every start, so a violation is recorded when it
happens, even if it is over by the time a test looks.

Pure and thread-safe; the simulator and faults.py are its only writers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Instance:
    """One boot of a VM: a VMI's guest on a node, from start until it really stopped."""

    vm: str  # "namespace/name"
    vmi_uid: str
    node: str
    started_at: float
    stopped_at: float | None = None
    stop_reason: str | None = None

    @property
    def live(self) -> bool:
        return self.stopped_at is None


@dataclass(frozen=True)
class SplitBrainEvent:
    """The moment a second instance of a VM started while another was still live."""

    vm: str
    at: float
    instances: tuple[Instance, ...]

    def describe(self) -> str:
        where = ", ".join(f"vmi {i.vmi_uid[:8]} on {i.node} since {i.started_at:.1f}" for i in self.instances)
        return f"split brain for {self.vm} at {self.at:.1f}: {len(self.instances)} live instances ({where})"


class SplitBrainError(AssertionError):
    pass


def vm_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class GuestLedger:
    """Start/stop guest instances and record every split-brain moment."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._by_uid: dict[str, Instance] = {}
        self._history: list[Instance] = []
        self._events: list[SplitBrainEvent] = []

    def _now(self, at: float | None) -> float:
        return self._clock() if at is None else at

    def start(self, *, vm: str, vmi_uid: str, node: str, at: float | None = None) -> Instance:
        """A guest booted. Idempotent per VMI uid while it is live."""
        with self._lock:
            current = self._by_uid.get(vmi_uid)
            if current is not None and current.live:
                return current
            instance = Instance(vm=vm, vmi_uid=vmi_uid, node=node, started_at=self._now(at))
            self._by_uid[vmi_uid] = instance
            self._history.append(instance)
            live = tuple(i for i in self._by_uid.values() if i.vm == vm and i.live)
            if len(live) > 1:
                self._events.append(SplitBrainEvent(vm=vm, at=instance.started_at, instances=live))
            return instance

    def stop(self, vmi_uid: str, *, reason: str, at: float | None = None) -> Instance | None:
        """The guest of this VMI is no longer running; returns the stopped instance, if it was live."""
        with self._lock:
            return self._stop_locked(vmi_uid, reason=reason, at=at)

    def _stop_locked(self, vmi_uid: str, *, reason: str, at: float | None) -> Instance | None:
        current = self._by_uid.get(vmi_uid)
        if current is None or not current.live:
            return None
        stopped = replace(current, stopped_at=self._now(at), stop_reason=reason)
        self._by_uid[vmi_uid] = stopped
        self._history[self._history.index(current)] = stopped
        return stopped

    def stop_node(self, node: str, *, reason: str, at: float | None = None) -> list[Instance]:
        """Every guest on a node dies at once (power off)."""
        with self._lock:
            uids = [uid for uid, i in self._by_uid.items() if i.node == node and i.live]
            return [s for uid in uids if (s := self._stop_locked(uid, reason=reason, at=at))]

    def live_instances(self, vm: str | None = None) -> list[Instance]:
        """Live instances of one VM ("namespace/name"), or of all VMs."""
        with self._lock:
            return [i for i in self._by_uid.values() if i.live and (vm is None or i.vm == vm)]

    def live_on(self, node: str) -> list[Instance]:
        with self._lock:
            return [i for i in self._by_uid.values() if i.live and i.node == node]

    def instance(self, vmi_uid: str) -> Instance | None:
        with self._lock:
            return self._by_uid.get(vmi_uid)

    def history(self, vm: str | None = None) -> list[Instance]:
        """Every instance ever started (of one VM, or all), in start order."""
        with self._lock:
            return [i for i in self._history if vm is None or i.vm == vm]

    def split_brain_events(self, vm: str | None = None, *, since: float | None = None) -> list[SplitBrainEvent]:
        with self._lock:
            return [e for e in self._events if (vm is None or e.vm == vm) and (since is None or e.at >= since)]

    def assert_no_split_brain(self, vm: str | None = None, *, since: float | None = None) -> None:
        """Fail if two instances of a VM were ever live at the same moment (or are now)."""
        events = self.split_brain_events(vm, since=since)
        if events:
            raise SplitBrainError("; ".join(e.describe() for e in events))
