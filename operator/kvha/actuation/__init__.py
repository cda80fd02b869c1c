"""Actuation: the only place where decisions become API calls.

It receives the frozen action values of the decision core and performs them through the `k8s`
adapter. Every action is idempotent, because the core re-issues an action until it observes its
effect: after a crash or an API error the next step repairs what this one did not finish.
"""

from kvha.actuation.executor import ActionFailed, execute

__all__ = ["ActionFailed", "execute"]
