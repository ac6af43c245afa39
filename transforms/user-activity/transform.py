"""Seed 001's `compute_features`, as a Sluice aggregate in Python: a user's
event count, distinct actions, average value and last action over the last
hour (a one-hour window sliding every five minutes).

The seed recomputes the hour from a growing in-memory list at every event,
with the wall clock as "now"; here the host keeps one accumulator per
five-minute slice, folds each event once, merges the twelve slices of a
window when it closes in event time, and checkpoints the accumulators. No
`computed_at`: a replay must write the same row.
"""

from typing import Optional

import sluice
from sluice import Event, WindowInfo, feature


@sluice.aggregate_transform(
    features=[
        feature("event_count_1h", int, "Events in the hour."),
        feature("unique_actions_1h", int, "Distinct actions in the hour."),
        feature("avg_value_1h", float, "The mean value of the hour's events."),
        feature(
            "last_action",
            Optional[str],
            "The action of the hour's latest event (of events at the same time, the greatest name).",
        ),
    ]
)
class UserActivity:
    """The accumulator is a list: [count, sum of values, set of actions,
    (time, action) of the latest event]."""

    def create(self) -> list:
        return [0, 0.0, set(), None]

    def add(self, acc: list, event: Event) -> None:
        action = event.str("action")
        acc[0] += 1
        acc[1] += event.float("value") or 0.0
        if action is not None:
            acc[2].add(action)
            latest = (event.timestamp, action)
            # The greatest (time, action): the same whatever order events
            # are folded and slices merged in.
            if acc[3] is None or latest > acc[3]:
                acc[3] = latest

    def merge(self, acc: list, other: list) -> None:
        acc[0] += other[0]
        acc[1] += other[1]
        acc[2] |= other[2]
        if other[3] is not None and (acc[3] is None or other[3] > acc[3]):
            acc[3] = other[3]

    def finish(self, acc: list, window: WindowInfo) -> dict:
        count, total, actions, latest = acc
        return {
            "event_count_1h": count,
            "unique_actions_1h": len(actions),
            "avg_value_1h": total / max(count, 1),
            "last_action": latest[1] if latest is not None else None,
        }
