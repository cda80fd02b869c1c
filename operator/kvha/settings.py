"""Operator settings from the environment, so the Helm chart configures kvha without flags.

Read once, at start-up, by `OperatorSettings.from_env` and handed to whatever needs them (kopf's
memo carries them to the handlers): a bad value stops the operator before it starts, with one line
that names the variable, instead of a traceback from whichever module happened to read it first.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable kvha reads has a value it cannot use."""


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError("expected true or false")
    return text.lower() == "true"


def _integer(lowest: int, highest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lowest - 1
        if not lowest <= value <= highest:
            raise ValueError(f"expected a whole number from {lowest} to {highest}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError("expected a number of seconds, 0 or more")
    return value


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = "kvha-system"
    # The leader Lease's holder identity: the pod's name (POD_NAME), else the host's.
    identity: str = field(default_factory=socket.gethostname)
    lease_name: str = "kvha-leader"
    lease_seconds: int = 15
    http_port: int = 8080
    http_host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod
    # Minimum seconds between two steps of a policy / of an incident: the daemons run when
    # something they read changed or their recheck is due, and these coalesce a burst of changes.
    policy_interval: float = 1.0
    failover_interval: float = 1.0
    leader_election: bool = True
    # 0 means a quarter of the lease: a write the leader starts before its deadline (one timeout
    # before the lease could expire) has ended, one way or the other, before a standby may act.
    api_timeout_setting: float = 0.0
    # kopf's requests, its initial lists included (see handlers/startup.py).
    list_timeout: float = 60.0
    # KVHA_PROFILE=FILE: cProfile the whole run into FILE (see cli.py).
    profile_path: str | None = None

    @property
    def api_timeout(self) -> float:
        """Seconds any one of kvha's own API requests may take (kopf's connects too)."""
        return self.api_timeout_setting or self.lease_seconds / 4

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """The settings the environment gives (unset or empty: the default); SettingsError names
        the first variable whose value does not parse."""
        env = os.environ if environ is None else environ

        def read(name: str, parse: Callable[[str], T], default: T) -> T:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                return parse(text)
            except ValueError as exc:
                raise SettingsError(f"{name}={text!r}: {exc}") from None

        return cls(
            namespace=read("KVHA_NAMESPACE", str, cls.namespace),
            identity=read("POD_NAME", str, socket.gethostname()),
            lease_name=read("KVHA_LEASE_NAME", str, cls.lease_name),
            lease_seconds=read("KVHA_LEASE_SECONDS", _integer(1, 3600), cls.lease_seconds),
            http_port=read("KVHA_HTTP_PORT", _integer(1, 65535), cls.http_port),
            http_host=read("KVHA_HTTP_HOST", str, cls.http_host),
            policy_interval=read("KVHA_POLICY_INTERVAL", _seconds, cls.policy_interval),
            failover_interval=read("KVHA_FAILOVER_INTERVAL", _seconds, cls.failover_interval),
            leader_election=read("KVHA_LEADER_ELECTION", _boolean, cls.leader_election),
            api_timeout_setting=read("KVHA_API_TIMEOUT", _seconds, cls.api_timeout_setting),
            list_timeout=read("KVHA_LIST_TIMEOUT", _seconds, cls.list_timeout),
            profile_path=read("KVHA_PROFILE", str, cls.profile_path),
        )
