"""kwok's stages: a powered-off node must never be reported Ready."""

from __future__ import annotations

from kvha_testbed.kwok import node_stage_delays, stages


def test_no_node_stage_is_delayed() -> None:
    """kwok keeps a delayed stage queued after a node leaves its management (power-off, partition):
    kwok's node-heartbeat-with-lease (600 s + up to 610 s jitter) patched such nodes back to
    Ready=True about ten minutes after they were created."""
    assert node_stage_delays(stages()) == {}


def test_the_guard_sees_a_delayed_node_stage() -> None:
    delayed = {
        "metadata": {"name": "node-heartbeat-with-lease"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Node"},
            "delay": {"durationMilliseconds": 600000, "jitterDurationMilliseconds": 610000},
        },
    }
    pod_delay = {
        "metadata": {"name": "pod-delete"},
        "spec": {"resourceRef": {"kind": "Pod"}, "delay": {"durationMilliseconds": 100}},
    }
    assert node_stage_delays([delayed, pod_delay]) == {"node-heartbeat-with-lease": 1210000}


def test_nodes_still_come_up() -> None:
    names = {stage["metadata"]["name"] for stage in stages()}
    assert "node-initialize" in names
