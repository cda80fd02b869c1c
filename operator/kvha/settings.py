"""Operator settings from the environment, so the Helm chart configures kvha without flags."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str = field(default_factory=lambda: os.environ.get("KVHA_NAMESPACE", "kvha-system"))
    identity: str = field(default_factory=lambda: os.environ.get("POD_NAME") or socket.gethostname())
    lease_name: str = field(default_factory=lambda: os.environ.get("KVHA_LEASE_NAME", "kvha-leader"))
    lease_seconds: int = field(default_factory=lambda: int(_env_float("KVHA_LEASE_SECONDS", 15)))
    http_port: int = field(default_factory=lambda: int(_env_float("KVHA_HTTP_PORT", 8080)))
    http_host: str = field(default_factory=lambda: os.environ.get("KVHA_HTTP_HOST", "0.0.0.0"))  # noqa: S104 - probes and scrapes come from outside the pod
    policy_interval: float = field(default_factory=lambda: _env_float("KVHA_POLICY_INTERVAL", 2.0))
    failover_interval: float = field(default_factory=lambda: _env_float("KVHA_FAILOVER_INTERVAL", 1.0))
    leader_election: bool = field(default_factory=lambda: os.environ.get("KVHA_LEADER_ELECTION", "true") != "false")
    # 0 means a quarter of the lease: a write the leader starts before its deadline (one timeout
    # before the lease could expire) has ended, one way or the other, before a standby may act.
    api_timeout_setting: float = field(default_factory=lambda: _env_float("KVHA_API_TIMEOUT", 0.0))
    # kopf's requests, its initial lists included (see handlers/startup.py).
    list_timeout: float = field(default_factory=lambda: _env_float("KVHA_LIST_TIMEOUT", 60.0))

    @property
    def api_timeout(self) -> float:
        """Seconds any one of kvha's own API requests may take (kopf's connects too)."""
        return self.api_timeout_setting or self.lease_seconds / 4
