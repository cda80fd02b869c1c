"""kopf handlers: every decorator of the operator, importing this package registers them.

Handlers stay thin: parse the body, build a snapshot from the in-memory indices, call the pure
core, hand its actions to `kvha.actuation`, write status once.
"""

from kvha.handlers import failovers, freshness, indices, policies, rhythm, startup, vms

rhythm.connect()  # the index functions have registered every cache by now

__all__ = ["failovers", "freshness", "indices", "policies", "rhythm", "startup", "vms"]
