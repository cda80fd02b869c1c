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
    # kopf's own patches and Events end within the same timeout as ours, so that the leader's
    # write deadline (one timeout before its lease could expire) also bounds them.
    timeout = memo.settings.api_timeout if "settings" in memo else OperatorSettings().api_timeout
    settings.networking.request_timeout = timeout
    settings.networking.connect_timeout = timeout
    settings.execution.max_workers = 8
