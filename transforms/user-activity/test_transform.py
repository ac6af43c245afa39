"""Seed 001's features on hand-made windows, run natively (folded in
slices, encoded and merged, as the host runs an aggregate): `pytest` in
this folder, with the SDK on the path (`PYTHONPATH=../../sdk/python`)."""

from sluice.testing import run, window
from transform import UserActivity

MINUTE = 60_000


def event(minute: int, action: str, value: float) -> dict:
    return {"timestamp": minute * MINUTE, "action": action, "value": value}


def test_counts_distinct_actions_the_mean_and_the_last_action():
    events = [event(1, "view", 1.0), event(7, "click", 2.5), event(3, "view", 4.5), event(59, "purchase", 4.0)]
    for slices in (1, 2, 4):
        assert run(UserActivity, window("u1", events, end=60 * MINUTE), slices=slices) == {
            "event_count_1h": 4,
            "unique_actions_1h": 3,
            "avg_value_1h": 3.0,
            "last_action": "purchase",
        }


def test_events_at_the_same_time_give_the_greatest_action_in_any_order():
    events = [event(5, "click", 1.0), event(5, "add_to_cart", 1.0), event(2, "view", 1.0)]
    for order in (events, events[::-1]):
        assert run(UserActivity, window("u1", order, end=60 * MINUTE))["last_action"] == "click"


def test_a_window_of_events_without_an_action_has_no_last_action():
    w = window("u1", [{"timestamp": 1, "action": None, "value": 2.0}], end=MINUTE, fields={"action": str})
    assert run(UserActivity, w) == {"event_count_1h": 1, "unique_actions_1h": 0, "avg_value_1h": 2.0, "last_action": None}
