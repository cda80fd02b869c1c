"""kopf configuration: our own finalizer and annotation prefixes, and quiet, fast watching."""

from __future__ import annotations

from typing import Any

import kopf

from kvha.constants import FINALIZER, KOPF_ANNOTATION_PREFIX
from kvha.settings import OperatorSettings


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_ANNOTATION_PREFIX,
        key="last-handled-configuration",
    )
    # kvha posts its own, deliberate Events; kopf's per-handler chatter would drown them.
    settings.posting.level = 100
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.batching.batch_window = 0.1  # react to a burst of node/pod changes quickly
    # kopf's request timeout bounds its initial lists as well as its own writes, and a list of
    # every pod of a large cluster can take far longer than kvha's per-call timeout (a quarter of
    # the lease): with that, the caches never synced while the API server was slow. kopf's writes
    # (finalizers and annotations on kvha's own objects, Events) never fence or restart anything,
    # and losing leadership cancels kopf and ends the process, so they need no tighter bound.
    own: OperatorSettings = memo.settings  # read once by `kvha run` (kvha.cli)
    settings.networking.request_timeout = own.list_timeout
    settings.networking.connect_timeout = own.api_timeout
    settings.execution.max_workers = 8
