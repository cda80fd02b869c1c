"""Detection: is a node dead, may its incident close, and is the cluster in a storm where acting
would do more harm than good. Pure functions of (observations, policy, now), where every duration
is one kvha observed on its own monotonic clock."""

from kvha.detection.node_health import assess_node, assess_watched, incident_can_close, last_heard_from
from kvha.detection.observed import Instant, NodeSightings, Sighting, Sightings
from kvha.detection.storm import StormState, recorded_storm, storm_from_nodes, storm_guard
from kvha.detection.verdict import Health, Verdict

__all__ = [
    "Health",
    "Instant",
    "NodeSightings",
    "Sighting",
    "Sightings",
    "StormState",
    "Verdict",
    "assess_node",
    "assess_watched",
    "incident_can_close",
    "last_heard_from",
    "recorded_storm",
    "storm_from_nodes",
    "storm_guard",
]
